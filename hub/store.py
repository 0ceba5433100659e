"""The hub service's SQLite store: what the indexer read from the L1 Hub's events, and its cursor.

One file, written only by the indexer (one transaction per block range, the cursor included, so a
restart resumes exactly after the last range it stored) and read by the API. Values are kept in the
form the API serves them: hashes and field elements as 0x + 64 hex digits, amounts and balances as
decimal strings, addresses checksummed, messages as JSON text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlite_utils import Database

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 10.0


class HubStoreError(RuntimeError):
    """The store cannot be opened, or belongs to another Hub."""


_TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "meta": ({"key": str, "value": str}, "key"),
    "chains": (
        {
            "chain_id": int,
            "operator": str,
            "validium": int,
            "next_batch": int,
            "outbox_hash": str,
            "block": int,
        },
        "chain_id",
    ),
    "verifiers": (
        {"chain_id": int, "capacity": int, "verifier": str, "block": int},
        ("chain_id", "capacity"),
    ),
    "assets": ({"asset_id": str, "origin_chain_id": int, "origin_token": str, "block": int}, "asset_id"),
    "balances": ({"chain_id": int, "asset_id": str, "balance": str, "block": int}, ("chain_id", "asset_id")),
    "batches": (
        {
            "chain_id": int,
            "batch_number": int,
            "count": int,
            "h_end": str,
            "batch_root": str,
            "depth": int,
            "leaf_index": int,
            "aggregated_root": str,
            "tx": str,
            "block": int,
        },
        ("chain_id", "batch_number"),
    ),
    "leaves": ({"leaf_index": int, "leaf": str, "root": str, "tx": str, "block": int}, "leaf_index"),
    "deposits": (
        {
            "nonce": int,
            "dest_chain_id": int,
            "leaf": str,
            "leaf_index": int,
            "aggregated_root": str,
            "message": str,
            "tx": str,
            "block": int,
        },
        "nonce",
    ),
    "withdrawals": (
        {
            "id": str,
            "source_chain_id": int,
            "nonce": int,
            "target": str,
            "amount": str,
            "tx": str,
            "block": int,
        },
        "id",
    ),
}


class HubStore:
    """The indexer's database. Used from one thread (the service's event loop)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
            self.db = Database(conn)
            self.db.enable_wal()
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            raise HubStoreError(f"cannot use {self.path} as the hub's store: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> HubStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _create_schema(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise HubStoreError(
                f"{self.path} has hub store schema version {version}; "
                f"this xrelay knows version {SCHEMA_VERSION}"
            )
        with self.db.atomic():
            for name, (columns, pk) in _TABLES.items():
                self.db.table(name).create(columns, pk=pk, not_null=set(columns) - {"tx"})
            self.db.table("deposits").create_index(["dest_chain_id", "nonce"])
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: everything inside is stored, or nothing."""
        with self.db.atomic():
            yield

    # --- identity and cursor ----------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    def bind(self, l1_chain_id: int, hub: str) -> None:
        """Record which Hub this store indexes; refuse a store written for another one."""
        stored = (self.meta("l1_chain_id"), self.meta("hub"))
        if stored == (None, None):
            with self.transaction():
                self.set_meta("l1_chain_id", str(l1_chain_id))
                self.set_meta("hub", hub)
        elif stored != (str(l1_chain_id), hub):
            raise HubStoreError(
                f"{self.path} indexes the Hub {stored[1]} on chain {stored[0]}, not {hub} on chain "
                f"{l1_chain_id}: give this Hub a store of its own"
            )

    def cursor(self) -> tuple[int, str] | None:
        """The last block indexed and its hash, None before the first range."""
        block, block_hash = self.meta("indexed_block"), self.meta("indexed_block_hash")
        return None if block is None or block_hash is None else (int(block), block_hash)

    def set_cursor(self, block: int, block_hash: str) -> None:
        self.set_meta("indexed_block", str(block))
        self.set_meta("indexed_block_hash", block_hash)

    # --- writes (inside `transaction`) ------------------------------------------------------------

    def upsert(self, table: str, row: dict[str, Any]) -> None:
        self.db.table(table).upsert(row, pk=_TABLES[table][1])

    def update_chain(self, chain_id: int, **fields: Any) -> None:
        self.db.table("chains").update(chain_id, fields)

    # --- reads ------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params or []))

    def leaves(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM leaves ORDER BY leaf_index")

    def chains(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM chains ORDER BY chain_id")

    def chain(self, chain_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM chains WHERE chain_id = ?", [chain_id])
        return rows[0] if rows else None

    def balances(self, chain_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM balances WHERE chain_id = ? ORDER BY asset_id", [chain_id])

    def batches(self, chain_id: int, from_batch: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT * FROM batches WHERE chain_id = ? AND batch_number >= ? ORDER BY batch_number LIMIT ?",
            [chain_id, from_batch, limit],
        )

    def batch(self, chain_id: int, batch_number: int) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM batches WHERE chain_id = ? AND batch_number = ?", [chain_id, batch_number]
        )
        return rows[0] if rows else None

    def roots(self, from_size: int = 1, limit: int = 1000) -> list[dict[str, Any]]:
        """The root after each append: size = leaf_index + 1."""
        return self._rows(
            "SELECT leaf_index + 1 AS size, root, block FROM leaves WHERE leaf_index + 1 >= ? "
            "ORDER BY leaf_index LIMIT ?",
            [from_size, limit],
        )

    def deposits(self, dest_chain_id: int, from_nonce: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT * FROM deposits WHERE dest_chain_id = ? AND nonce >= ? ORDER BY nonce LIMIT ?",
            [dest_chain_id, from_nonce, limit],
        )
        return [{**row, "message": orjson.loads(row["message"])} for row in rows]

    def withdrawals(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM withdrawals ORDER BY block, id")
