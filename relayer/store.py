"""The daemon's store: one SQLite file per institution, shared by the daemon and the CLI.

Messages (both directions) with every status change they went through, this chain's batches,
the watchers' cursors and the inputs that were refused. SQLite in WAL mode through sqlite-utils:
readers never wait; every write is one `BEGIN IMMEDIATE` transaction, and `busy_timeout` makes a
second writer (the CLI while the daemon runs) wait for the first instead of failing.

Rows come back as stored: big integers as decimal TEXT (amounts and field elements: leaf,
outbox_hash, h_start, h_end, batch_root), asset ids and transaction hashes as 0x-hex TEXT, JSON
columns (payload, public_inputs, proof) as JSON text, data and asset_data as bytes, times as unix
floats. `MessageRow.from_row` turns a message row back into a `MessageRow`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlite_utils import Database

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0

OUT_STATUSES = ("sent", "batched", "settled", "pushed", "executed", "failed")
"""An outgoing message's statuses, in the order it goes through them ("failed": its receipt)."""
IN_STATUSES = ("received", "verified", "executing", "executed", "failed", "replay", "refused")
"""An incoming message's statuses ("executing": in an execute transaction now); "failed" ->
"replay" is an operator's replay, which the daemon executes like a verified message."""
FINAL_STATUSES = frozenset({"executed", "failed", "refused"})
"""Statuses the daemon does nothing more about by itself (a failed incoming message waits for a
replay)."""
BATCH_STATUSES = ("proving", "proven", "committing", "settled")

_STATUSES = {"out": OUT_STATUSES, "in": IN_STATUSES}

_MESSAGE_COLUMNS: dict[str, str] = {
    "id": "TEXT",
    "direction": "TEXT",
    "peer": "TEXT",
    "source_chain_id": "INTEGER",
    "dest_chain_id": "INTEGER",
    "nonce": "INTEGER",
    "sender": "TEXT",
    "target": "TEXT",
    "asset_id": "TEXT",
    "amount": "TEXT",
    "data": "BLOB",
    "asset_data": "BLOB",
    "leaf": "TEXT",
    "block_number": "INTEGER",
    "sent_at": "REAL",
    "status": "TEXT",
    "batch_number": "INTEGER",
    "index_in_batch": "INTEGER",
    "attempts": "INTEGER",
    "next_attempt_at": "REAL",
    "error": "TEXT",
    "exec_tx": "TEXT",
    "exec_gas": "INTEGER",
    "executed_at": "REAL",
    "created_at": "REAL",
    "updated_at": "REAL",
    "payload": "TEXT",
    "outbox_hash": "TEXT",
}
_BATCH_COLUMNS: dict[str, str] = {
    "batch_number": "INTEGER",
    "capacity": "INTEGER",
    "count": "INTEGER",
    "first_nonce": "INTEGER",
    "last_nonce": "INTEGER",
    "h_start": "TEXT",
    "h_end": "TEXT",
    "batch_root": "TEXT",
    "public_inputs": "TEXT",
    "proof": "TEXT",
    "status": "TEXT",
    "proving_seconds": "REAL",
    "commit_tx": "TEXT",
    "commit_gas": "INTEGER",
    "attempts": "INTEGER",
    "next_attempt_at": "REAL",
    "error": "TEXT",
    "leaf_index": "INTEGER",
    "settled_at": "REAL",
    "created_at": "REAL",
    "updated_at": "REAL",
}
# Set by the store itself, never through transition()/update_batch() keyword arguments.
_MESSAGE_MANAGED = frozenset({"id", "direction", "status", "created_at", "updated_at"})
_BATCH_MANAGED = frozenset({"batch_number", "status", "created_at", "updated_at"})
_DECIMAL_COLUMNS = frozenset({"amount", "leaf", "outbox_hash", "h_start", "h_end", "batch_root"})
"""Big integers: amounts and field elements (Poseidon hashes, public inputs), in decimal."""
_HEX_COLUMNS = frozenset({"asset_id", "exec_tx", "commit_tx", "sender", "target"})
"""Bytes given for these are stored as 0x-hex."""
_JSON_COLUMNS = frozenset({"payload", "public_inputs", "proof"})
_INT64 = 1 << 63


class StoreError(Exception):
    """A store operation that cannot be done; the message says why, for an operator."""


class UnknownMessage(StoreError):
    """No message with that id is in the store."""


