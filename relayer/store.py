"""The daemon's store: one SQLite file per institution, shared by the daemon and the CLI. It owns the
life of every message and batch.

Messages (both directions) with every status they went through, this chain's batches with theirs,
the watchers' cursors and the inputs that were refused. Each step of the pipeline is one method
here that makes its whole change in one `BEGIN IMMEDIATE` transaction, written before the action it
leads to; so a daemon killed at any instant finds every record before or after a step, never
between, and resumes from there. A step checks the statuses it starts from and leaves a record in
any other status alone (a step run twice, after a restart, changes nothing the second time).

SQLite in WAL mode through sqlite-utils: readers never wait; `busy_timeout` makes a second writer
(the CLI while the daemon runs) wait for the first instead of failing. Rows come back typed
(`StoredMessage`, `StoredBatch`, `Transition`, `Refusal`). On disk: big integers as decimal TEXT
(amounts and field elements), asset ids and transaction hashes as 0x-hex TEXT, JSON columns as
JSON text, data and asset_data as bytes, times as unix floats.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from sqlite_utils import Database

from bridge_contracts.messages import Message
from bridge_contracts.swaps import Swap, Terms
from hub.delivery import message_from_json, message_key, message_to_json
from hub.retry import REPUSH, RETRY

SCHEMA_VERSION = 6
log = logging.getLogger(__name__)
BUSY_TIMEOUT_SECONDS = 30.0


# --- statuses ---------------------------------------------------------------------------------


class Direction(StrEnum):
    OUT = "out"  # sent by this chain
    IN = "in"  # addressed to this chain


class OutStatus(StrEnum):
    """An outgoing message's statuses, in the order it goes through them."""

    SENT = "sent"  # seen in a confirmed block of this chain's Outbox
    BATCHED = "batched"  # in a closed batch, being proven or committed
    SETTLED = "settled"  # its batch is settled on L1
    PUSHED = "pushed"  # sent to the destination, no receipt yet (pushed again on REPUSH)
    FORCING = "forcing"  # to be forced through the L1 priority queue (no receipt within force_after,
    # or an operator asked): requestPriorityOp is being sent
    FORCED = "forced"  # in the destination's L1 priority queue: it must process it by the deadline
    EXECUTED = "executed"  # the destination executed it (or L1 finalized the withdrawal)
    FAILED = "failed"  # the destination ran it and the target reverted; its operator may replay it
    REFUSED = "refused"  # the destination refused it (see the error)
    BOUNCED = "bounced"  # the destination bounced it: its value is on its way back in a bounce message
    REFUNDED = "refunded"  # the bounce was executed here: the sender has the value back


class InStatus(StrEnum):
    """An incoming message's statuses."""

    RECEIVED = "received"  # stored; its batch not yet verified or settled on L1
    VERIFIED = "verified"  # path, batch proof and L1 settlement checked: to be executed
    EXECUTING = "executing"  # in an execute transaction now
    EXECUTED = "executed"
    FAILED = "failed"  # the target reverted; nothing was applied; `xrelay replay` runs it again
    REPLAY = "replay"  # an operator asked to run a failed message again
    REFUSED = "refused"  # did not verify (see the error); never executed
    BOUNCING = "bouncing"  # settled, but never to be executed here (a peering rule, or the operator):
    # its value goes back to the source in a bounce message (Inbox.bounce)
    BOUNCED = "bounced"  # the Inbox bounced it (the same nullifier as an execution)


class BatchStatus(StrEnum):
    """A batch of this chain's outgoing messages."""

    PROVING = "proving"
    PROVEN = "proven"
    COMMITTING = "committing"  # commitBatch sent or about to be; L1's batch counter says which
    SETTLED = "settled"


class PriorityStatus(StrEnum):
    """An operation of this chain's L1 priority queue: a message some chain forced to this one."""

    QUEUED = "queued"  # on L1: to be processed by this chain's Inbox, in queue order, before its deadline
    UNREADABLE = "unreadable"  # its sealed body does not open or names another message, and the bus
    # never brought the message: the queue stops here until it does (or an operator acts)
    PROCESSING = "processing"  # in a processPriorityOps transaction now
    PROCESSED = "processed"  # the Inbox processed it: executed, failed (retryable), bounced, or closed before


PENDING_PRIORITY = (PriorityStatus.QUEUED, PriorityStatus.UNREADABLE, PriorityStatus.PROCESSING)
"""A priority operation not processed yet."""


class SwapStatus(StrEnum):
    """An atomic swap on this chain's SwapDesk (its `SwapDesk.State`, by the same words)."""

    INITIATED = "initiated"  # A: phase 1 sent to B's desk, waiting for B's result
    COMPLETED = "completed"  # B: swapped, Y sent to A; A: the user was paid Y
    REFUNDED = "refunded"  # B: X sent back to A; A: the user got X back (see the reason)


class SwapSide(StrEnum):
    """Which side of a swap this chain is."""

    A = "a"  # the user's side: X paid, Y received
    B = "b"  # the counterparty: its desk sells Y


class TermsStatus(StrEnum):
    """Swap terms between this institution and a peer, on their way to both desks."""

    PROPOSED = "proposed"  # this operator signed and sent them; waiting for the peer's signature
    OFFERED = "offered"  # the peer signed and sent them; waiting for this operator to accept
    ACCEPTED = "accepted"  # both signed: to be registered on this chain's desk
    REGISTERED = "registered"  # on this chain's desk: swaps may start under them
    REFUSED = "refused"  # refused by this daemon or the peer (see the error)


MessageStatus = OutStatus | InStatus

STATUSES: dict[Direction, type[OutStatus] | type[InStatus]] = {
    Direction.OUT: OutStatus,
    Direction.IN: InStatus,
}
FINAL_STATUSES = frozenset({"executed", "failed", "refused", "bounced", "refunded"})
"""Statuses the daemon does nothing more about by itself (a failed incoming message waits for a
replay; a failed outgoing one for the peer's)."""
RECEIPT_STATUSES = (OutStatus.EXECUTED, OutStatus.FAILED, OutStatus.REFUSED, OutStatus.BOUNCED)
"""What a peer's receipt may report of an outgoing message."""
EXECUTABLE = (InStatus.VERIFIED, InStatus.REPLAY)
PUSHABLE = (OutStatus.SETTLED, OutStatus.PUSHED, OutStatus.FORCED)
"""What an outgoing message is while the pusher sends it to its peer (again, until its receipt)."""
FORCEABLE = (OutStatus.SETTLED, OutStatus.PUSHED)
"""What an outgoing message to a peer must be to be forced through L1: settled, not yet answered."""
_NO_RECEIPT_CHANGES = frozenset(
    {
        OutStatus.SENT,
        OutStatus.BATCHED,
        OutStatus.SETTLED,
        OutStatus.EXECUTED,
        OutStatus.REFUSED,
        OutStatus.BOUNCED,
        OutStatus.REFUNDED,
    }
)
"""An outgoing message in one of these is not moved by a receipt: not pushed yet (a replayed
envelope), or the destination's answer is final."""


# --- errors -----------------------------------------------------------------------------------


class StoreError(Exception):
    """A store operation that cannot be done; the message says why, for an operator."""


class UnknownMessage(StoreError):
    """No message with that id is in the store."""


class StepRefused(StoreError):
    """A pipeline step whose records are not in the statuses it starts from; nothing was changed."""


