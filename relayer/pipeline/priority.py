"""Forced inclusion through the L1 priority queue (docs/protocol.md, "Forced inclusion"), both sides.

The sending side, `Forcer`: an outgoing message to a peer that has not reported it executed
`force_after_seconds` after this chain sent it is forced. One store step makes it "forcing" (an operator
does the same with `xrelay force` or the admin API); then `Hub.requestPriorityOp` gets its leaf fields,
its batch path and its body sealed to the destination's bus key (nothing of sender, target, data or
nonce is readable on L1), signed by this chain's operator (so nobody else can queue it with another
body), and another step makes it "forced", with the transaction, its position in the destination's
queue and the deadline. After a restart, L1's `queuePosition` says whether a request landed. A
destination that leaves it past the deadline is frozen on L1 (`Hub.freeze`): it settles nothing more
until governance lifts the freeze.

The receiving side: the "l1-priority" watcher reads this chain's final `PriorityOpQueued` events
(`queue_handler`), opens each body with any of the configured bus keys, checks that it names the
queued leaf at its place, and stores the operation with its message (`Store.record_priority_ops`):
"verified", or "bouncing" when the peering refuses it (a priority operation is processed either way;
its value goes home). A body that does not open leaves the operation "unreadable" until the bus brings
the message (`resolve_unreadable`). The executor processes operations first and in queue order, the
settler reports the Inbox's priority cursor to L1, and `DeadlineWatch` warns long before a deadline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import orjson
from nacl.exceptions import CryptoError
from web3.logs import DISCARD

from bridge_contracts.chain import Reverted
from bridge_contracts.messages import Message, force_digest, priority_id, sign_digest
from bridge_contracts.views import HubBatch
from hub.delivery import DeliveryError, delivery_from_json, message_from_json, message_key, message_to_json
from hub.envelope import seal, unseal
from proofs.merkle import MerkleError, poseidon_verify
from relayer.pipeline import swaps
from relayer.pipeline.context import Context, NoBusKey, now
from relayer.pipeline.pusher import batch_tree
from relayer.pipeline.receiver import peering_rule
from relayer.sender import SendFailed, failure_reason
from relayer.store import (
    FORCEABLE,
    PENDING_PRIORITY,
    OutStatus,
    PriorityOp,
    PriorityStatus,
    QueuedOp,
    StoredMessage,
    format_time,
)
from relayer.watcher import Handler

log = logging.getLogger(__name__)

FORCED_BODY_VERSION = 1
FREEZE_RETRY_SECONDS = 60.0
"""The least time between two attempts to freeze the same overdue peer."""


# --- the sealed body ---------------------------------------------------------------------------


def forced_body(message: Message, batch_number: int, index: int, siblings: tuple[int, ...]) -> bytes:
    """The plaintext a forced message's sealed body holds: the message and where its leaf is."""
    return orjson.dumps(
        {
            "version": FORCED_BODY_VERSION,
            "message": message_to_json(message),
            "batch_number": batch_number,
            "index": index,
            "siblings": [str(s) for s in siblings],
        }
    )


def read_forced_body(plaintext: bytes) -> tuple[Message, int, int, tuple[int, ...]]:
    """(message, batch number, index, siblings) from a forced body's plaintext; ValueError if malformed."""
    try:
        value = orjson.loads(plaintext)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or value.get("version") != FORCED_BODY_VERSION:
        raise ValueError(f"not a version {FORCED_BODY_VERSION} forced body")
    number, index, siblings = value.get("batch_number"), value.get("index"), value.get("siblings")
    if not isinstance(number, int) or not isinstance(index, int) or not isinstance(siblings, list):
        raise ValueError("batch_number, index and siblings are missing or of the wrong type")
    try:
        message = message_from_json(value.get("message"))
        path = tuple(int(s) for s in siblings)
    except (DeliveryError, TypeError, ValueError) as exc:
        raise ValueError(f"bad message or siblings: {exc}") from None
    return message, number, index, path


# --- the sending side --------------------------------------------------------------------------