@dataclass(frozen=True)
class MessageRow:
    """A message as the store keeps it; `id` is "<source_chain_id>:<nonce>"."""

    id: str
    direction: str  # "out" | "in"
    peer: str  # the other institution's name
    source_chain_id: int
    dest_chain_id: int
    nonce: int
    sender: str
    target: str
    asset_id: str  # "0x" + 64 hex digits
    amount: int
    data: bytes
    asset_data: bytes
    leaf: int
    block_number: int | None = None
    sent_at: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MessageRow:
        """The message in a row from `Store.message`/`Store.messages`."""
        return cls(
            id=row["id"],
            direction=row["direction"],
            peer=row["peer"],
            source_chain_id=row["source_chain_id"],
            dest_chain_id=row["dest_chain_id"],
            nonce=row["nonce"],
            sender=row["sender"],
            target=row["target"],
            asset_id=row["asset_id"],
            amount=int(row["amount"]),
            data=bytes(row["data"]),
            asset_data=bytes(row["asset_data"]),
            leaf=int(row["leaf"]),
            block_number=row["block_number"],
            sent_at=row["sent_at"],
        )


def format_time(at: float | None) -> str:
    """A unix time as "2025-01-31 12:00:00Z" ("-" for None)."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class Store:
    """The institution's SQLite store. Safe to share between threads, and between processes (each
    with its own Store on the same file)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
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

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._db.query(sql, list(params)))

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

    def _version(self) -> int:
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        return version

    def _create_schema(self) -> None:
        if self._version() == SCHEMA_VERSION:
            return
        with self._write() as db:
            version = self._version()
            if version == SCHEMA_VERSION:
                return  # another process created it meanwhile
            if version != 0:
                raise StoreError(
                    f"{self.path} has store schema version {version}; this xrelay knows version "
                    f"{SCHEMA_VERSION} (was it written by a newer xrelay?)"
                )
            db.table("messages").create(
                _MESSAGE_COLUMNS,
                pk="id",
                not_null={"direction", "peer", "status", "attempts", "created_at", "updated_at"},
                defaults={"attempts": 0},
            )
            db.table("messages").create_index(["status"])
            db.table("messages").create_index(["direction", "peer", "status"])
            db.table("messages").create_index(["direction", "batch_number"])
            db.table("transitions").create(
                {
                    "id": "INTEGER",
                    "message_id": "TEXT",
                    "from_status": "TEXT",
                    "to_status": "TEXT",
                    "at": "REAL",
                    "reason": "TEXT",
                },
                pk="id",
                not_null={"message_id", "to_status", "at", "reason"},
                foreign_keys=[("message_id", "messages", "id")],
            )
            db.table("transitions").create_index(["message_id"])
            db.table("batches").create(
                _BATCH_COLUMNS,
                pk="batch_number",
                not_null={"status", "attempts", "created_at", "updated_at"},
                defaults={"attempts": 0},
            )
            db.table("cursors").create(
                {"name": "TEXT", "block": "INTEGER", "updated_at": "REAL"}, pk="name", not_null={"block"}
            )
            db.table("refusals").create(
                {
                    "id": "INTEGER",
                    "at": "REAL",
                    "peer": "TEXT",
                    "chain_id": "INTEGER",
                    "kind": "TEXT",
                    "reason": "TEXT",
                    "raw": "BLOB",
                },
                pk="id",
                not_null={"at", "kind", "reason", "raw"},
            )
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- messages -----------------------------------------------------------------------------

    def add_message(self, m: MessageRow, status: str, reason: str, **fields: Any) -> bool:
        """Insert `m` with `status` (and the other columns given) and record the transition
        (None -> status). Idempotent: if a message with its id is already stored, nothing changes
        and it returns False."""
        if m.direction not in _STATUSES:
            raise StoreError(f"message {m.id}: direction must be 'in' or 'out', not {m.direction!r}")
        if m.id != f"{m.source_chain_id}:{m.nonce}":
            raise StoreError(
                f"message id {m.id!r} does not match its source chain and nonce "
                f"({m.source_chain_id}:{m.nonce})"
            )
        _check_status(m.direction, status)
        now = time.time()
        row = {column: _encode(column, value) for column, value in asdict(m).items()}
        row["attempts"] = 0
        row |= _columns(_MESSAGE_COLUMNS, _MESSAGE_MANAGED, fields, "message")
        row |= {"status": status, "created_at": now, "updated_at": now}
        with self._write() as db:
            columns = ", ".join(row)
            marks = _marks(row)
            cursor = db.execute(
                f"INSERT INTO messages ({columns}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
                list(row.values()),
            )
            if cursor.rowcount == 0:
                return False
            self._record(db, m.id, None, status, reason=reason, at=now)
        return True

    def transition(self, message_id: str, status: str, reason: str, **fields: Any) -> None:
        """Set the message's status (and the other columns given) and record the transition, at once."""
        self.transition_many([message_id], status, reason, **fields)

    def transition_many(self, ids: Sequence[str], status: str, reason: str, **fields: Any) -> None:
        """`transition` for each of `ids`, all in one transaction (none if one of them is unknown)."""
        if isinstance(ids, str):
            raise TypeError("transition_many takes a sequence of message ids, not one id")
        values = _columns(_MESSAGE_COLUMNS, _MESSAGE_MANAGED, fields, "message")
        now = time.time()
        with self._write() as db:
            for message_id in ids:
                current = self._row_in(db, message_id)
                _check_status(current["direction"], status)
                self._set(db, message_id, status, values, now)
                self._record(db, message_id, current["status"], status, reason=reason, at=now)

    def message(self, message_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM messages WHERE id = ?", [message_id])
        return rows[0] if rows else None

    def messages(
        self,
        *,
        status: str | Sequence[str] | None = None,
        peer: str | None = None,
        direction: str | None = None,
        batch_number: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Messages matching every filter given, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({_marks(statuses)})")
            params += statuses
        if peer is not None:
            where.append("peer = ?")
            params.append(peer)
        if direction is not None:
            where.append("direction = ?")
            params.append(direction)
        if batch_number is not None:
            where.append("batch_number = ?")
            params.append(batch_number)
        sql = "SELECT * FROM messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rowid"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._query(sql, params)

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """The message's transitions, oldest first: id, message_id, from_status, to_status, at, reason."""
        return self._query("SELECT * FROM transitions WHERE message_id = ? ORDER BY id", [message_id])

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

    def request_replay(self, message_id: str, reason: str = "replay requested by the operator") -> str:
        """Ask the daemon to execute a failed incoming message again.

        "failed" -> "replay" (attempts reset, next attempt now) and returns "replay"; a message
        already "replay", "verified" or "executing" is left as it is and its status returned
        (idempotent).
        Raises StoreError for an unknown, outgoing, executed or not yet verified message.
        """
        now = time.time()
        with self._write() as db:
            row = self._row_in(db, message_id)
            status = row["status"]
            if row["direction"] != "in":
                raise StoreError(
                    f"message {message_id} is outgoing (to {row['peer']}): only incoming messages are "
                    "replayed, by the relayer of the chain they are addressed to"
                )
            if status == "executed":
                tx = f" in transaction {row['exec_tx']}" if row["exec_tx"] else ""
                raise StoreError(
                    f"message {message_id} was executed at {format_time(row['executed_at'])}{tx}; "
                    "it cannot be replayed"
                )
            if status in ("replay", "verified", "executing"):
                return str(status)  # already to be executed, or being executed
            if status != "failed":
                raise StoreError(
                    f"message {message_id} is {status!r}: only a failed message can be replayed"
                    + (" (it did not verify; see its history)" if status == "refused" else "")
                )
            self._set(db, message_id, "replay", {"attempts": 0, "next_attempt_at": now}, now)
            self._record(db, message_id, status, "replay", reason=reason, at=now)
        return "replay"

    def _row_in(self, db: Database, message_id: str) -> dict[str, Any]:
        rows = list(db.query("SELECT * FROM messages WHERE id = ?", [message_id]))
        if not rows:
            raise UnknownMessage(f"no message {message_id} in the store {self.path}")
        return rows[0]

    @staticmethod
    def _set(db: Database, message_id: str, status: str, values: dict[str, Any], now: float) -> None:
        values = values | {"status": status, "updated_at": now}
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(f"UPDATE messages SET {assignments} WHERE id = ?", [*values.values(), message_id])

    @staticmethod
    def _record(
        db: Database, message_id: str, before: str | None, after: str, *, reason: str, at: float
    ) -> None:
        db.execute(
            "INSERT INTO transitions (message_id, from_status, to_status, at, reason) VALUES (?, ?, ?, ?, ?)",
            [message_id, before, after, at, reason],
        )

    # --- batches ------------------------------------------------------------------------------

    def add_batch(self, batch_number: int, **fields: Any) -> None:
        """A new batch of this chain, in status "proving". StoreError if it is already stored."""
        now = time.time()
        row = _columns(_BATCH_COLUMNS, _BATCH_MANAGED, fields, "batch") | {
            "batch_number": batch_number,
            "status": "proving",
            "created_at": now,
            "updated_at": now,
        }
        row.setdefault("attempts", 0)
        with self._write() as db:
            cursor = db.execute(
                f"INSERT INTO batches ({', '.join(row)}) VALUES ({_marks(row)}) "
                "ON CONFLICT (batch_number) DO NOTHING",
                list(row.values()),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"batch {batch_number} is already in the store")

    def update_batch(self, batch_number: int, status: str | None = None, **fields: Any) -> None:
        values = _columns(_BATCH_COLUMNS, _BATCH_MANAGED, fields, "batch")
        if status is not None:
            if status not in BATCH_STATUSES:
                raise StoreError(
                    f"unknown batch status {status!r}: expected one of {', '.join(BATCH_STATUSES)}"
                )
            values["status"] = status
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE batches SET {assignments} WHERE batch_number = ?", [*values.values(), batch_number]
            )
            if cursor.rowcount == 0:
                raise StoreError(f"no batch {batch_number} in the store {self.path}")

    def batch(self, batch_number: int) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM batches WHERE batch_number = ?", [batch_number])
        return rows[0] if rows else None

    def batches(self, *, status: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Batches (with one of the statuses given), by batch number."""
        if status is None:
            return self._query("SELECT * FROM batches ORDER BY batch_number")
        statuses = [status] if isinstance(status, str) else list(status)
        return self._query(
            f"SELECT * FROM batches WHERE status IN ({_marks(statuses)}) ORDER BY batch_number",
            statuses,
        )

    # --- cursors ------------------------------------------------------------------------------

    def cursor(self, name: str) -> int | None:
        """The block a watcher named `name` has handled up to, or None if it never saved one."""
        rows = self._query("SELECT block FROM cursors WHERE name = ?", [name])
        return int(rows[0]["block"]) if rows else None

    def set_cursor(self, name: str, block: int) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO cursors (name, block, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET block = excluded.block, updated_at = excluded.updated_at",
                [name, block, time.time()],
            )

    # --- refusals -----------------------------------------------------------------------------

    def refuse(self, *, peer: str | None, chain_id: int | None, kind: str, reason: str, raw: bytes) -> None:
        """Record an input that was refused (an envelope that did not verify, a message not allowed)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO refusals (at, peer, chain_id, kind, reason, raw) VALUES (?, ?, ?, ?, ?, ?)",
                [time.time(), peer, chain_id, kind, reason, bytes(raw)],
            )

    def refusals(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Refused inputs, newest first: id, at, peer, chain_id, kind, reason, raw."""
        sql = "SELECT * FROM refusals ORDER BY id DESC"
        if limit is None:
            return self._query(sql)
        return self._query(sql + " LIMIT ?", [limit])


# --- values -----------------------------------------------------------------------------------


def _marks(values: Sized) -> str:
    return ", ".join("?" * len(values))


def _check_status(direction: str, status: str) -> None:
    allowed = _STATUSES[direction]
    if status not in allowed:
        kind = "an outgoing" if direction == "out" else "an incoming"
        raise StoreError(
            f"{status!r} is not a status of {kind} message: expected one of {', '.join(allowed)}"
        )


def _columns(
    schema: Mapping[str, str], managed: frozenset[str], fields: Mapping[str, Any], what: str
) -> dict[str, Any]:
    unknown = [name for name in fields if name not in schema or name in managed]
    if unknown:
        settable = ", ".join(name for name in schema if name not in managed)
        raise StoreError(f"cannot set {', '.join(unknown)} on a {what}: the columns are {settable}")
    return {name: _encode(name, value) for name, value in fields.items()}


def _encode(column: str, value: Any) -> Any:
    """A value as its column stores it."""
    if value is None:
        return None
    if column in _JSON_COLUMNS:
        if isinstance(value, str):
            return value
        if column == "public_inputs":
            value = [str(int(v)) for v in value]
        try:
            return orjson.dumps(value, default=_json_default).decode()
        except TypeError:  # orjson stops at 64-bit integers; json does not
            return json.dumps(value, default=_json_default, separators=(",", ":"))
    if column in _DECIMAL_COLUMNS and isinstance(value, int):
        return str(value)
    if column in _HEX_COLUMNS and isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        raise StoreError(f"{column} = {value} does not fit a 64-bit integer column")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
