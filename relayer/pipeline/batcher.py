"""The batcher: closes a batch of this chain's outgoing messages and has it proven.

Batch k holds the next messages in nonce order, starting from the outbox hash batch k-1 ended on. It
closes at `batch.capacity` messages, or `batch.max_wait_seconds` after its oldest message arrived.
The batch row and each message's move to "batched" are written before proving starts; a batch found
"proving" after a restart is proven again from the same messages, which gives the same statement.
Proving runs in the prover pool while the settler commits earlier batches.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from proofs.circuits.batch import Batch
from proofs.formats import snarkjs_json
from relayer.pipeline.context import Context, batch_messages, message_of, now
from relayer.pipeline.prover import ProverPool

log = logging.getLogger(__name__)


class BatcherError(RuntimeError):
    """The store and the chain disagree in a way the batcher cannot repair by itself."""


class Batcher:
    """Closes batches and keeps up to `pool.workers` of them proving at once (a batch closes on the
    outbox hash the one before it ends on, which the chain gave, so it need not wait for its proof)."""

    def __init__(self, ctx: Context, pool: ProverPool) -> None:
        self.ctx = ctx
        self.pool = pool
        self._proving: dict[int, asyncio.Task[None]] = {}

    async def step(self) -> bool:
        """Collect finished proofs, then start proving unfinished or newly closed batches; True if
        it did something. A proof that failed leaves its batch "proving", to be proven again."""
        for number, task in list(self._proving.items()):
            if task.done():
                del self._proving[number]
                task.result()  # a failure is raised here, logged by the daemon's loop
        started = False
        for row in self.ctx.store.batches(status="proving"):
            if len(self._proving) < self.pool.workers and row["batch_number"] not in self._proving:
                self._start(row)
                started = True
        while len(self._proving) < self.pool.workers and (closed := self._close()) is not None:
            self._start(closed)
            started = True
        return started

    def _start(self, row: dict[str, Any]) -> None:
        self._proving[row["batch_number"]] = asyncio.create_task(self._prove(row))

    def _close(self) -> dict[str, Any] | None:
        store, capacity = self.ctx.store, self.ctx.config.batch.capacity
        last = max(store.batches(), key=lambda b: b["batch_number"], default=None)
        number = 0 if last is None else last["batch_number"] + 1
        h_start = 0 if last is None else int(last["h_end"])
        first_nonce = 0 if last is None else last["last_nonce"] + 1
        waiting = sorted(store.messages(direction="out", status="sent"), key=lambda m: m["nonce"])
        run: list[dict[str, Any]] = []
        for row in waiting:
            if row["nonce"] != first_nonce + len(run):
                break
            run.append(row)
            if len(run) == capacity:
                break
        if not run:
            if waiting:
                log.warning(
                    "next batch starts at nonce %d, but the oldest waiting message is nonce %d",
                    first_nonce,
                    waiting[0]["nonce"],
                )
            return None
        oldest = min(row["created_at"] for row in run)
        if len(run) < capacity and now() - oldest < self.ctx.config.batch.max_wait_seconds:
            return None
        h_end = int(run[-1]["outbox_hash"])
        store.add_batch(
            number,
            capacity=capacity,
            count=len(run),
            first_nonce=first_nonce,
            last_nonce=first_nonce + len(run) - 1,
            h_start=str(h_start),
            h_end=str(h_end),
        )
        for index, row in enumerate(run):
            store.transition(
                row["id"], "batched", f"in batch {number}", batch_number=number, index_in_batch=index
            )
        log.info(
            "batch %d closed: %d messages (nonces %d..%d)",
            number,
            len(run),
            first_nonce,
            first_nonce + len(run) - 1,
        )
        batch = store.batch(number)
        assert batch is not None
        return batch

    async def _prove(self, row: dict[str, Any]) -> None:
        store, number = self.ctx.store, row["batch_number"]
        rows = batch_messages(store, number)
        if len(rows) != row["count"]:
            raise BatcherError(
                f"batch {number} should hold {row['count']} messages; the store has {len(rows)}"
            )
        batch = Batch(
            self.ctx.chain_id, number, int(row["h_start"]), tuple(message_of(m).preimage() for m in rows)
        )
        proven = await self.pool.prove(batch)
        public = proven.public
        if public.h_end != int(row["h_end"]):
            raise BatcherError(
                f"batch {number}: the proof ends on outbox hash {public.h_end:#x}, "
                f"the chain on {int(row['h_end']):#x}"
            )
        store.update_batch(
            number,
            status="proven",
            batch_root=str(public.batch_root),
            public_inputs=orjson.dumps([str(x) for x in public.values()]).decode(),
            proof=orjson.dumps(snarkjs_json.proof_to_json(proven.proof)).decode(),
            proving_seconds=proven.seconds,
        )
        self.ctx.metrics.batch_proven(proven.seconds)
        log.info("batch %d proven in %.2f s", number, proven.seconds)