class Forcer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._freeze_tried: dict[int, float] = {}  # peer chain id -> when

    async def step(self) -> float | None:
        ctx, moment, poll = self.ctx, now(), self.ctx.config.l1.poll_seconds
        if ctx.outgoing_halt() is not None:
            return poll  # nothing leaves this chain until an operator decides
        self._force_late(moment)
        forcing = ctx.store.messages(direction="out", status=OutStatus.FORCING)
        due = [m for m in forcing if m.due <= moment]
        for m in due:
            await self._force(m)
        await self._freeze_overdue(moment)
        later = [m.due - moment for m in forcing if m.due > moment]
        return None if due else min([poll, *later])

    def _force_late(self, moment: float) -> None:
        """Messages whose peer has not reported them executed within its force_after_seconds."""
        late: dict[str, list[str]] = {}  # reason -> message ids
        deadlines = self.ctx.store.swap_deadlines()
        for m in self.ctx.store.messages(direction="out", status=FORCEABLE):
            peer = self.ctx.peer_by_name(m.peer)
            if peer is None:
                continue
            at, reason = swaps.force_at(m.sent_at or m.created_at, peer, deadlines.get(m.id))
            if at <= moment:
                late.setdefault(reason, []).append(m.id)
        for reason, ids in late.items():
            for m in self.ctx.store.request_force(ids, reason):
                log.warning("%s: %s; forcing it through L1", m.id, reason)

    async def _force(self, m: StoredMessage) -> None:
        ctx = self.ctx
        assert m.batch_number is not None and m.index_in_batch is not None
        _, tree = batch_tree(ctx.store, m.batch_number)
        siblings = tuple(tree.proof(m.index_in_batch))
        queued_id = priority_id(m.message.source_chain_id, m.batch_number, m.index_in_batch, m.leaf)
        try:
            if await self._found_queued(m, queued_id, "found in the L1 priority queue"):
                return
            key = await ctx.bus_key_of(m.message.dest_chain_id)
            body = seal(forced_body(m.message, m.batch_number, m.index_in_batch, siblings), key)
            digest = force_digest(queued_id, body, l1_chain_id=ctx.l1_chain_id, hub=ctx.hub.address)
            signature = sign_digest(ctx.l1.signer, digest)
            receipt = await ctx.l1_sender.send(
                ctx.hub.functions.requestPriorityOp(
                    m.message.leaf_fields(), m.batch_number, m.index_in_batch, list(siblings), body, signature
                ),
                what=f"requestPriorityOp {m.id}",
            )
        except (Reverted, SendFailed, NoBusKey) as exc:
            reason = exc.error if isinstance(exc, Reverted) else str(exc)
            if "AlreadyQueued" in reason and await self._found_queued(
                m, queued_id, "already in the L1 priority queue (someone else forced it)"
            ):
                return
            ctx.store.force_not_sent(m.id, reason)
            ctx.metrics.failure(failure_reason("force", exc))
            log.error("forcing %s failed: %s", m.id, reason)
            return
        tx = receipt["transactionHash"].to_0x_hex()
        events = ctx.hub.events.PriorityOpQueued().process_receipt(receipt, errors=DISCARD)
        index, deadline = (
            (events[0]["args"]["index"], float(events[0]["args"]["deadline"])) if events else (None, None)
        )
        ctx.store.record_forced(
            m.id,
            tx=tx,
            index=index,
            deadline=deadline,
            reason=f"forced through L1 in {tx}: priority operation {index} of {m.peer}, "
            f"to be processed by {format_time(deadline)}",
        )
        ctx.metrics.forced(m.peer)
        log.warning(
            "%s forced through L1 (%s): %s must process it by %s", m.id, tx, m.peer, format_time(deadline)
        )

    async def _found_queued(self, m: StoredMessage, queued_id: bytes, reason: str) -> bool:
        """If L1 has the message queued already (a request that landed before a restart, or anyone's):
        "forced", with its position and deadline there."""
        ctx = self.ctx
        position = int(await ctx.call(ctx.hub.functions.queuePosition(queued_id)))
        if position == 0:
            return False
        dest = m.message.dest_chain_id
        deadline = float((await ctx.call(ctx.hub.functions.priorityOp(dest, position - 1)))[2])
        ctx.store.record_forced(m.id, tx=None, index=position - 1, deadline=deadline, reason=reason)
        return True

    async def _freeze_overdue(self, moment: float) -> None:
        """Freeze each peer that left a message this chain forced past its deadline: L1 checks that
        an operation is overdue and unprocessed, this daemon only notices one of its own."""
        ctx = self.ctx
        overdue = {
            m.message.dest_chain_id: m
            for m in ctx.store.messages(direction="out", status=OutStatus.FORCED)
            if m.force_deadline is not None and m.force_deadline < moment
        }
        for chain_id, m in overdue.items():
            if self._freeze_tried.get(chain_id, 0.0) > moment - FREEZE_RETRY_SECONDS:
                continue
            self._freeze_tried[chain_id] = moment
            late, index, deadline = await ctx.call(ctx.hub.functions.overdue(chain_id))
            frozen = (await ctx.call(ctx.hub.functions.priority(chain_id)))[2]
            if not late or frozen:
                continue
            log.critical(
                "%s left priority operation %d (%s among them) past its deadline %s: freezing chain %d on L1",
                m.peer,
                index,
                m.id,
                format_time(deadline),
                chain_id,
            )
            try:
                await ctx.l1_sender.send(ctx.hub.functions.freeze(chain_id), what=f"freeze {chain_id}")
            except (Reverted, SendFailed) as exc:
                log.error("freezing chain %d failed: %s", chain_id, exc)