# --- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMessage:
    """A message as the store keeps it, with where it is in its life."""

    id: str
    direction: Direction
    peer: str  # the other institution's name ("l1" for deposits and withdrawals)
    status: MessageStatus
    message: Message
    leaf: int
    outbox_hash: int | None  # outgoing: the Outbox's rolling hash after this message
    block_number: int | None
    block_hash: str | None  # outgoing and deposits: the hash its block had when it was read
    sent_at: float | None
    batch_number: int | None
    index_in_batch: int | None
    attempts: int
    next_attempt_at: float | None
    error: str | None
    exec_tx: str | None
    exec_gas: int | None
    executed_at: float | None
    created_at: float
    updated_at: float
    payload: str | None  # incoming: JSON of its delivery (or of its L1 deposit, or of its forcing)
    force_tx: str | None = None  # outgoing, forced: the requestPriorityOp transaction
    force_index: int | None = None  # its position in the destination's priority queue
    force_deadline: float | None = None  # when the destination must have processed it

    @property
    def nonce(self) -> int:
        return self.message.nonce

    @property
    def due(self) -> float:
        """When it may next be tried (0: now)."""
        return self.next_attempt_at or 0.0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredMessage:
        direction = Direction(row["direction"])
        return cls(
            id=row["id"],
            direction=direction,
            peer=row["peer"],
            status=STATUSES[direction](row["status"]),
            message=Message(
                source_chain_id=row["source_chain_id"],
                dest_chain_id=row["dest_chain_id"],
                nonce=row["nonce"],
                sender=row["sender"],
                target=row["target"],
                asset_id=bytes.fromhex(row["asset_id"][2:]),
                amount=int(row["amount"]),
                data=bytes(row["data"]),
                asset_data=bytes(row["asset_data"]),
            ),
            leaf=int(row["leaf"]),
            outbox_hash=_int_or_none(row["outbox_hash"]),
            block_number=row["block_number"],
            block_hash=row["block_hash"],
            sent_at=row["sent_at"],
            batch_number=row["batch_number"],
            index_in_batch=row["index_in_batch"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            error=row["error"],
            exec_tx=row["exec_tx"],
            exec_gas=row["exec_gas"],
            executed_at=row["executed_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            payload=row["payload"],
            force_tx=row["force_tx"],
            force_index=row["force_index"],
            force_deadline=row["force_deadline"],
        )

    def to_json(self) -> dict[str, Any]:
        """The message for the admin API: flat, big integers as decimal strings, bytes as 0x-hex."""
        return {
            "id": self.id,
            "direction": str(self.direction),
            "peer": self.peer,
            "status": str(self.status),
            **message_to_json(self.message),
            "leaf": str(self.leaf),
            "outbox_hash": None if self.outbox_hash is None else str(self.outbox_hash),
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "sent_at": self.sent_at,
            "batch_number": self.batch_number,
            "index_in_batch": self.index_in_batch,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "error": self.error,
            "exec_tx": self.exec_tx,
            "exec_gas": self.exec_gas,
            "executed_at": self.executed_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "payload": orjson.loads(self.payload) if self.payload else None,
            "force_tx": self.force_tx,
            "force_index": self.force_index,
            "force_deadline": self.force_deadline,
        }


@dataclass(frozen=True)
class StoredBatch:
    """A batch of this chain's outgoing messages."""

    batch_number: int
    status: BatchStatus
    capacity: int
    count: int
    first_nonce: int
    last_nonce: int
    h_start: int
    h_end: int
    batch_root: int | None
    public_inputs: tuple[int, ...] | None
    proof: dict[str, Any] | None  # snarkjs JSON
    proving_seconds: float | None
    commit_tx: str | None
    commit_gas: int | None
    attempts: int
    next_attempt_at: float | None
    error: str | None
    leaf_index: int | None  # its leaf in L1's aggregated tree, once settled
    settled_at: float | None
    created_at: float
    updated_at: float

    @property
    def due(self) -> float:
        return self.next_attempt_at or 0.0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredBatch:
        public = row["public_inputs"]
        return cls(
            batch_number=row["batch_number"],
            status=BatchStatus(row["status"]),
            capacity=row["capacity"],
            count=row["count"],
            first_nonce=row["first_nonce"],
            last_nonce=row["last_nonce"],
            h_start=int(row["h_start"]),
            h_end=int(row["h_end"]),
            batch_root=_int_or_none(row["batch_root"]),
            public_inputs=None if public is None else tuple(int(x) for x in orjson.loads(public)),
            proof=None if row["proof"] is None else orjson.loads(row["proof"]),
            proving_seconds=row["proving_seconds"],
            commit_tx=row["commit_tx"],
            commit_gas=row["commit_gas"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            error=row["error"],
            leaf_index=row["leaf_index"],
            settled_at=row["settled_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def to_json(self) -> dict[str, Any]:
        """The batch for the admin API (big integers as decimal strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("h_start", "h_end", "batch_root") and value is not None:
                value = str(value)
            elif f.name == "public_inputs" and value is not None:
                value = [str(x) for x in value]
            elif f.name == "status":
                value = str(value)
            out[f.name] = value
        return out


@dataclass(frozen=True)
class Transition:
    """One status change of a message or a batch, and why."""

    from_status: str | None
    to_status: str
    at: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "from_status": self.from_status,
            "to_status": self.to_status,
            "at": self.at,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Refusal:
    """An input that was refused; `raw` holds at most the configured number of its first bytes."""

    id: int
    at: float
    peer: str | None
    chain_id: int | None
    kind: str
    reason: str
    raw: bytes
    raw_size: int  # the input's whole size

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "peer": self.peer,
            "chain_id": self.chain_id,
            "kind": self.kind,
            "reason": self.reason,
            "raw": "0x" + self.raw.hex(),
            "raw_size": self.raw_size,
        }


@dataclass(frozen=True)
class Halt:
    """A watcher's stream stopped for an operator: a reorganisation deeper than the chain's finality,
    or a stored message the chain now contradicts. `scope` is the watcher's name ("outbox": this
    chain's whole outgoing pipeline stops; "l1-deposits")."""

    id: int
    scope: str
    reason: str
    block: int | None  # the block the problem was seen at
    at: float
    lifted_at: float | None
    decision: str | None  # the operator's, once lifted

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class WatchCursor:
    """Where a watcher is: the last block it handled, and that block's hash as it saw it."""

    name: str
    block: int
    block_hash: str | None = None


@dataclass(frozen=True)
class RefusalPolicy:
    """How much of the refused inputs the store keeps: anyone on the bus can send any number of
    envelopes of any size, so only a bounded part of each, and only so many, for so long."""

    raw_bytes: int = 4096
    keep: int = 10_000
    max_age_seconds: float = 30 * 86400.0


@dataclass(frozen=True)
class Sent:
    """An outgoing message as a watcher saw it in a confirmed `MessageSent` event."""

    message: Message
    peer: str
    block_number: int
    outbox_hash: int
    block_hash: str | None = None  # 0x-hex; the watcher checks it is still the chain's before settling


@dataclass(frozen=True)
class Deposit:
    """An L1 deposit to this chain, from a confirmed `DepositQueued` event."""

    message: Message
    block_number: int
    leaf_index: int  # its leaf in L1's aggregated tree
    block_hash: str | None = None


@dataclass(frozen=True)
class Received:
    """An incoming message from a peer, with the JSON of the delivery it came in (its batch's
    evidence and its own path)."""

    message: Message
    payload: str


@dataclass(frozen=True)
class Outcome:
    """What an execute transaction did to one message."""

    message_id: str
    status: InStatus  # EXECUTED or FAILED
    reason: str


@dataclass(frozen=True)
class ReceiptUpdate:
    """A peer's receipt for one of this chain's messages."""

    message_id: str
    status: OutStatus  # one of RECEIPT_STATUSES
    tx: str | None
    reason: str | None


@dataclass(frozen=True)
class SwapRecord:
    """A SwapRecorded event of this chain's desk, as a watcher hands it to the store."""

    swap_id: str
    side: SwapSide
    peer: str
    message_id: str  # A: the phase-1 message; B: the result message
    swap: Swap
    block_number: int
    block_hash: str | None = None  # as read, for telling a reorganisation


@dataclass(frozen=True)
class StoredSwap:
    """A swap as this chain's SwapDesk last recorded it (its SwapRecorded event)."""

    swap_id: str
    side: SwapSide
    peer: str
    terms_id: str
    user: str
    amount_x: int
    min_amount_y: int
    amount_y: int
    deadline: int
    message_id: str  # A: the phase-1 message; B: the result message
    status: SwapStatus
    reason: str | None  # why it was refunded (SwapReason.word)
    block_number: int
    tx: str | None  # a transaction the daemon sent for it (reclaim)
    error: str | None
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("amount_x", "min_amount_y", "amount_y"):
            out[name] = str(out[name])
        out["side"], out["status"] = str(self.side), str(self.status)
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredSwap:
        values = {f.name: row[f.name] for f in fields(cls)}
        for name in ("amount_x", "min_amount_y", "amount_y"):
            values[name] = int(values[name])
        values["side"], values["status"] = SwapSide(row["side"]), SwapStatus(row["status"])
        return cls(**values)


@dataclass(frozen=True)
class StoredTerms:
    """Swap terms agreed, or being agreed, with a peer."""

    terms_id: str
    peer: str
    side: SwapSide  # this chain's side
    terms: Terms
    status: TermsStatus
    our_signature: str | None
    their_signature: str | None
    tx: str | None  # registerTerms on this chain's desk
    error: str | None
    sent_at: float | None  # when this daemon last sent its proposal or acceptance
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["terms"] = self.terms.to_json()
        out["side"], out["status"] = str(self.side), str(self.status)
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredTerms:
        values = {f.name: row[f.name] for f in fields(cls) if f.name != "terms"}
        values["side"], values["status"] = SwapSide(row["side"]), TermsStatus(row["status"])
        return cls(terms=Terms.from_json(orjson.loads(row["document"])), **values)


@dataclass(frozen=True)
class PriorityOp:
    """An operation of this chain's L1 priority queue, as the store keeps it."""

    index: int  # its position in the queue
    priority_id: bytes
    source_chain_id: int
    batch_number: int
    index_in_batch: int
    deadline: float
    rolling_hash: bytes  # the queue's rolling hash after it
    status: PriorityStatus
    message_id: str | None  # None while unreadable
    message: Message | None  # the message L1 queued (its own, whatever the store has under its id)
    payload: str | None  # where its leaf is: {"forced": {...}} (QueuedOp.payload)
    leaf: int | None
    bounce: str | None  # the peering rule its message breaks: bounced, not executed
    outcome: str | None  # processed: "executed", "failed", "bounced" or "closed"
    tx: str | None
    error: str | None
    block_number: int
    attempts: int
    next_attempt_at: float | None
    created_at: float
    updated_at: float

    @property
    def due(self) -> float:
        return self.next_attempt_at or 0.0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PriorityOp:
        return cls(
            index=row["queue_index"],
            priority_id=bytes.fromhex(row["priority_id"][2:]),
            source_chain_id=row["source_chain_id"],
            batch_number=row["batch_number"],
            index_in_batch=row["index_in_batch"],
            deadline=row["deadline"],
            rolling_hash=bytes.fromhex(row["rolling_hash"][2:]),
            status=PriorityStatus(row["status"]),
            message_id=row["message_id"],
            message=None if row["message"] is None else message_from_json(orjson.loads(row["message"])),
            payload=row["payload"],
            leaf=_int_or_none(row["leaf"]),
            bounce=row["bounce"],
            outcome=row["outcome"],
            tx=row["tx"],
            error=row["error"],
            block_number=row["block_number"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "priority_id": "0x" + self.priority_id.hex(),
            "source_chain_id": self.source_chain_id,
            "batch_number": self.batch_number,
            "index_in_batch": self.index_in_batch,
            "deadline": self.deadline,
            "seconds_left": round(self.deadline - time.time(), 1),
            "status": str(self.status),
            "message_id": self.message_id,
            "outcome": self.outcome,
            "tx": self.tx,
            "error": self.error,
            "block_number": self.block_number,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class QueuedOp:
    """A final `PriorityOpQueued` event of this chain's L1 queue, its sealed body opened: the message
    (None if it could not be had: `problem` says why) and the peering's verdict on it (`bounce`: the rule
    it breaks, so it is bounced; None: executed)."""

    index: int
    priority_id: bytes
    source_chain_id: int
    batch_number: int
    index_in_batch: int
    deadline: float
    rolling_hash: bytes
    block_number: int
    peer: str
    message: Message | None
    siblings: tuple[int, ...] = ()
    bounce: str | None = None
    problem: str | None = None
    block_hash: str | None = None  # as read, for telling a reorganisation

    def payload(self) -> str:
        """The JSON a forced message is stored with: where its leaf is (the executor's proof)."""
        return orjson.dumps(
            {
                "forced": {
                    "queue_index": self.index,
                    "batch_number": self.batch_number,
                    "index": self.index_in_batch,
                    "siblings": [str(s) for s in self.siblings],
                }
            }
        ).decode()


def format_time(at: float | None) -> str:
    """A unix time as "2025-01-31 12:00:00Z" ("-" for None)."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --- the store --------------------------------------------------------------------------------


class Store:
    """The institution's SQLite store. Safe to share between threads, and between processes (each
    with its own Store on the same file)."""

    def __init__(self, path: Path | str, *, refusals: RefusalPolicy | None = None) -> None:
        self.path = Path(path)
        self.refusal_policy = refusals or RefusalPolicy()
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None
        self._db = Database(conn)
        self._lock = threading.RLock()
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        self._db.execute("PRAGMA foreign_keys = ON")
        try:
            self._enable_wal()
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"cannot use {self.path} as a store: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the outgoing side --------------------------------------------------------------------

    def record_sent(self, sent: Sequence[Sent], *, cursor: WatchCursor | tuple[str, int]) -> int:
        """A watcher's final `MessageSent` events up to its cursor's block: each message stored "sent",
        and the watcher's cursor moved, together. Returns how many were new.

        A message already stored with the same leaf and outbox hash is left alone (a range read
        again). One stored with another content is a conflict with the chain: nothing of the range is
        stored, the cursor stays, and the "outbox" stream is halted for an operator, in the same
        transaction."""
        now = time.time()
        new = 0
        with self._write() as db:
            for s in sent:
                known = self._message_or_none(db, message_key(s.message.source_chain_id, s.message.nonce))
                if known is not None and (known.leaf, known.outbox_hash) != (s.message.leaf(), s.outbox_hash):
                    self._halt(
                        db,
                        "outbox",
                        f"conflict: the chain has message {known.id} in block {s.block_number} with leaf "
                        f"{s.message.leaf():#x} and outbox hash {s.outbox_hash:#x}; this store has it "
                        f"{known.status} with leaf {known.leaf:#x} and outbox hash "
                        f"{known.outbox_hash or 0:#x} (from block {known.block_number})",
                        s.block_number,
                        now,
                    )
                    return 0
                if known is not None and s.block_hash is not None and known.block_hash != s.block_hash:
                    # the same message, read again from another block: where it is now
                    self._move_blocks(db, "outbox", [(known.id, s.block_number, s.block_hash)], now)
            for s in sent:
                row = _message_row(s.message, Direction.OUT, s.peer, s.block_number) | {
                    "outbox_hash": str(s.outbox_hash),
                    "block_hash": s.block_hash,
                }
                new += self._insert(db, row, OutStatus.SENT, f"MessageSent in block {s.block_number}", now)
            self._move_cursor(db, _cursor(cursor), now)
        return new

    def close_batch(self, batch_number: int, *, capacity: int, message_ids: Sequence[str]) -> StoredBatch:
        """Close batch `batch_number` over `message_ids` (this chain's next "sent" messages, in nonce
        order): the batch is stored "proving" and its messages "batched", together."""
        if not message_ids:
            raise StoreError(f"batch {batch_number}: a batch holds at least one message")
        if len(message_ids) > capacity:
            raise StoreError(f"batch {batch_number}: {len(message_ids)} messages exceed capacity {capacity}")
        now = time.time()
        with self._write() as db:
            last = self._last_batch(db)
            expected = 0 if last is None else last.batch_number + 1
            if batch_number != expected:
                raise StepRefused(f"batch {batch_number} cannot close: the next batch is {expected}")
            first_nonce = 0 if last is None else last.last_nonce + 1
            h_start = 0 if last is None else last.h_end
            rows = [self._message_in(db, key) for key in message_ids]
            for index, m in enumerate(rows):
                if m.direction != Direction.OUT or m.status != OutStatus.SENT:
                    raise StepRefused(
                        f"batch {batch_number}: message {m.id} is {m.status}, not a sent outgoing one"
                    )
                if m.nonce != first_nonce + index:
                    raise StepRefused(
                        f"batch {batch_number}: message {m.id} has nonce {m.nonce}, the batch needs "
                        f"{first_nonce + index} there"
                    )
            h_end = rows[-1].outbox_hash
            assert h_end is not None
            db.execute(
                "INSERT INTO batches (batch_number, status, capacity, count, first_nonce, last_nonce, "
                "h_start, h_end, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                [
                    batch_number,
                    BatchStatus.PROVING,
                    capacity,
                    len(rows),
                    first_nonce,
                    rows[-1].nonce,
                    str(h_start),
                    str(h_end),
                    now,
                    now,
                ],
            )
            self._record_batch(
                db,
                batch_number,
                None,
                BatchStatus.PROVING,
                reason=f"closed with {len(rows)} messages",
                at=now,
            )
            for index, m in enumerate(rows):
                self._move(
                    db,
                    m,
                    OutStatus.BATCHED,
                    f"in batch {batch_number}",
                    now,
                    batch_number=batch_number,
                    index_in_batch=index,
                )
            return self._batch_in(db, batch_number)

    def change_capacity(self, batch_number: int, capacity: int) -> StoredBatch:
        """Prove a "proving" batch with the circuit of another `capacity` (one that holds it): nothing
        of a batch is on L1, on a peer or pushed before it is proven, so its capacity may still
        change (after the configured capacities did)."""
        now = time.time()
        with self._write() as db:
            batch = self._batch_in(db, batch_number)
            if batch.status != BatchStatus.PROVING:
                raise StepRefused(f"batch {batch_number} is {batch.status}: its capacity is fixed")
            if batch.count > capacity:
                raise StepRefused(
                    f"batch {batch_number} has {batch.count} messages; capacity {capacity} is less"
                )
            db.execute(
                "UPDATE batches SET capacity = ?, updated_at = ? WHERE batch_number = ?",
                [capacity, now, batch_number],
            )
            self._record_batch(
                db,
                batch_number,
                BatchStatus.PROVING,
                BatchStatus.PROVING,
                reason=f"capacity {batch.capacity} -> {capacity} (not configured any more)",
                at=now,
            )
            return self._batch_in(db, batch_number)

    def record_proof(
        self,
        batch_number: int,
        *,
        batch_root: int,
        public_inputs: Sequence[int],
        proof: Mapping[str, Any],
        seconds: float,
        h_start: int | None = None,
        h_end: int | None = None,
        capacity: int | None = None,
    ) -> bool:
        """A "proving" batch's proof, of a statement from outbox hash `h_start` to `h_end` with the
        circuit of `capacity`: the batch becomes "proven". False if it was not "proving" (a second
        proof of it, after a restart) or is no longer that batch (dropped by a rewind and closed again
        over other messages meanwhile, or proven with another capacity since): nothing changes."""
        now = time.time()
        with self._write() as db:
            batch = self._batch_in(db, batch_number)
            if batch.status != BatchStatus.PROVING:
                return False
            if capacity is not None and capacity != batch.capacity:
                log.warning(
                    "batch %d: a proof with capacity %d, the batch has %d",
                    batch_number,
                    capacity,
                    batch.capacity,
                )
                return False
            if h_start is not None and h_end is not None and (batch.h_start, batch.h_end) != (h_start, h_end):
                log.warning(
                    "batch %d: a proof of another statement (the batch was closed again)", batch_number
                )
                return False
            self._move_batch(
                db,
                batch,
                BatchStatus.PROVEN,
                f"proven in {seconds:.2f} s",
                now,
                batch_root=str(batch_root),
                public_inputs=orjson.dumps([str(x) for x in public_inputs]).decode(),
                proof=orjson.dumps(proof).decode(),
                proving_seconds=seconds,
            )
        return True

    def start_commit(self, batch_number: int) -> StoredBatch:
        """A "proven" batch is about to be committed: "committing", written before the transaction
        is sent (after a restart, L1's batch counter says whether it landed)."""
        now = time.time()
        with self._write() as db:
            batch = self._batch_in(db, batch_number)
            if batch.status == BatchStatus.PROVEN:
                self._move_batch(db, batch, BatchStatus.COMMITTING, "committing to L1", now)
            elif batch.status != BatchStatus.COMMITTING:
                raise StepRefused(f"batch {batch_number} is {batch.status}: only a proven batch is committed")
            return self._batch_in(db, batch_number)

    def commit_refused(self, batch_number: int, reason: str) -> StoredBatch:
        """The commit transaction was refused or never mined: "proven" again, to be retried after the
        retry policy's wait for one more failed try."""
        now = time.time()
        with self._write() as db:
            batch = self._batch_in(db, batch_number)
            if batch.status not in (BatchStatus.COMMITTING, BatchStatus.PROVEN):
                raise StepRefused(f"batch {batch_number} is {batch.status}: it was not being committed")
            attempts = batch.attempts + 1
            self._move_batch(
                db,
                batch,
                BatchStatus.PROVEN,
                f"commit refused (try {attempts}): {reason}",
                now,
                attempts=attempts,
                next_attempt_at=RETRY.next_attempt(attempts, now),
                error=reason,
            )
            return self._batch_in(db, batch_number)

    def settle_batch(
        self, batch_number: int, *, leaf_index: int, tx: str | None, gas: int | None, reason: str
    ) -> bool:
        """The batch is settled on L1: it and its messages become "settled", together. False if it
        already was."""
        now = time.time()
        with self._write() as db:
            batch = self._batch_in(db, batch_number)
            if batch.status == BatchStatus.SETTLED:
                return False
            if batch.status not in (BatchStatus.PROVEN, BatchStatus.COMMITTING):
                raise StepRefused(f"batch {batch_number} is {batch.status}: it cannot be settled yet")
            self._move_batch(
                db,
                batch,
                BatchStatus.SETTLED,
                f"settled on L1 ({reason})",
                now,
                commit_tx=tx or batch.commit_tx,
                commit_gas=gas or batch.commit_gas,
                leaf_index=leaf_index,
                settled_at=now,
                error=None,
                next_attempt_at=None,
            )
            for m in self._batch_messages_in(db, batch_number):
                if m.status == OutStatus.BATCHED:
                    self._move(
                        db, m, OutStatus.SETTLED, f"batch {batch_number} settled on L1 ({reason})", now
                    )
        return True

    def record_push(self, message_ids: Sequence[str], peer: str, reason: str) -> list[StoredMessage]:
        """Messages about to be pushed to `peer` (or their withdrawal finalized on L1): "pushed" (a
        forced one stays "forced": it is pushed too, in case its sealed body on L1 cannot be opened),
        one more try counted, the next one after the REPUSH wait. Returns the messages moved (one no
        longer settled, pushed or forced, e.g. a receipt came meanwhile, is left out)."""
        now = time.time()
        moved = []
        with self._write() as db:
            for key in message_ids:
                m = self._message_in(db, key)
                if m.direction != Direction.OUT or m.status not in PUSHABLE:
                    continue
                attempts = m.attempts + 1
                again = f" again (try {attempts}): no receipt yet" if m.status != OutStatus.SETTLED else ""
                self._move(
                    db,
                    m,
                    OutStatus.FORCED if m.status == OutStatus.FORCED else OutStatus.PUSHED,
                    reason + again,
                    now,
                    peer=peer,
                    attempts=attempts,
                    next_attempt_at=REPUSH.next_attempt(attempts, now),
                )
                moved.append(self._message_in(db, key))
        return moved

    def push_now(self, peer: str) -> int:
        """Every message pushed to `peer` and still without a receipt is due again now (the peer was
        deaf for a while, or this daemon was); returns how many."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE messages SET next_attempt_at = ? WHERE direction = 'out' AND peer = ? "
                "AND status IN (?, ?)",
                [time.time(), peer, str(OutStatus.PUSHED), str(OutStatus.FORCED)],
            )
            return cursor.rowcount

    def first_sight(self, envelope_id: str, sender: str, sent_at: float, *, forget_before: float) -> bool:
        """Remember an envelope taken from the bus; False if its id was seen before (a replay).
        Envelopes sent before `forget_before` are forgotten: the caller refuses them as stale."""
        with self._write() as db:
            db.execute("DELETE FROM envelopes WHERE sent_at < ?", [forget_before])
            cursor = db.execute(
                "INSERT OR IGNORE INTO envelopes (id, sender, sent_at, seen_at) VALUES (?, ?, ?, ?)",
                [envelope_id, sender, sent_at, time.time()],
            )
            return cursor.rowcount == 1

    def record_receipts(self, peer: str, receipts: Sequence[ReceiptUpdate]) -> list[str]:
        """A peer's receipts for this chain's messages, together. A receipt for a message this chain
        did not send to that peer, or one that reports nothing new, changes nothing; the returned
        list says why each such receipt was not applied (an executed message stays executed)."""
        now = time.time()
        ignored = []
        with self._write() as db:
            for r in receipts:
                m = self._message_or_none(db, r.message_id)
                if m is None or m.direction != Direction.OUT or m.peer != peer:
                    ignored.append(
                        f"receipt for {r.message_id}, which is not a message this chain sent to {peer}"
                    )
                    continue
                if r.status not in RECEIPT_STATUSES:
                    ignored.append(f"receipt for {r.message_id}: {r.status!r} is not a receipt status")
                    continue
                if m.status == r.status or m.status in _NO_RECEIPT_CHANGES:
                    continue  # nothing new, a final answer already, or a message not pushed yet
                reason = f"{peer} reports {r.status}" + (f": {r.reason}" if r.reason else "")
                self._move(
                    db,
                    m,
                    r.status,
                    reason,
                    now,
                    exec_tx=r.tx,
                    error=r.reason,
                    next_attempt_at=None,
                    **({"executed_at": now} if r.status == OutStatus.EXECUTED else {}),
                )
        return ignored

    def record_withdrawal(self, message_id: str, *, tx: str | None, gas: int | None, reason: str) -> None:
        """A withdrawal to L1 was finalized on the Hub: the message is "executed"."""
        now = time.time()
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.status == OutStatus.EXECUTED:
                return
            self._move(
                db, m, OutStatus.EXECUTED, reason, now, exec_tx=tx, exec_gas=gas, executed_at=now, error=None
            )

    def withdrawal_failed(self, message_id: str, reason: str) -> None:
        """Finalizing a withdrawal failed: it stays "pushed", tried again when its push is due."""
        now = time.time()
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.status == OutStatus.PUSHED:
                self._move(db, m, OutStatus.PUSHED, f"finalizing failed: {reason}", now, error=reason)

    # --- the incoming side --------------------------------------------------------------------

    def record_deposits(self, deposits: Sequence[Deposit], *, cursor: WatchCursor | tuple[str, int]) -> int:
        """A watcher's final L1 deposits to this chain up to its cursor's block: each stored
        "verified" (L1 itself holds them), and the cursor moved, together. Returns how many were new.
        A deposit stored with another content halts the "l1-deposits" stream instead (see
        record_sent)."""
        now = time.time()
        new = 0
        with self._write() as db:
            for d in deposits:
                known = self._message_or_none(db, message_key(d.message.source_chain_id, d.message.nonce))
                if known is not None and known.leaf != d.message.leaf():
                    self._halt(
                        db,
                        "l1-deposits",
                        f"conflict: L1 has deposit {known.id} in block {d.block_number} with leaf "
                        f"{d.message.leaf():#x}; this store has it {known.status} with leaf {known.leaf:#x}",
                        d.block_number,
                        now,
                    )
                    return 0
            for d in deposits:
                row = _message_row(d.message, Direction.IN, L1_PEER, d.block_number) | {
                    "payload": orjson.dumps({"deposit": {"leaf_index": d.leaf_index}}).decode(),
                    "block_hash": d.block_hash,
                }
                new += self._insert(
                    db,
                    row,
                    InStatus.VERIFIED,
                    f"DepositQueued on L1 in block {d.block_number} (final)",
                    now,
                )
            self._move_cursor(db, _cursor(cursor), now)
        return new

    def receive(self, peer: str, received: Sequence[Received], reason: str) -> list[str]:
        """Messages from `peer`, stored "received", together; returns the ids that were new."""
        now = time.time()
        new = []
        with self._write() as db:
            for r in received:
                row = _message_row(r.message, Direction.IN, peer, None) | {"payload": r.payload}
                if self._insert(db, row, InStatus.RECEIVED, reason, now):
                    new.append(message_key(r.message.source_chain_id, r.message.nonce))
        return new

    def record_verdicts(
        self,
        *,
        verified: Sequence[str],
        refused: Mapping[str, str],
        bouncing: Mapping[str, str] | None = None,
    ) -> None:
        """Off-chain checks of "received" messages: those in `verified` become "verified", those in
        `refused` (id -> reason) "refused", and those settled but not allowed here (`bouncing`, id ->
        the rule) "bouncing", together. Messages no longer "received" are left alone."""
        now = time.time()
        with self._write() as db:
            for key, reason in (bouncing or {}).items():
                m = self._message_in(db, key)
                if m.status == InStatus.RECEIVED:
                    self._move(db, m, InStatus.BOUNCING, f"to be bounced: {reason}", now, error=reason)
            for key in verified:
                m = self._message_in(db, key)
                if m.status == InStatus.RECEIVED:
                    self._move(db, m, InStatus.VERIFIED, "path, batch proof and L1 settlement checked", now)
            for key, reason in refused.items():
                m = self._message_in(db, key)
                if m.status == InStatus.RECEIVED:
                    self._move(db, m, InStatus.REFUSED, reason, now, error=reason)

    def start_execution(self, message_ids: Sequence[str]) -> None:
        """Messages about to go into one execute transaction: "executing", written before it is sent
        (after a restart, the Inbox's nullifiers say which were executed)."""
        now = time.time()
        with self._write() as db:
            for key in message_ids:
                m = self._message_in(db, key)
                if m.status not in EXECUTABLE:
                    raise StepRefused(f"message {key} is {m.status}: only a verified message is executed")
                self._move(db, m, InStatus.EXECUTING, "in an execute transaction", now)

    def execution_not_sent(self, message_ids: Sequence[str], reason: str) -> None:
        """The execute transaction was refused or never mined: "verified" again, each with one more
        failed try and the retry policy's wait."""
        now = time.time()
        with self._write() as db:
            for key in message_ids:
                m = self._message_in(db, key)
                if m.status == InStatus.EXECUTING:
                    self._try_again(
                        db, m, InStatus.VERIFIED, f"execute transaction failed: {reason}", now, error=reason
                    )

    def record_outcomes(
        self, outcomes: Sequence[Outcome], *, tx: str | None, gas_each: int | None, block: int | None = None
    ) -> None:
        """What an execute transaction (or, after a restart, the Inbox's nullifiers) says of
        "executing" messages, together: "executed", or "failed" (to be replayed by an operator)."""
        now = time.time()
        with self._write() as db:
            for o in outcomes:
                m = self._message_in(db, o.message_id)
                if m.status != InStatus.EXECUTING:
                    continue
                if o.status == InStatus.EXECUTED:
                    self._executed(db, m, o.reason, now, tx=tx, gas=gas_each, block=block)
                elif o.status == InStatus.FAILED:
                    self._move(
                        db,
                        m,
                        InStatus.FAILED,
                        o.reason,
                        now,
                        exec_tx=tx,
                        error=o.reason,
                        attempts=m.attempts + 1,
                    )
                elif o.status == InStatus.VERIFIED:  # not executed after all: run it again
                    self._move(db, m, InStatus.VERIFIED, o.reason, now)
                else:
                    raise StoreError(f"message {o.message_id}: {o.status} is not an execution outcome")

    def _executed(
        self,
        db: Database,
        m: StoredMessage,
        reason: str,
        now: float,
        *,
        tx: str | None,
        gas: int | None,
        block: int | None,
    ) -> None:
        """An incoming message executed (in `block`); a bounce message's original is refunded with it."""
        self._move(
            db,
            m,
            InStatus.EXECUTED,
            reason,
            now,
            exec_tx=tx,
            exec_gas=gas,
            executed_at=now,
            error=None,
            exec_block=block,
            confirmed_at=None,
        )
        original = self._original_in(db, m.message) if m.message.is_bounce else None
        if original is not None and original.status != OutStatus.REFUNDED:
            self._move(
                db,
                original,
                OutStatus.REFUNDED,
                f"refunded: bounce {m.id} executed" + (f" in {tx}" if tx else ""),
                now,
            )

    def unexecutable(self, message_id: str, reason: str) -> bool:
        """An incoming message no execute transaction can carry (it starves it at every gas limit):
        "failed" without having run, like a target that reverts (the operator may replay or bounce it).
        False if it is no longer waiting to be executed."""
        now = time.time()
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.status not in EXECUTABLE:
                return False
            self._move(
                db,
                m,
                InStatus.FAILED,
                reason,
                now,
                error=reason,
                attempts=m.attempts + 1,
                next_attempt_at=None,
            )
            return True

    def request_replay(self, message_id: str, reason: str = "replay requested by the operator") -> str:
        """Ask the daemon to execute a failed incoming message again.

        "failed" -> "replay" (attempts reset, next attempt now) and returns "replay"; a message
        already "replay", "verified" or "executing" is left as it is and its status returned
        (idempotent).
        Raises StoreError for an unknown, outgoing, executed or not yet verified message.
        """
        now = time.time()
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.direction != Direction.IN:
                raise StoreError(
                    f"message {message_id} is outgoing (to {m.peer}): only incoming messages are "
                    "replayed, by the relayer of the chain they are addressed to"
                )
            if m.status == InStatus.EXECUTED:
                tx = f" in transaction {m.exec_tx}" if m.exec_tx else ""
                raise StoreError(
                    f"message {message_id} was executed at {format_time(m.executed_at)}{tx}; "
                    "it cannot be replayed"
                )
            if m.status in (InStatus.REPLAY, InStatus.VERIFIED, InStatus.EXECUTING):
                return str(m.status)  # already to be executed, or being executed
            if m.status != InStatus.FAILED:
                raise StoreError(
                    f"message {message_id} is {str(m.status)!r}: only a failed message can be replayed"
                    + (" (it did not verify; see its history)" if m.status == InStatus.REFUSED else "")
                )
            self._move(db, m, InStatus.REPLAY, reason, now, attempts=0, next_attempt_at=now)
        return "replay"

    def request_bounce(self, message_id: str, reason: str) -> str:
        """An operator gives up on a failed incoming message: "failed" (or "replay") -> "bouncing",
        its value to go back to the source; returns the status. A message already "bouncing" or
        "bounced" is left as it is (idempotent). Raises StoreError for any other."""
        if not reason.strip():
            raise StoreError("a bounce needs a reason: it is sent back to the source")
        reason = reason[:500]  # as much as goes on chain with the bounce
        now = time.time()
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.direction != Direction.IN:
                raise StoreError(
                    f"message {message_id} is outgoing (to {m.peer}): only the chain it is addressed to "
                    "can bounce it"
                )
            if m.status in (InStatus.BOUNCING, InStatus.BOUNCED):
                return str(m.status)
            if m.message.is_bounce:
                raise StoreError(f"message {message_id} is itself a bounce: a refund is never bounced back")
            if m.status not in (InStatus.FAILED, InStatus.REPLAY):
                raise StoreError(
                    f"message {message_id} is {str(m.status)!r}: only a failed message can be bounced"
                )
            self._move(
                db,
                m,
                InStatus.BOUNCING,
                f"bounce: {reason}",
                now,
                error=reason,
                attempts=0,
                next_attempt_at=now,
            )
        return str(InStatus.BOUNCING)

    def record_bounces(
        self,
        bounced: Mapping[str, str],
        *,
        executed: Mapping[str, str] | None = None,
        rejected: Mapping[str, str] | None = None,
        tx: str | None,
        gas_each: int | None,
        block: int | None = None,
    ) -> None:
        """What a bounce transaction (in `block`) says: each "bouncing" message in `bounced` (id -> what
        happened) is "bounced", each in `executed` (executed by someone else first) "executed", and
        each the Inbox `rejected` (id -> why) stays "bouncing", to be tried again; together."""
        now = time.time()
        with self._write() as db:
            for key, reason in (rejected or {}).items():
                self._bounce_again(db, self._message_in(db, key), reason, now)
            for key, reason in (executed or {}).items():
                m = self._message_in(db, key)
                if m.status == InStatus.BOUNCING:
                    self._move(
                        db, m, InStatus.EXECUTED, reason, now, executed_at=now, error=None, exec_block=block
                    )
            for key, reason in bounced.items():
                m = self._message_in(db, key)
                if m.status == InStatus.BOUNCING:
                    self._move(
                        db,
                        m,
                        InStatus.BOUNCED,
                        reason,
                        now,
                        exec_tx=tx,
                        exec_gas=gas_each,
                        executed_at=now,
                        exec_block=block,
                        confirmed_at=None,
                    )

    def bounce_not_done(self, message_ids: Sequence[str], reason: str) -> None:
        """A bounce transaction was refused or never mined: still "bouncing", with one more failed try
        and the retry policy's wait."""
        now = time.time()
        with self._write() as db:
            for key in message_ids:
                self._bounce_again(db, self._message_in(db, key), reason, now)

    @staticmethod
    def _bounce_again(db: Database, m: StoredMessage, reason: str, now: float) -> None:
        """A bounce that did not happen: one more failed try, and the retry policy's wait."""
        if m.status == InStatus.BOUNCING:
            Store._try_again(db, m, InStatus.BOUNCING, f"bounce failed: {reason}", now, error=m.error)

    def original_of(self, bounce: Message) -> StoredMessage | None:
        """The outgoing message a bounce message brings back: sent by this chain to the bounce's
        source, from the bounce's target, with its asset and amount."""
        with self._read() as db:
            return self._original_in(db, bounce)

    # --- forced inclusion: the sending side --------------------------------------------------

    def request_force(self, message_ids: Sequence[str], reason: str) -> list[StoredMessage]:
        """Outgoing messages to force through L1 (no receipt in time, or an operator asked):
        "forcing", due now. Returns those moved; one no longer settled or pushed is left alone."""
        now = time.time()
        moved = []
        with self._write() as db:
            for key in message_ids:
                m = self._message_in(db, key)
                if m.direction != Direction.OUT or m.status not in FORCEABLE or m.peer == L1_PEER:
                    continue
                self._move(db, m, OutStatus.FORCING, reason, now, attempts=0, next_attempt_at=None)
                moved.append(self._message_in(db, key))
        return moved

    def force(self, message_id: str, reason: str = "forcing requested by the operator") -> str:
        """An operator's request to force an outgoing message through L1 now: "forcing", and the daemon
        sends requestPriorityOp shortly. One forcing or forced already is left alone. Returns the
        message's status; StoreError if it cannot be forced (to L1, not settled yet, answered)."""
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.direction != Direction.OUT:
                raise StoreError(f"{message_id} is a message to this chain: only its sender forces it")
            if m.status in (OutStatus.FORCING, OutStatus.FORCED):
                return str(m.status)
            if m.peer == L1_PEER:
                raise StoreError(f"{message_id} goes to L1: its withdrawal is finalized there, not forced")
            if m.status not in FORCEABLE:
                raise StoreError(
                    f"{message_id} is {m.status}: only a settled message without the peer's answer is forced"
                )
            self._move(db, m, OutStatus.FORCING, reason, time.time(), attempts=0, next_attempt_at=None)
            return str(OutStatus.FORCING)

    def record_forced(
        self, message_id: str, *, tx: str | None, index: int | None, deadline: float | None, reason: str
    ) -> None:
        """A "forcing" message is in its destination's L1 priority queue: "forced", with the
        transaction, its position and its deadline (unknown when found queued after a restart)."""
        now = time.time()
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.status != OutStatus.FORCING:
                return
            self._move(
                db,
                m,
                OutStatus.FORCED,
                reason,
                now,
                force_tx=tx,
                force_index=index,
                force_deadline=deadline,
                next_attempt_at=None,
                error=None,
            )

    def force_not_sent(self, message_id: str, reason: str) -> None:
        """requestPriorityOp was refused or never mined: still "forcing", with one more failed try and
        the retry policy's wait."""
        now = time.time()
        with self._write() as db:
            m = self._message_in(db, message_id)
            if m.status == OutStatus.FORCING:
                self._try_again(db, m, OutStatus.FORCING, f"forcing failed: {reason}", now, error=reason)

    # --- forced inclusion: this chain's priority queue ----------------------------------------

    def record_priority_ops(self, ops: Sequence[QueuedOp], *, cursor: WatchCursor | tuple[str, int]) -> int:
        """A watcher's final operations of this chain's L1 priority queue up to its cursor's block,
        and the cursor moved, together: each operation "queued" (or "unreadable" without its message),
        its message stored "verified" (or "bouncing": the peering refuses it) unless the store has it
        already; one received from the bus but not verified yet, or refused, is now settled as L1
        says (L1 checked its leaf in its batch). Returns how many operations were new."""
        now = time.time()
        new = 0
        with self._write() as db:
            for op in ops:
                row = {
                    "queue_index": op.index,
                    "priority_id": "0x" + op.priority_id.hex(),
                    "source_chain_id": op.source_chain_id,
                    "batch_number": op.batch_number,
                    "index_in_batch": op.index_in_batch,
                    "deadline": op.deadline,
                    "rolling_hash": "0x" + op.rolling_hash.hex(),
                    **_forced_columns(op),
                    "status": str(
                        PriorityStatus.QUEUED if op.message is not None else PriorityStatus.UNREADABLE
                    ),
                    "error": op.problem,
                    "block_number": op.block_number,
                    "block_hash": op.block_hash,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                cursor_ = db.execute(
                    f"INSERT INTO priority_ops ({', '.join(row)}) VALUES ({_marks(row)}) "
                    "ON CONFLICT (queue_index) DO NOTHING",
                    list(row.values()),
                )
                if cursor_.rowcount == 0:
                    continue
                new += 1
                if op.message is not None:
                    self._forced_message(db, op, now)
            self._move_cursor(db, _cursor(cursor), now)
        return new

    def resolve_priority_op(self, op: QueuedOp) -> bool:
        """An "unreadable" operation whose message was found (the bus brought it): "queued", its message
        settled as record_priority_ops does, together. False if the operation is not unreadable."""
        assert op.message is not None
        now = time.time()
        with self._write() as db:
            if self._priority_op_in(db, op.index).status != PriorityStatus.UNREADABLE:
                return False
            self._set_op(db, op.index, now, status=PriorityStatus.QUEUED, error=None, **_forced_columns(op))
            self._forced_message(db, op, now)
        return True

    def unreadable_again(self, index: int, reason: str) -> None:
        """An unreadable operation whose message is still missing: looked for again on the retry policy."""
        now = time.time()
        with self._write() as db:
            op = self._priority_op_in(db, index)
            if op.status == PriorityStatus.UNREADABLE:
                attempts = op.attempts + 1
                self._set_op(
                    db,
                    index,
                    now,
                    attempts=attempts,
                    next_attempt_at=RETRY.next_attempt(attempts, now),
                    error=reason,
                )

    def _forced_message(self, db: Database, op: QueuedOp, now: float) -> None:
        assert op.message is not None
        status = InStatus.VERIFIED if op.bounce is None else InStatus.BOUNCING
        what = f"forced through L1 (priority operation {op.index})"
        row = _message_row(op.message, Direction.IN, op.peer, None) | {
            "payload": op.payload(),
            "error": op.bounce,
        }
        if self._insert(
            db, row, status, what + ("" if op.bounce is None else f"; to be bounced: {op.bounce}"), now
        ):
            return
        m = self._message_in(db, row["id"])
        if m.leaf != int(row["leaf"]):  # another message under its id: the operation keeps its own
            log.error("%s: the store has another message under id %s", what, m.id)
        elif m.status in (InStatus.RECEIVED, InStatus.REFUSED):
            self._move(db, m, status, f"{what}: settled on L1", now, error=op.bounce, payload=op.payload())

    def start_priority(self, indexes: Sequence[int]) -> None:
        """Operations about to go into one processPriorityOps transaction: "processing", written before
        it is sent (after a restart, the Inbox's priority cursor says which were processed)."""
        now = time.time()
        with self._write() as db:
            for index in indexes:
                op = self._priority_op_in(db, index)
                if op.status != PriorityStatus.QUEUED:
                    raise StepRefused(
                        f"priority operation {index} is {op.status}: only a queued one is processed"
                    )
                self._set_op(db, index, now, status=PriorityStatus.PROCESSING)

    def priority_not_sent(self, indexes: Sequence[int], reason: str) -> None:
        """The processPriorityOps transaction was refused or never mined: "queued" again, with one more
        failed try and the retry policy's wait."""
        now = time.time()
        with self._write() as db:
            for index in indexes:
                op = self._priority_op_in(db, index)
                if op.status != PriorityStatus.PROCESSING:
                    continue
                attempts = op.attempts + 1
                self._set_op(
                    db,
                    index,
                    now,
                    status=PriorityStatus.QUEUED,
                    attempts=attempts,
                    next_attempt_at=RETRY.next_attempt(attempts, now),
                    error=reason,
                )

    def record_priority_outcomes(
        self,
        outcomes: Mapping[int, tuple[str, str]],
        *,
        tx: str | None,
        gas_each: int | None,
        block: int | None,
    ) -> None:
        """What the Inbox did with priority operations (index -> (outcome, reason); outcome "executed",
        "failed", "bounced", or "closed": its message was done before, and `reason` says as what,
        "executed" or "bounced"): each "processed", and its message moved to match, together."""
        now = time.time()
        with self._write() as db:
            for index, (outcome, reason) in outcomes.items():
                op = self._priority_op_in(db, index)
                if op.status == PriorityStatus.PROCESSED:
                    continue
                self._set_op(
                    db,
                    index,
                    now,
                    status=PriorityStatus.PROCESSED,
                    outcome=outcome,
                    tx=tx,
                    error=None,
                    next_attempt_at=None,
                )
                m = None if op.message_id is None else self._message_or_none(db, op.message_id)
                if m is None or m.leaf != op.leaf:
                    log.error(
                        "priority operation %d: %s; the store has another message under its id %s",
                        op.index,
                        outcome,
                        op.message_id,
                    )
                    continue
                done = reason if outcome == "closed" else outcome
                what = f"priority operation {op.index}: {outcome}" + (f" in {tx}" if tx else "")
                if done == "executed" and m.status != InStatus.EXECUTED:
                    self._executed(db, m, what, now, tx=tx, gas=gas_each, block=block)
                elif done == "bounced" and m.status != InStatus.BOUNCED:
                    self._move(
                        db,
                        m,
                        InStatus.BOUNCED,
                        what,
                        now,
                        exec_tx=tx,
                        exec_gas=gas_each,
                        executed_at=now,
                        exec_block=block,
                        confirmed_at=None,
                    )
                elif done == "failed":
                    self._move(
                        db,
                        m,
                        InStatus.FAILED,
                        f"{what}: {reason}",
                        now,
                        exec_tx=tx,
                        error=reason,
                        attempts=m.attempts + 1,
                        exec_block=None,
                    )

    def requeue_priority(self, from_index: int, reason: str) -> int:
        """Operations the store has processed (or processing) from `from_index` on, which the Inbox has not
        (its cursor is lower: a transaction reorganised away): "queued" again. Returns how many."""
        now = time.time()
        with self._write() as db:
            cursor_ = db.execute(
                "UPDATE priority_ops SET status = ?, outcome = NULL, error = ?, updated_at = ?, "
                "next_attempt_at = NULL WHERE queue_index >= ? AND status IN (?, ?)",
                [
                    str(PriorityStatus.QUEUED),
                    reason,
                    now,
                    from_index,
                    str(PriorityStatus.PROCESSED),
                    str(PriorityStatus.PROCESSING),
                ],
            )
            return cursor_.rowcount

    def priority_ops(
        self, *, status: str | Sequence[str] | None = None, limit: int | None = None
    ) -> list[PriorityOp]:
        """This chain's priority operations, in queue order (those in `status`, if given)."""
        sql, params = "SELECT * FROM priority_ops", []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            sql += f" WHERE status IN ({_marks(statuses)})"
            params += [str(s) for s in statuses]
        sql += " ORDER BY queue_index"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [PriorityOp.from_row(row) for row in self._query(sql, params)]

    def priority_processed(self) -> int:
        """How far this store has this chain's priority queue processed: the index after the last
        processed operation (0: none), the cursor the Inbox has once its rounds are final."""
        rows = self._query(
            "SELECT max(queue_index) AS last FROM priority_ops WHERE status = ?",
            [str(PriorityStatus.PROCESSED)],
        )
        last = rows[0]["last"]
        return 0 if last is None else int(last) + 1

    def priority_op(self, index: int) -> PriorityOp | None:
        rows = self._query("SELECT * FROM priority_ops WHERE queue_index = ?", [index])
        return PriorityOp.from_row(rows[0]) if rows else None

    def _priority_op_in(self, db: Database, index: int) -> PriorityOp:
        rows = list(db.query("SELECT * FROM priority_ops WHERE queue_index = ?", [index]))
        if not rows:
            raise StoreError(f"no priority operation {index} in the store {self.path}")
        return PriorityOp.from_row(rows[0])

    @staticmethod
    def _set_op(db: Database, index: int, now: float, **values: Any) -> None:
        values = {k: _encode(v) for k, v in values.items()} | {"updated_at": now}
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(f"UPDATE priority_ops SET {assignments} WHERE queue_index = ?", [*values.values(), index])

    def unconfirmed(self, final_block: int) -> list[StoredMessage]:
        """Incoming messages executed or bounced in a block that is final now (up to `final_block`)
        and not yet confirmed there: the executor checks the Inbox still says so."""
        rows = self._query(
            "SELECT * FROM messages WHERE direction = 'in' AND status IN ('executed', 'bounced') "
            "AND exec_block IS NOT NULL AND exec_block <= ? AND confirmed_at IS NULL ORDER BY exec_block",
            [final_block],
        )
        return [StoredMessage.from_row(row) for row in rows]

    def confirm_outcomes(self, confirmed: Sequence[str], undone: Sequence[str]) -> None:
        """After the blocks of their executions or bounces became final: `confirmed` ones are final
        as they are; `undone` ones were reorganised away (the Inbox no longer has them processed), so
        they go back to "verified" (an execution) or "bouncing" (a bounce), to be done again;
        together."""
        now = time.time()
        with self._write() as db:
            for key in confirmed:
                db.execute("UPDATE messages SET confirmed_at = ? WHERE id = ?", [now, key])
            for key in undone:
                m = self._message_in(db, key)
                if m.status not in (InStatus.EXECUTED, InStatus.BOUNCED):
                    continue
                again = InStatus.VERIFIED if m.status == InStatus.EXECUTED else InStatus.BOUNCING
                self._move(
                    db,
                    m,
                    again,
                    f"its transaction {m.exec_tx} is no longer in the chain (a reorganisation): to do again",
                    now,
                    exec_tx=None,
                    exec_block=None,
                    attempts=0,
                    next_attempt_at=now,
                )

    # --- reading ------------------------------------------------------------------------------

    def message(self, message_id: str) -> StoredMessage | None:
        rows = self._query("SELECT * FROM messages WHERE id = ?", [message_id])
        return StoredMessage.from_row(rows[0]) if rows else None

    def messages(
        self,
        *,
        status: str | Sequence[str] | None = None,
        peer: str | None = None,
        direction: str | None = None,
        batch_number: int | None = None,
        limit: int | None = None,
    ) -> list[StoredMessage]:
        """Messages matching every filter given, oldest first (a batch's in nonce order)."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({_marks(statuses)})")
            params += [str(s) for s in statuses]
        for column, value in (("peer", peer), ("direction", direction), ("batch_number", batch_number)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(str(value) if column == "direction" else value)
        sql = "SELECT * FROM messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY nonce, rowid" if batch_number is not None else " ORDER BY created_at, rowid"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(min(limit, _INT64 - 1))
        return [StoredMessage.from_row(row) for row in self._query(sql, params)]

    def read_blocks(self, scope: str) -> list[tuple[int, str]]:
        """The blocks (number, hash as read) that a watcher stream's stored rows came from, newest first
        (see `STREAM_ROWS`)."""
        table, where, _ = STREAM_ROWS[scope]
        rows = self._query(
            f"SELECT DISTINCT block_number, block_hash FROM {table} WHERE {where} "
            "AND block_hash IS NOT NULL ORDER BY block_number DESC"
        )
        return [(int(r["block_number"]), str(r["block_hash"])) for r in rows]

    def messages_from_blocks(self, scope: str, first_block: int) -> list[StoredMessage]:
        """The "outbox" or "l1-deposits" stream's stored messages read from block `first_block` on, in
        nonce order."""
        return [StoredMessage.from_row(row) for row in self._from_blocks(scope, first_block, "nonce")]

    def priority_ops_from_blocks(self, first_block: int) -> list[PriorityOp]:
        """The stored priority operations read from L1 block `first_block` on, in queue order."""
        return [
            PriorityOp.from_row(row) for row in self._from_blocks("l1-priority", first_block, "queue_index")
        ]

    def swaps_from_blocks(self, first_block: int) -> list[StoredSwap]:
        """The stored swaps whose last record was read from block `first_block` on."""
        return [
            StoredSwap.from_row(row) for row in self._from_blocks("swap-desk", first_block, "block_number")
        ]

    def _from_blocks(self, scope: str, first_block: int, order: str) -> list[dict[str, Any]]:
        table, where, _ = STREAM_ROWS[scope]
        return self._query(
            f"SELECT * FROM {table} WHERE {where} AND block_number >= ? ORDER BY {order}", [first_block]
        )

    def history(self, message_id: str) -> list[Transition]:
        """The message's status changes, oldest first."""
        with self._read() as db:
            return self._history_in(db, message_id)

    def counts(self) -> dict[tuple[str, str, str], int]:
        """How many messages there are per (direction, peer, status)."""
        rows = self._query(
            "SELECT direction, peer, status, count(*) AS n FROM messages GROUP BY direction, peer, status"
        )
        return {(row["direction"], row["peer"], row["status"]): row["n"] for row in rows}

    def oldest_pending(self) -> dict[str, float]:
        """Per peer, when its oldest message not yet in a final status was added (unix time)."""
        final = sorted(FINAL_STATUSES)
        rows = self._query(
            "SELECT peer, min(created_at) AS since FROM messages "
            f"WHERE status NOT IN ({_marks(final)}) GROUP BY peer",
            final,
        )
        return {row["peer"]: row["since"] for row in rows}

    def batch(self, batch_number: int) -> StoredBatch | None:
        rows = self._query("SELECT * FROM batches WHERE batch_number = ?", [batch_number])
        return StoredBatch.from_row(rows[0]) if rows else None

    def batches(
        self, *, status: str | Sequence[str] | None = None, limit: int | None = None
    ) -> list[StoredBatch]:
        """Batches (with one of the statuses given), by batch number; with `limit`, the last ones."""
        sql, params = "SELECT * FROM batches", []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            sql += f" WHERE status IN ({_marks(statuses)})"
            params = [str(s) for s in statuses]
        if limit is None:
            rows = self._query(sql + " ORDER BY batch_number", params)
        else:
            rows = self._query(sql + " ORDER BY batch_number DESC LIMIT ?", [*params, min(limit, _INT64 - 1)])
            rows.reverse()
        return [StoredBatch.from_row(row) for row in rows]

    def last_batch(self) -> StoredBatch | None:
        with self._lock:
            return self._last_batch(self._db)

    def batch_history(self, batch_number: int) -> list[Transition]:
        """The batch's status changes, oldest first."""
        rows = self._query(
            "SELECT from_status, to_status, at, reason FROM batch_transitions "
            "WHERE batch_number = ? ORDER BY id",
            [batch_number],
        )
        return [Transition(**row) for row in rows]

    def cursor(self, name: str) -> int | None:
        """The block a watcher named `name` has handled up to, or None if it never saved one."""
        found = self.watch_cursor(name)
        return None if found is None else found.block

    def watch_cursor(self, name: str) -> WatchCursor | None:
        """A watcher's cursor with the hash its block had when it was handled."""
        rows = self._query("SELECT block, block_hash FROM cursors WHERE name = ?", [name])
        return WatchCursor(name, int(rows[0]["block"]), rows[0]["block_hash"]) if rows else None

    def set_cursor(self, name: str, block: int, block_hash: str | None = None) -> None:
        with self._write() as db:
            self._move_cursor(db, WatchCursor(name, block, block_hash), time.time())

    def genesis(self, name: str, chain_id: int) -> str | None:
        """The genesis block hash pinned for chain `name` ("chain", "l1") with that chain id."""
        rows = self._query("SELECT hash FROM genesis WHERE name = ? AND chain_id = ?", [name, chain_id])
        return str(rows[0]["hash"]) if rows else None

    def pin_genesis(self, name: str, chain_id: int, block_hash: str) -> str:
        """Pin chain `name`'s genesis at the first start; returns the pinned one (an earlier pin of
        that chain stays). Raises StoreError when the store was pinned to another chain id: it holds
        another chain's records."""
        with self._write() as db:
            rows = list(db.query("SELECT chain_id, hash FROM genesis WHERE name = ?", [name]))
            if rows and rows[0]["chain_id"] != chain_id:
                raise StoreError(
                    f"the store {self.path} holds the records of chain {rows[0]['chain_id']} (its {name}), "
                    f"not of chain {chain_id}: use a store of its own for another chain"
                )
            if rows:
                return str(rows[0]["hash"])
            db.execute(
                "INSERT INTO genesis (name, chain_id, hash) VALUES (?, ?, ?)", [name, chain_id, block_hash]
            )
            return block_hash

    # --- halts --------------------------------------------------------------------------------

    def halt(self, scope: str, reason: str, block: int | None = None) -> Halt:
        """Stop the stream `scope` for an operator; while one halt of a scope is in force, a second
        changes nothing and the first is returned."""
        with self._write() as db:
            return self._halt(db, scope, reason, block, time.time())

    def active_halt(self, scope: str) -> Halt | None:
        rows = self._query(
            "SELECT * FROM halts WHERE scope = ? AND lifted_at IS NULL ORDER BY id LIMIT 1", [scope]
        )
        return Halt(**rows[0]) if rows else None

    def halts(self, limit: int | None = None) -> list[Halt]:
        """Every halt, newest first."""
        sql = "SELECT * FROM halts ORDER BY id DESC"
        rows = self._query(sql) if limit is None else self._query(sql + " LIMIT ?", [min(limit, _INT64 - 1)])
        return [Halt(**row) for row in rows]

    def lift_halt(
        self,
        scope: str,
        decision: str,
        *,
        cursor: WatchCursor | None = None,
        moved: Sequence[tuple[str | int, int, str]] = (),
        swaps: Mapping[str, SwapRecord | None] | None = None,
        forget_ops: Sequence[int] = (),
    ) -> Halt:
        """An operator's decision: the halt of `scope` is lifted, the watcher's cursor set back to
        `cursor` (to read the chain again from there), `moved` rows (key, block, hash: the same message
        or operation, in another block after the reorganisation) take their new block, and, for
        "swap-desk", `swaps` as the desk last recorded them in the chain's final blocks now (None: it
        has no record of the swap, so its row is forgotten), and for "l1-priority" the operations
        `forget_ops` (not processed yet) forgotten, to be read from L1 again, together."""
        now = time.time()
        with self._write() as db:
            active = self._active_halt(db, scope)
            if active is None:
                raise StoreError(f"the {scope} stream is not halted")
            self._move_blocks(db, scope, moved, now)
            for swap_id, record in (swaps or {}).items():
                if record is None:
                    db.execute("DELETE FROM swaps WHERE swap_id = ?", [swap_id])
                    continue
                row = _swap_row(record, now)
                del row["swap_id"], row["created_at"]
                db.execute(
                    f"UPDATE swaps SET {', '.join(f'{c} = ?' for c in row)}, tx = NULL, error = NULL "
                    "WHERE swap_id = ?",
                    [*row.values(), swap_id],
                )
            for index in forget_ops:
                db.execute(
                    "DELETE FROM priority_ops WHERE queue_index = ? AND status IN (?, ?)",
                    [index, PriorityStatus.QUEUED, PriorityStatus.UNREADABLE],
                )
            if cursor is not None:
                self._move_cursor(db, cursor, now)
            db.execute(
                "UPDATE halts SET lifted_at = ?, decision = ? WHERE id = ?", [now, decision[:4000], active.id]
            )
            lifted = self._active_halt(db, scope, halt_id=active.id)
            assert lifted is not None
            return lifted

    def rewind_outbox(
        self,
        from_nonce: int,
        *,
        cursor: WatchCursor,
        decision: str,
        moved: Sequence[tuple[str | int, int, str]] = (),
    ) -> list[str]:
        """An operator's decision after a deep reorganisation of this chain: forget every outgoing
        message from nonce `from_nonce` on (the chain no longer has them as they were, and every later
        outbox hash changed with them) and every unsettled batch holding one (their earlier messages
        are "sent" again), set the outbox watcher back to `cursor`, and lift the halt — together.
        Each forgotten message is kept, with its history, in the `dropped` table. Refused when one
        of them is settled on L1, or in a batch whose commit may have landed ("committing")."""
        now = time.time()
        with self._write() as db:
            active = self._active_halt(db, "outbox")
            if active is None:
                raise StoreError("the outbox stream is not halted: nothing to rewind")
            doomed = [
                StoredMessage.from_row(row)
                for row in db.query(
                    "SELECT * FROM messages WHERE direction = 'out' AND nonce >= ? ORDER BY nonce",
                    [from_nonce],
                )
            ]
            batches = {
                b.batch_number: b
                for b in (
                    StoredBatch.from_row(row)
                    for row in db.query("SELECT * FROM batches WHERE last_nonce >= ?", [from_nonce])
                )
            }
            for b in batches.values():
                if b.status in (BatchStatus.SETTLED, BatchStatus.COMMITTING):
                    what = "settled on L1" if b.status == BatchStatus.SETTLED else "being committed to L1"
                    raise StoreError(
                        f"cannot rewind to nonce {from_nonce}: batch {b.batch_number} (nonces "
                        f"{b.first_nonce}..{b.last_nonce}) is {what}; L1's record stands"
                    )
            for b in sorted(batches.values(), key=lambda b: b.batch_number):
                for m in self._batch_messages_in(db, b.batch_number):
                    if m.nonce < from_nonce:
                        self._move(
                            db,
                            m,
                            OutStatus.SENT,
                            f"batch {b.batch_number} dropped by a rewind to nonce {from_nonce}",
                            now,
                            batch_number=None,
                            index_in_batch=None,
                        )
                db.execute("DELETE FROM batch_transitions WHERE batch_number = ?", [b.batch_number])
                db.execute("DELETE FROM batches WHERE batch_number = ?", [b.batch_number])
            for m in doomed:
                history = [t.to_json() for t in self._history_in(db, m.id)]
                db.execute(
                    "INSERT INTO dropped (halt_id, message_id, row, history, at) VALUES (?, ?, ?, ?, ?)",
                    [
                        active.id,
                        m.id,
                        orjson.dumps(m.to_json()).decode(),
                        orjson.dumps(history).decode(),
                        now,
                    ],
                )
                db.execute("DELETE FROM transitions WHERE message_id = ?", [m.id])
                db.execute("DELETE FROM messages WHERE id = ?", [m.id])
            self._move_blocks(db, "outbox", moved, now)
            self._move_cursor(db, cursor, now)
            summary = f"{decision}; forgot {len(doomed)} message(s) from nonce {from_nonce} and " + (
                f"{len(batches)} unsettled batch(es)"
            )
            db.execute("UPDATE halts SET lifted_at = ?, decision = ? WHERE id = ?", [now, summary, active.id])
        return [m.id for m in doomed]

    def dropped(self) -> list[dict[str, Any]]:
        """Messages forgotten by rewinds, newest first: the row and history they had."""
        rows = self._query("SELECT * FROM dropped ORDER BY id DESC")
        return [
            {
                "halt_id": r["halt_id"],
                "message_id": r["message_id"],
                "at": r["at"],
                "message": orjson.loads(r["row"]),
                "history": orjson.loads(r["history"]),
            }
            for r in rows
        ]

    # --- refusals -----------------------------------------------------------------------------

    def refuse(
        self,
        *,
        peer: str | None,
        chain_id: int | None,
        kind: str,
        reason: str,
        raw: bytes,
        size: int | None = None,
    ) -> None:
        """Record an input that was refused (an envelope that did not verify, a message not allowed):
        its first `raw_bytes` bytes and its size (`size`, when `raw` is only its head); the oldest are
        pruned past `keep` or `max_age`."""
        policy, now = self.refusal_policy, time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO refusals (at, peer, chain_id, kind, reason, raw, raw_size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [now, peer, chain_id, kind, reason[:1000], bytes(raw[: policy.raw_bytes]), size or len(raw)],
            )
            db.execute("DELETE FROM refusals WHERE at < ?", [now - policy.max_age_seconds])
            db.execute("DELETE FROM refusals WHERE id <= (SELECT max(id) FROM refusals) - ?", [policy.keep])

    def refusals(self, limit: int | None = None) -> list[Refusal]:
        """Refused inputs, newest first."""
        sql = "SELECT * FROM refusals ORDER BY id DESC"
        rows = self._query(sql) if limit is None else self._query(sql + " LIMIT ?", [min(limit, _INT64 - 1)])
        return [Refusal(**(row | {"raw": bytes(row["raw"])})) for row in rows]

    # --- invariants ---------------------------------------------------------------------------

    def check(self) -> list[str]:
        """What is inconsistent in the store (empty when all is well): each batch holds exactly its
        messages, in nonce order, and chains on the one before it; each message's status agrees with
        its batch's and with its last recorded change."""
        problems: list[str] = []
        with self._read() as db:
            batches = [
                StoredBatch.from_row(r) for r in db.query("SELECT * FROM batches ORDER BY batch_number")
            ]
            previous: StoredBatch | None = None
            for b in batches:
                members = self._batch_messages_in(db, b.batch_number)
                where = f"batch {b.batch_number}"
                expected_number = 0 if previous is None else previous.batch_number + 1
                if b.batch_number != expected_number:
                    problems.append(
                        f"{where}: follows batch {expected_number - 1}; batch {expected_number} is missing"
                    )
                if previous is not None and (
                    b.first_nonce != previous.last_nonce + 1 or b.h_start != previous.h_end
                ):
                    problems.append(f"{where}: does not start where batch {previous.batch_number} ends")
                if len(members) != b.count:
                    problems.append(f"{where}: count is {b.count}, but {len(members)} messages are in it")
                nonces = [m.nonce for m in members]
                if nonces != list(range(b.first_nonce, b.first_nonce + len(members))):
                    problems.append(f"{where}: its messages are not nonces {b.first_nonce}..{b.last_nonce}")
                for m in members:
                    settled = b.status == BatchStatus.SETTLED
                    if m.status == OutStatus.SENT or (m.status == OutStatus.BATCHED) == settled:
                        problems.append(f"message {m.id} is {m.status} in {where}, which is {b.status}")
                previous = b
            last_nonce = -1 if previous is None else previous.last_nonce
            for row in db.query(
                "SELECT id, status, batch_number, nonce FROM messages WHERE direction = 'out' "
                "AND (batch_number IS NULL) != (status = 'sent')"
            ):
                problems.append(f"message {row['id']} is {row['status']} with batch {row['batch_number']}")
            for row in db.query(
                "SELECT id FROM messages WHERE direction = 'out' AND status = 'sent' AND nonce <= ?",
                [last_nonce],
            ):
                problems.append(f"message {row['id']} is sent, but a batch already holds its nonce")
            for row in db.query(
                "SELECT m.id, m.status, t.to_status FROM messages m JOIN transitions t ON t.id = "
                "(SELECT max(id) FROM transitions WHERE message_id = m.id) WHERE t.to_status != m.status"
            ):
                problems.append(
                    f"message {row['id']} is {row['status']}, "
                    f"but its last recorded change is to {row['to_status']}"
                )
            for row in db.query("SELECT id, direction, status FROM messages"):
                if row["status"] not in STATUSES[Direction(row["direction"])].__members__.values():
                    problems.append(f"message {row['id']}: unknown status {row['status']!r}")
        return problems

    def repair(self) -> list[str]:
        """Repair what a store written by an earlier xrelay (whose steps were not one transaction
        each) may hold, losing nothing: a settled batch's messages left "batched" become "settled";
        a batch whose messages were not all moved in gets the missing "sent" ones of its nonce range.
        A receipt the older xrelay applied before the message was pushed (a replayed envelope) is
        undone: the message goes back to where its batch is, its history keeping the receipt.
        Returns what it did; `check()` tells what is left."""
        done: list[str] = []
        now = time.time()
        with self._write() as db:
            early = db.query(
                "SELECT m.* FROM messages m LEFT JOIN batches b ON b.batch_number = m.batch_number "
                "WHERE m.direction = 'out' AND m.status IN ('executed', 'failed', 'refused') "
                "AND (m.batch_number IS NULL OR b.status IS NULL OR b.status != 'settled')"
            )
            for m in [StoredMessage.from_row(row) for row in early]:
                back = OutStatus.SENT if m.batch_number is None else OutStatus.BATCHED
                self._move(db, m, back, "a receipt before the message was pushed, undone (repaired)", now)
                done.append(f"message {m.id} back to {back}: its receipt came before it was pushed")
            for b in [
                StoredBatch.from_row(r) for r in db.query("SELECT * FROM batches ORDER BY batch_number")
            ]:
                members = {m.nonce: m for m in self._batch_messages_in(db, b.batch_number)}
                for nonce in range(b.first_nonce, b.last_nonce + 1):
                    if nonce in members:
                        continue
                    rows = list(
                        db.query(
                            "SELECT * FROM messages "
                            "WHERE direction = 'out' AND nonce = ? AND status = 'sent'",
                            [nonce],
                        )
                    )
                    if rows:
                        m = StoredMessage.from_row(rows[0])
                        self._move(
                            db,
                            m,
                            OutStatus.BATCHED,
                            f"in batch {b.batch_number} (repaired)",
                            now,
                            batch_number=b.batch_number,
                            index_in_batch=nonce - b.first_nonce,
                        )
                        members[nonce] = self._message_in(db, m.id)
                        done.append(f"message {m.id} moved into batch {b.batch_number}")
                if b.status == BatchStatus.SETTLED:
                    for m in members.values():
                        if m.status == OutStatus.BATCHED:
                            self._move(
                                db,
                                m,
                                OutStatus.SETTLED,
                                f"batch {b.batch_number} settled on L1 (repaired)",
                                now,
                            )
                            done.append(f"message {m.id} settled with batch {b.batch_number}")
        return done

    # --- swaps --------------------------------------------------------------------------------

    def record_swaps(self, records: Sequence[SwapRecord], *, cursor: WatchCursor | tuple[str, int]) -> int:
        """A watcher's final SwapRecorded events of this chain's desk up to its cursor's block, and the
        cursor moved, together: each swap as the desk last recorded it. Returns how many changed."""
        now = time.time()
        changed = 0
        with self._write() as db:
            for r in records:
                row = _swap_row(r, now)
                result = db.execute(
                    f"INSERT INTO swaps ({', '.join(row)}) VALUES ({_marks(row)}) ON CONFLICT (swap_id) DO "
                    "UPDATE SET status = excluded.status, reason = excluded.reason, "
                    "amount_y = excluded.amount_y, block_number = excluded.block_number, "
                    "block_hash = excluded.block_hash, error = NULL, "
                    "updated_at = excluded.updated_at WHERE swaps.status != excluded.status "
                    "AND excluded.block_number >= swaps.block_number",  # read again: never backwards
                    list(row.values()),
                )
                changed += result.rowcount
            self._move_cursor(db, _cursor(cursor), now)
        return changed

    def swaps(
        self, *, status: str | Sequence[str] | None = None, side: str | None = None, limit: int | None = None
    ) -> list[StoredSwap]:
        """Swaps on this chain's desk, newest first (those in `status` and on `side`, if given)."""
        sql, params, where = "SELECT * FROM swaps", [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({_marks(statuses)})")
            params += [str(s) for s in statuses]
        if side is not None:
            where.append("side = ?")
            params.append(str(side))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, swap_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [StoredSwap.from_row(row) for row in self._query(sql, params)]

    def swap(self, swap_id: str) -> StoredSwap | None:
        rows = self._query("SELECT * FROM swaps WHERE swap_id = ?", [swap_id.lower()])
        return StoredSwap.from_row(rows[0]) if rows else None

    def swap_counts(self) -> dict[tuple[str, str, str], int]:
        """(side, status, reason or "") -> how many swaps."""
        rows = self._query(
            "SELECT side, status, coalesce(reason, '') AS reason, count(*) AS n FROM swaps "
            "GROUP BY side, status, reason"
        )
        return {(r["side"], r["status"], r["reason"]): r["n"] for r in rows}

    def swap_deadlines(self) -> dict[str, int]:
        """The deadline of every open swap this chain started, by its phase-1 message's id: the forcer
        forces those sooner."""
        rows = self._query(
            "SELECT message_id, deadline FROM swaps WHERE side = 'a' AND status = ?",
            [str(SwapStatus.INITIATED)],
        )
        return {r["message_id"]: r["deadline"] for r in rows}

    def swap_step_failed(self, swap_id: str, error: str, tx: str | None = None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE swaps SET error = ?, tx = coalesce(?, tx), updated_at = ? WHERE swap_id = ?",
                [error, tx, time.time(), swap_id],
            )

    def propose_terms(self, terms: Terms, peer: str, side: SwapSide, signature: str) -> StoredTerms:
        """Terms this operator signed and proposes to `peer` ("proposed"). Proposing the same terms
        again changes nothing but the time they are sent again; terms the peer already offered are
        accepted instead."""
        terms_id = "0x" + terms.terms_id.hex()
        now = time.time()
        with self._write() as db:
            known = self._terms_or_none(db, terms_id)
            if known is None:
                self._insert_terms(
                    db, terms, peer, side, TermsStatus.PROPOSED, now=now, our_signature=signature
                )
            elif known.status in (TermsStatus.OFFERED, TermsStatus.REFUSED):
                status = TermsStatus.ACCEPTED if known.their_signature else TermsStatus.PROPOSED
                db.execute(
                    "UPDATE swap_terms SET status = ?, our_signature = ?, error = NULL, sent_at = NULL, "
                    "updated_at = ? WHERE terms_id = ?",
                    [str(status), signature, now, terms_id],
                )
            else:
                db.execute("UPDATE swap_terms SET sent_at = NULL WHERE terms_id = ?", [terms_id])
            return self._terms_in(db, terms_id)

    def offer_terms(self, terms: Terms, peer: str, side: SwapSide, signature: str) -> StoredTerms:
        """Terms `peer` signed and proposes: "offered" to this operator, or "accepted" if this operator
        proposed the same (both have signed). Known terms keep their status."""
        terms_id = "0x" + terms.terms_id.hex()
        now = time.time()
        with self._write() as db:
            known = self._terms_or_none(db, terms_id)
            if known is None:
                self._insert_terms(
                    db, terms, peer, side, TermsStatus.OFFERED, now=now, their_signature=signature
                )
            elif known.status == TermsStatus.PROPOSED:
                self._terms_signed(db, terms_id, signature, now)
            return self._terms_in(db, terms_id)

    def accept_terms(self, terms_id: str, signature: str) -> StoredTerms:
        """This operator accepts terms the peer offered: "accepted", to be registered on this desk and
        the acceptance sent. StoreError unless they are offered."""
        now = time.time()
        with self._write() as db:
            known = self._terms_or_none(db, terms_id)
            if known is None:
                raise StoreError(f"no swap terms {terms_id}")
            if known.status != TermsStatus.OFFERED:
                raise StoreError(f"terms {terms_id} are {known.status}, not offered: nothing to accept")
            db.execute(
                "UPDATE swap_terms SET status = ?, our_signature = ?, sent_at = NULL, updated_at = ? "
                "WHERE terms_id = ?",
                [str(TermsStatus.ACCEPTED), signature, now, terms_id],
            )
            return self._terms_in(db, terms_id)

    def terms_accepted(self, terms_id: str, signature: str) -> bool:
        """The peer's signature of terms this operator proposed: "accepted". False if they are not
        proposed (accepted before, refused, or unknown)."""
        with self._write() as db:
            known = self._terms_or_none(db, terms_id)
            if known is None or known.status != TermsStatus.PROPOSED:
                return False
            self._terms_signed(db, terms_id, signature, time.time())
            return True

    def send_terms_again(self, terms_id: str) -> None:
        """The peer proposes terms both have signed: it lacks this operator's acceptance."""
        with self._write() as db:
            db.execute("UPDATE swap_terms SET sent_at = NULL WHERE terms_id = ?", [terms_id])

    def terms_sent(self, terms_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE swap_terms SET sent_at = ? WHERE terms_id = ?", [time.time(), terms_id])

    def terms_registered(self, terms_id: str, tx: str | None) -> None:
        """registerTerms landed on this chain's desk (or the desk had them): "registered"."""
        with self._write() as db:
            db.execute(
                "UPDATE swap_terms SET status = ?, tx = coalesce(?, tx), error = NULL, updated_at = ? "
                "WHERE terms_id = ? AND status = ?",
                [str(TermsStatus.REGISTERED), tx, time.time(), terms_id, str(TermsStatus.ACCEPTED)],
            )

    def terms_problem(self, terms_id: str, error: str, *, refused: bool = False) -> None:
        """Why terms are not going forward: "refused" for good, or only noted (e.g. registerTerms failed:
        it is tried again)."""
        with self._write() as db:
            if refused:
                db.execute(
                    "UPDATE swap_terms SET status = ?, error = ?, updated_at = ? WHERE terms_id = ? "
                    "AND status != ?",
                    [str(TermsStatus.REFUSED), error, time.time(), terms_id, str(TermsStatus.REGISTERED)],
                )
            else:
                db.execute("UPDATE swap_terms SET error = ? WHERE terms_id = ?", [error, terms_id])

    def refuse_terms(self, terms: Terms, peer: str, side: SwapSide, error: str) -> None:
        """Terms a peer proposed that this daemon refuses, kept "refused" with the reason."""
        terms_id = "0x" + terms.terms_id.hex()
        now = time.time()
        with self._write() as db:
            if self._terms_or_none(db, terms_id) is None:
                self._insert_terms(db, terms, peer, side, TermsStatus.REFUSED, now=now, error=error)

    def waiting_terms(self, peer: str) -> int:
        """How many of `peer`'s proposals are offered (waiting for this operator) or refused."""
        rows = self._query(
            "SELECT count(*) AS n FROM swap_terms WHERE peer = ? AND status IN (?, ?)",
            [peer, str(TermsStatus.OFFERED), str(TermsStatus.REFUSED)],
        )
        return int(rows[0]["n"])

    def swap_terms(self, *, status: str | Sequence[str] | None = None) -> list[StoredTerms]:
        sql, params = "SELECT * FROM swap_terms", []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            sql += f" WHERE status IN ({_marks(statuses)})"
            params += [str(s) for s in statuses]
        return [StoredTerms.from_row(row) for row in self._query(sql + " ORDER BY created_at", params)]

    def terms(self, terms_id: str) -> StoredTerms | None:
        with self._read() as db:
            return self._terms_or_none(db, terms_id.lower())

    @staticmethod
    def _insert_terms(
        db: Database,
        terms: Terms,
        peer: str,
        side: SwapSide,
        status: TermsStatus,
        *,
        now: float,
        **columns: str,
    ) -> None:
        row = {
            "terms_id": "0x" + terms.terms_id.hex(),
            "peer": peer,
            "side": str(side),
            "document": orjson.dumps(terms.to_json()).decode(),
            "status": str(status),
            **columns,
            "created_at": now,
            "updated_at": now,
        }
        db.execute(f"INSERT INTO swap_terms ({', '.join(row)}) VALUES ({_marks(row)})", list(row.values()))

    @staticmethod
    def _terms_signed(db: Database, terms_id: str, signature: str, now: float) -> None:
        db.execute(
            "UPDATE swap_terms SET status = ?, their_signature = ?, error = NULL, updated_at = ? "
            "WHERE terms_id = ?",
            [str(TermsStatus.ACCEPTED), signature, now, terms_id],
        )

    @staticmethod
    def _terms_or_none(db: Database, terms_id: str) -> StoredTerms | None:
        rows = list(db.query("SELECT * FROM swap_terms WHERE terms_id = ?", [terms_id]))
        return StoredTerms.from_row(rows[0]) if rows else None

    def _terms_in(self, db: Database, terms_id: str) -> StoredTerms:
        terms = self._terms_or_none(db, terms_id)
        assert terms is not None
        return terms

    # --- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One write transaction; it takes the write lock at once, so it never deadlocks with
        another writer (it waits up to busy_timeout instead)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[Database]:
        """One read transaction: every query in it sees the same snapshot (WAL), whatever the daemon
        commits meanwhile."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._db.query(sql, list(params)))

    def _message_or_none(self, db: Database, message_id: str) -> StoredMessage | None:
        rows = list(db.query("SELECT * FROM messages WHERE id = ?", [message_id]))
        return StoredMessage.from_row(rows[0]) if rows else None

    def _message_in(self, db: Database, message_id: str) -> StoredMessage:
        m = self._message_or_none(db, message_id)
        if m is None:
            raise UnknownMessage(f"no message {message_id} in the store {self.path}")
        return m

    def _batch_in(self, db: Database, batch_number: int) -> StoredBatch:
        rows = list(db.query("SELECT * FROM batches WHERE batch_number = ?", [batch_number]))
        if not rows:
            raise StoreError(f"no batch {batch_number} in the store {self.path}")
        return StoredBatch.from_row(rows[0])

    @staticmethod
    def _last_batch(db: Database) -> StoredBatch | None:
        rows = list(db.query("SELECT * FROM batches ORDER BY batch_number DESC LIMIT 1"))
        return StoredBatch.from_row(rows[0]) if rows else None

    @staticmethod
    def _batch_messages_in(db: Database, batch_number: int) -> list[StoredMessage]:
        rows = db.query(
            "SELECT * FROM messages WHERE direction = 'out' AND batch_number = ? ORDER BY nonce",
            [batch_number],
        )
        return [StoredMessage.from_row(row) for row in rows]

    @staticmethod
    def _insert(db: Database, row: dict[str, Any], status: MessageStatus, reason: str, now: float) -> bool:
        row = row | {"status": str(status), "attempts": 0, "created_at": now, "updated_at": now}
        cursor = db.execute(
            f"INSERT INTO messages ({', '.join(row)}) VALUES ({_marks(row)}) ON CONFLICT (id) DO NOTHING",
            list(row.values()),
        )
        if cursor.rowcount == 0:
            return False
        Store._record(db, row["id"], None, status, reason=reason, at=now)
        return True

    @staticmethod
    def _move(
        db: Database, m: StoredMessage, status: MessageStatus, reason: str, now: float, **values: Any
    ) -> None:
        if status not in STATUSES[m.direction].__members__.values():
            raise StoreError(
                f"{status!r} is not a status of an "
                f"{'outgoing' if m.direction == Direction.OUT else 'incoming'} message"
            )
        values = {k: _encode(v) for k, v in values.items()} | {"status": str(status), "updated_at": now}
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(f"UPDATE messages SET {assignments} WHERE id = ?", [*values.values(), m.id])
        Store._record(db, m.id, m.status, status, reason=reason, at=now)

    @staticmethod
    def _try_again(
        db: Database, m: StoredMessage, status: MessageStatus, reason: str, now: float, **values: Any
    ) -> None:
        """A step that did not happen: `status` again, with one more failed try and the retry policy's
        wait (and `values`, e.g. the error)."""
        attempts = m.attempts + 1
        Store._move(
            db,
            m,
            status,
            reason,
            now,
            attempts=attempts,
            next_attempt_at=RETRY.next_attempt(attempts, now),
            **values,
        )

    @staticmethod
    def _record(
        db: Database, message_id: str, before: str | None, after: str, *, reason: str, at: float
    ) -> None:
        db.execute(
            "INSERT INTO transitions (message_id, from_status, to_status, at, reason) VALUES (?, ?, ?, ?, ?)",
            [message_id, None if before is None else str(before), str(after), at, reason],
        )

    @staticmethod
    def _move_batch(
        db: Database, b: StoredBatch, status: BatchStatus, reason: str, now: float, **values: Any
    ) -> None:
        values = {k: _encode(v) for k, v in values.items()} | {"status": str(status), "updated_at": now}
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(
            f"UPDATE batches SET {assignments} WHERE batch_number = ?", [*values.values(), b.batch_number]
        )
        Store._record_batch(db, b.batch_number, b.status, status, reason=reason, at=now)

    @staticmethod
    def _record_batch(
        db: Database,
        batch_number: int,
        before: BatchStatus | None,
        after: BatchStatus,
        *,
        reason: str,
        at: float,
    ) -> None:
        db.execute(
            "INSERT INTO batch_transitions (batch_number, from_status, to_status, at, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            [batch_number, None if before is None else str(before), str(after), at, reason],
        )

    @staticmethod
    def _move_cursor(db: Database, cursor: WatchCursor, now: float) -> None:
        db.execute(
            "INSERT INTO cursors (name, block, block_hash, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET block = excluded.block, block_hash = excluded.block_hash, "
            "updated_at = excluded.updated_at",
            [cursor.name, cursor.block, cursor.block_hash, now],
        )

    @staticmethod
    def _original_in(db: Database, bounce: Message) -> StoredMessage | None:
        if not bounce.is_bounce:
            return None
        try:
            wanted = bounce.bounced_id()
        except ValueError:
            return None
        rows = db.query(
            "SELECT * FROM messages WHERE direction = 'out' AND dest_chain_id = ? AND lower(sender) = ? "
            "AND amount = ?",
            [bounce.source_chain_id, bounce.target.lower(), str(bounce.amount)],
        )
        for row in rows:
            m = StoredMessage.from_row(row)
            if m.message.id() == wanted and m.message.asset_id == bounce.asset_id:
                return m
        return None

    @staticmethod
    def _move_blocks(
        db: Database, scope: str, moved: Sequence[tuple[str | int, int, str]], now: float
    ) -> None:
        """A stream's rows (key, block, hash) the chain has in another block than they were read from."""
        table, _, key = STREAM_ROWS[scope]
        for row_key, block, block_hash in moved:
            db.execute(
                f"UPDATE {table} SET block_number = ?, block_hash = ?, updated_at = ? WHERE {key} = ?",
                [block, block_hash, now, row_key],
            )

    @staticmethod
    def _active_halt(db: Database, scope: str, *, halt_id: int | None = None) -> Halt | None:
        if halt_id is not None:
            rows = list(db.query("SELECT * FROM halts WHERE id = ?", [halt_id]))
        else:
            rows = list(
                db.query(
                    "SELECT * FROM halts WHERE scope = ? AND lifted_at IS NULL ORDER BY id LIMIT 1", [scope]
                )
            )
        return Halt(**rows[0]) if rows else None

    @staticmethod
    def _halt(db: Database, scope: str, reason: str, block: int | None, now: float) -> Halt:
        active = Store._active_halt(db, scope)
        if active is not None:
            return active
        db.execute(
            "INSERT INTO halts (scope, reason, block, at) VALUES (?, ?, ?, ?)",
            [scope, reason[:4000], block, now],
        )
        halted = Store._active_halt(db, scope)
        assert halted is not None
        log.critical("%s halted: %s", scope, reason)
        return halted

    @staticmethod
    def _history_in(db: Database, message_id: str) -> list[Transition]:
        rows = db.query(
            "SELECT from_status, to_status, at, reason FROM transitions WHERE message_id = ? ORDER BY id",
            [message_id],
        )
        return [Transition(**row) for row in rows]

    def _enable_wal(self) -> None:
        """Switch the file to WAL once. The switch needs the file to itself, and SQLite does not wait
        for that (busy_timeout does not apply), so two processes opening a new store at once retry."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._db.enable_wal()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _back_up(self, label: str) -> Path:
        """A copy of the store beside it (`<file>.<label>.bak`), before it is converted: an operator
        who must go back to the xrelay that wrote it still can."""
        copy = self.path.with_name(f"{self.path.name}.{label}.bak")
        with sqlite3.connect(copy) as target:
            self._db.conn.backup(target)
        log.warning(
            "store %s: converting it to schema version %d; the old one is kept in %s",
            self.path,
            SCHEMA_VERSION,
            copy,
        )
        return copy

    def _version(self) -> int:
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        return version

    def _create_schema(self) -> None:
        version = self._version()
        if version == SCHEMA_VERSION:
            return
        if 0 < version < SCHEMA_VERSION:
            self._back_up(f"v{version}")
        with self._write() as db:
            version = self._version()
            if version == SCHEMA_VERSION:
                return  # another process created it meanwhile
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has store schema version {version}; this xrelay knows versions up to "
                    f"{SCHEMA_VERSION} (was it written by a newer xrelay?)"
                )
            if version == 0:
                _create_v1(db)
            if version < 2:
                _migrate_v1_to_v2(db)
            if version < 3:
                _migrate_v2_to_v3(db)
            if version < 4:
                _migrate_v3_to_v4(db)
            if version < 5:
                _migrate_v4_to_v5(db)
            _migrate_v5_to_v6(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# --- schema -----------------------------------------------------------------------------------

L1_PEER = "l1"
HALT_SCOPES = ("outbox", "l1-deposits", "l1-priority", "swap-desk")
"""The streams a halt stops: the watchers' names."""
STREAM_ROWS = {
    "outbox": ("messages", "direction = 'out'", "id"),
    "l1-deposits": ("messages", f"direction = 'in' AND peer = '{L1_PEER}'", "id"),
    "l1-priority": ("priority_ops", "1", "queue_index"),
    "swap-desk": ("swaps", "1", "swap_id"),
}
"""Where each stream's watcher stores what it read: table, condition, key."""
_INT64 = 1 << 63


def _create_v1(db: Database) -> None:
    db.execute(
        "CREATE TABLE messages (id TEXT PRIMARY KEY, direction TEXT NOT NULL, peer TEXT NOT NULL, "
        "source_chain_id INTEGER, dest_chain_id INTEGER, nonce INTEGER, sender TEXT, target TEXT, "
        "asset_id TEXT, amount TEXT, data BLOB, asset_data BLOB, leaf TEXT, block_number INTEGER, "
        "sent_at REAL, status TEXT NOT NULL, batch_number INTEGER, index_in_batch INTEGER, "
        "attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL, error TEXT, exec_tx TEXT, "
        "exec_gas INTEGER, executed_at REAL, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
        "payload TEXT, outbox_hash TEXT)"
    )
    db.execute("CREATE INDEX idx_messages_status ON messages (status)")
    db.execute("CREATE INDEX idx_messages_direction_peer_status ON messages (direction, peer, status)")
    db.execute("CREATE INDEX idx_messages_direction_batch_number ON messages (direction, batch_number)")
    db.execute(
        "CREATE TABLE transitions (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL REFERENCES messages(id), "
        "from_status TEXT, to_status TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_transitions_message_id ON transitions (message_id)")
    db.execute(
        "CREATE TABLE batches (batch_number INTEGER PRIMARY KEY, capacity INTEGER, count INTEGER, "
        "first_nonce INTEGER, last_nonce INTEGER, h_start TEXT, h_end TEXT, batch_root TEXT, "
        "public_inputs TEXT, proof TEXT, status TEXT NOT NULL, proving_seconds REAL, commit_tx TEXT, "
        "commit_gas INTEGER, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL, error TEXT, "
        "leaf_index INTEGER, settled_at REAL, created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )
    db.execute("CREATE TABLE cursors (name TEXT PRIMARY KEY, block INTEGER NOT NULL, updated_at REAL)")
    db.execute(
        "CREATE TABLE refusals (id INTEGER PRIMARY KEY, at REAL NOT NULL, peer TEXT, chain_id INTEGER, "
        "kind TEXT NOT NULL, reason TEXT NOT NULL, raw BLOB NOT NULL)"
    )


def _migrate_v1_to_v2(db: Database) -> None:
    """Version 2: each batch's history, and refusals keep a bounded part of the input and its size."""
    db.execute(
        "CREATE TABLE batch_transitions (id INTEGER PRIMARY KEY, batch_number INTEGER NOT NULL "
        "REFERENCES batches(batch_number), from_status TEXT, to_status TEXT NOT NULL, at REAL NOT NULL, "
        "reason TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_batch_transitions_batch_number ON batch_transitions (batch_number)")
    db.execute("ALTER TABLE refusals ADD COLUMN raw_size INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE refusals SET raw_size = length(raw), raw = substr(raw, 1, 4096)")
    db.execute("CREATE INDEX idx_refusals_at ON refusals (at)")


def _migrate_v2_to_v3(db: Database) -> None:
    """Version 3: block hashes (of each outgoing message and deposit, and of each cursor's block) to
    tell a reorganisation, each chain's genesis block, halts for an operator, and the messages
    rewinds forgot."""
    db.execute("ALTER TABLE messages ADD COLUMN block_hash TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN exec_block INTEGER")  # its execution's or bounce's block
    db.execute("ALTER TABLE messages ADD COLUMN confirmed_at REAL")  # when that block was final with it
    db.execute("ALTER TABLE cursors ADD COLUMN block_hash TEXT")
    db.execute(
        "CREATE TABLE halts (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, reason TEXT NOT NULL, "
        "block INTEGER, at REAL NOT NULL, lifted_at REAL, decision TEXT)"
    )
    db.execute("CREATE TABLE genesis (name TEXT PRIMARY KEY, chain_id INTEGER NOT NULL, hash TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE dropped (id INTEGER PRIMARY KEY, halt_id INTEGER REFERENCES halts(id), "
        "message_id TEXT NOT NULL, row TEXT NOT NULL, history TEXT NOT NULL, at REAL NOT NULL)"
    )


def _migrate_v3_to_v4(db: Database) -> None:
    """Version 4: the ids of the envelopes taken from the bus lately, so a replayed one is refused."""
    db.execute(
        "CREATE TABLE envelopes (sender TEXT NOT NULL, id TEXT NOT NULL, sent_at REAL NOT NULL, "
        "seen_at REAL NOT NULL, PRIMARY KEY (sender, id))"
    )
    db.execute("CREATE INDEX idx_envelopes_sent_at ON envelopes (sent_at)")


def _forced_columns(op: QueuedOp) -> dict[str, Any]:
    """The columns of a priority operation that hold its own message (none while unreadable)."""
    if op.message is None:
        return {"message_id": None, "message": None, "payload": None, "leaf": None, "bounce": None}
    return {
        "message_id": message_key(op.message.source_chain_id, op.message.nonce),
        "message": orjson.dumps(message_to_json(op.message)).decode(),
        "payload": op.payload(),
        "leaf": str(op.message.leaf()),
        "bounce": op.bounce,
    }


def _migrate_v4_to_v5(db: Database) -> None:
    """Version 5: forced inclusion. An outgoing message's requestPriorityOp (transaction, position in the
    destination's queue, deadline), and this chain's own L1 priority queue."""
    db.execute("ALTER TABLE messages ADD COLUMN force_tx TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN force_index INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN force_deadline REAL")
    db.execute(
        "CREATE TABLE priority_ops (queue_index INTEGER PRIMARY KEY, priority_id TEXT NOT NULL, "
        "source_chain_id INTEGER NOT NULL, batch_number INTEGER NOT NULL, index_in_batch INTEGER NOT NULL, "
        "deadline REAL NOT NULL, rolling_hash TEXT NOT NULL, message_id TEXT, message TEXT, payload TEXT, "
        "leaf TEXT, bounce TEXT, status TEXT NOT NULL, "
        "outcome TEXT, tx TEXT, error TEXT, block_number INTEGER NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL, created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX idx_priority_ops_status ON priority_ops (status)")


def _migrate_v5_to_v6(db: Database) -> None:
    """Version 6: atomic swaps. The swaps on this chain's SwapDesk, and the terms agreed with peers;
    the block hash each priority operation was read from."""
    db.execute(
        "CREATE TABLE swaps (swap_id TEXT PRIMARY KEY, side TEXT NOT NULL, peer TEXT NOT NULL, "
        "terms_id TEXT NOT NULL, user TEXT NOT NULL, amount_x TEXT NOT NULL, min_amount_y TEXT NOT NULL, "
        "amount_y TEXT NOT NULL, deadline INTEGER NOT NULL, message_id TEXT NOT NULL, status TEXT NOT NULL, "
        "reason TEXT, block_number INTEGER NOT NULL, block_hash TEXT, tx TEXT, error TEXT, "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX idx_swaps_status ON swaps (status)")
    db.execute("ALTER TABLE priority_ops ADD COLUMN block_hash TEXT")
    db.execute(
        "CREATE TABLE swap_terms (terms_id TEXT PRIMARY KEY, peer TEXT NOT NULL, side TEXT NOT NULL, "
        "document TEXT NOT NULL, status TEXT NOT NULL, our_signature TEXT, their_signature TEXT, tx TEXT, "
        "error TEXT, sent_at REAL, created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )


def _swap_row(r: SwapRecord, now: float) -> dict[str, Any]:
    swap = r.swap
    return {
        "swap_id": r.swap_id,
        "side": str(r.side),
        "peer": r.peer,
        "terms_id": "0x" + swap.terms_id.hex(),
        "user": swap.user,
        "amount_x": str(swap.amount_x),
        "min_amount_y": str(swap.min_amount_y),
        "amount_y": str(swap.amount_y),
        "deadline": swap.deadline,
        "message_id": r.message_id,
        "status": swap.state.name.lower(),
        "reason": swap.reason.word if swap.reason else None,
        "block_number": r.block_number,
        "block_hash": r.block_hash,
        "created_at": now,
        "updated_at": now,
    }


def _cursor(cursor: WatchCursor | tuple[str, int]) -> WatchCursor:
    return cursor if isinstance(cursor, WatchCursor) else WatchCursor(*cursor)


# --- values -----------------------------------------------------------------------------------


def _marks(values: Sized) -> str:
    return ", ".join("?" * len(values))


def _int_or_none(text: str | None) -> int | None:
    return None if text is None else int(text)


def _message_row(m: Message, direction: Direction, peer: str, block_number: int | None) -> dict[str, Any]:
    return {
        "id": message_key(m.source_chain_id, m.nonce),
        "direction": str(direction),
        "peer": peer,
        "source_chain_id": m.source_chain_id,
        "dest_chain_id": m.dest_chain_id,
        "nonce": m.nonce,
        "sender": m.sender,
        "target": m.target,
        "asset_id": "0x" + m.asset_id.hex(),
        "amount": str(m.amount),
        "data": m.data,
        "asset_data": m.asset_data,
        "leaf": str(m.leaf()),
        "block_number": block_number,
        "sent_at": time.time(),
    }


def _encode(value: Any) -> Any:
    """A value as a column stores it: enums as their word, integers beyond 64 bits as decimal text."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        return str(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value