# --- the receiving side ------------------------------------------------------------------------


def queue_handler(ctx: Context) -> Handler:
    """The "l1-priority" watcher's handler: this chain's final PriorityOpQueued events, stored."""

    async def handle(events: Any, cursor: Any) -> None:
        ops = []
        for event in events:
            args = event["args"]
            batch = await ctx.hub_batch(args["sourceChainId"], args["batchNumber"])
            ops.append(
                _opened(ctx, args, event["blockNumber"], batch, "0x" + bytes(event["blockHash"]).hex())
            )
        if ctx.store.record_priority_ops(ops, cursor=cursor):
            for op in ops:
                what = "unreadable: " + (op.problem or "") if op.message is None else f"message {_id(op)}"
                log.warning(
                    "priority operation %d forced to this chain by chain %d (%s): to be processed by %s",
                    op.index,
                    op.source_chain_id,
                    what,
                    format_time(op.deadline),
                )
            ctx.wakeups.wake("executor")

    return handle


def _id(op: QueuedOp) -> str:
    assert op.message is not None
    return message_key(op.message.source_chain_id, op.message.nonce)


def _opened(ctx: Context, args: Any, block: int, batch: HubBatch, block_hash: str) -> QueuedOp:
    """A PriorityOpQueued event's operation, with its message if its body opens and names the queued
    leaf at its place, with a path to that batch's root on L1 (else the message from the bus, if it
    came that way)."""
    op = QueuedOp(
        index=args["index"],
        priority_id=bytes(args["priorityId"]),
        source_chain_id=args["sourceChainId"],
        batch_number=args["batchNumber"],
        index_in_batch=args["indexInBatch"],
        deadline=float(args["deadline"]),
        rolling_hash=bytes(args["rollingHash"]),
        block_number=block,
        peer=ctx.peer_name(args["sourceChainId"]),
        message=None,
        block_hash=block_hash,
    )
    problem = "its sealed body does not open with this institution's bus keys"
    for secret in ctx.bus_secrets:
        try:
            plaintext = unseal(bytes(args["encryptedBody"]), secret)
        except CryptoError:
            continue
        try:
            message, number, index, siblings = read_forced_body(plaintext)
        except ValueError as exc:
            problem = f"its body is malformed: {exc}"
            break
        found = _matching(ctx, op, message, (number, index, siblings), batch)
        if found is not None:
            return found
        problem = "its body names another message than the one queued, or a wrong path"
        break
    return resolve_unreadable(ctx, op, problem, batch)


def _matching(
    ctx: Context, op: QueuedOp, m: Message, place: tuple[int, int, tuple[int, ...]], batch: HubBatch
) -> QueuedOp | None:
    """The operation with message m, if m is the message L1 queued (its leaf at that place: batch
    number and index), addressed to this chain, and the siblings climb from it to the batch's root
    on L1 (the Inbox checks them again: a wrong path would stop the queue)."""
    number, index, siblings = place
    try:
        leaf = m.leaf()
    except ValueError:
        return None
    same = (m.source_chain_id, number, index) == (op.source_chain_id, op.batch_number, op.index_in_batch)
    if (
        not same
        or m.dest_chain_id != ctx.chain_id
        or priority_id(m.source_chain_id, number, index, leaf) != op.priority_id
        or not _climbs(leaf, index, siblings, batch)
    ):
        return None
    return replace(op, message=m, siblings=siblings, bounce=_bounce_rule(ctx, m), problem=None)


def _climbs(leaf: int, index: int, siblings: tuple[int, ...], batch: HubBatch) -> bool:
    """Whether the path is the batch's depth and leads from the leaf at `index` to its root on L1."""
    try:
        return len(siblings) == batch.depth and poseidon_verify(leaf, index, siblings, batch.batch_root)
    except MerkleError:
        return False


def resolve_unreadable(ctx: Context, op: QueuedOp, problem: str, batch: HubBatch) -> QueuedOp:
    """An operation whose body gave no message: with the message, if the bus brought it (an incoming
    message from that chain at that place with that leaf), else unreadable with `problem`."""
    for m in ctx.store.messages(direction="in", peer=op.peer):
        if m.message.source_chain_id != op.source_chain_id or not m.payload:
            continue
        try:
            delivery = delivery_from_json(orjson.loads(m.payload))
        except (DeliveryError, orjson.JSONDecodeError):
            continue  # a deposit's or a forced message's payload
        item = delivery.messages[0]
        place = (delivery.batch.batch_number, item.index, item.siblings)
        found = _matching(ctx, op, m.message, place, batch)
        if found is not None:
            return found
    return replace(op, problem=problem)


def _bounce_rule(ctx: Context, m: Message) -> str | None:
    """Why a forced message is bounced rather than executed (None: executed). L1 checked it is settled
    and addressed here, so it is processed either way: one the peering refuses sends its value home.
    A bounce message (value coming home) is always executed."""
    if m.is_bounce or swaps.bounce_refusal(ctx.config, m) is not None:
        return None  # a swap's result is executed whatever: the desk checks who sent it
    peer = ctx.peer_by_chain(m.source_chain_id)
    if peer is None:
        return f"not a peer: chain {m.source_chain_id} is not in this institution's peering"
    return peering_rule(ctx, peer, m)


class DeadlineWatch:
    """Warns, once per operation and level, as a deadline of this chain's priority queue nears: at half
    its window (WARNING), at a tenth (ERROR), and past it (CRITICAL: anyone may freeze the chain)."""

    def __init__(self) -> None:
        self._said: dict[int, int] = {}  # operation index -> the highest level logged

    def check(self, ops: list[PriorityOp], moment: float | None = None) -> None:
        moment = time.time() if moment is None else moment
        pending = {op.index for op in ops if op.status in PENDING_PRIORITY}
        self._said = {i: level for i, level in self._said.items() if i in pending}
        for op in ops:
            if op.status not in PENDING_PRIORITY:
                continue
            window = max(op.deadline - op.created_at, 1.0)
            left = op.deadline - moment
            level = 3 if left < 0 else 2 if left < window / 10 else 1 if left < window / 2 else 0
            if level <= self._said.get(op.index, 0):
                continue
            self._said[op.index] = level
            state = (
                "unreadable: " + (op.error or "")
                if op.status == PriorityStatus.UNREADABLE
                else str(op.status)
            )
            what = f"priority operation {op.index} ({op.message_id or 'message unknown'}, {state})"
            text = (
                f"{what} is past its deadline {format_time(op.deadline)}: L1 refuses this chain's batches "
                "and anyone may freeze it"
                if level == 3
                else f"{what} has {left:.0f} s left before its deadline {format_time(op.deadline)}"
            )
            log.log((logging.WARNING, logging.ERROR, logging.CRITICAL)[level - 1], "%s", text)
