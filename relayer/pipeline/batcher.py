"""The batcher: closes a batch of this chain's outgoing messages and has it proven.

Batch k holds the next messages in nonce order, starting from the outbox hash batch k-1 ended on. It
closes when the largest configured capacity is full; or when the prover is idle and at most one
proven batch waits for L1 (nothing is gained by waiting: a lone message does not wait for company,
proving overlaps the previous batch's commit, and under load batches fill while the prover and L1
are busy); or `batch.max_wait_seconds` after its oldest message arrived. It is proven with the
smallest capacity that holds it.
Closing is one store step (`Store.close_batch`: the batch, its capacity and its messages' move to
"batched"), written before proving starts; a batch found "proving" after a restart is proven again
from the same messages and capacity, which gives the same statement. Proving runs in the prover pool
while the settler commits earlier batches. No batch closes while this chain's outgoing pipeline is
halted.
"""

from __future__ import annotations

import asyncio
import logging

from proofs.circuits.batch import Batch
from proofs.formats import snarkjs_json
from relayer.pipeline.context import Context, now
from relayer.pipeline.prover import ProverPool
from relayer.store import BatchStatus, OutStatus, StoredBatch, StoredMessage

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

    async def step(self) -> float | None:
        """Collect finished proofs, then start proving unfinished or newly closed batches. None if it
        did something; otherwise the seconds until a waiting batch is due to close (at most the L1's
        poll interval: the outbox watcher wakes it). A proof that failed leaves its batch "proving",
        to be proven again."""
        for number, task in list(self._proving.items()):
            if task.done():
                del self._proving[number]
                task.result()  # a failure is raised here, logged by the daemon's loop
        started = False
        for batch in self.ctx.store.batches(status=BatchStatus.PROVING):
            if len(self._proving) < self.pool.workers and batch.batch_number not in self._proving:
                self._start(batch)
                started = True
        wait = self.ctx.config.l1.poll_seconds
        while len(self._proving) < self.pool.workers and self.ctx.outgoing_halt() is None:
            closed = self._close()
            if isinstance(closed, float):
                wait = min(wait, closed)
                break
            self._start(closed)
            started = True
        return None if started else wait

    def _start(self, batch: StoredBatch) -> None:
        self._proving[batch.batch_number] = asyncio.create_task(self._prove(batch))

    def _close(self) -> StoredBatch | float:
        """Close the next batch if it is due; else the seconds until it will be (or the poll interval
        when nothing waits)."""
        store, capacities = self.ctx.store, self.pool.capacities
        last = store.last_batch()
        first_nonce = 0 if last is None else last.last_nonce + 1
        waiting = sorted(store.messages(direction="out", status=OutStatus.SENT), key=lambda m: m.nonce)
        run: list[StoredMessage] = []
        for m in waiting:
            if m.nonce != first_nonce + len(run):
                break
            run.append(m)
            if len(run) == capacities[-1]:
                break
        if not run:
            if waiting:
                log.warning(
                    "next batch starts at nonce %d, but the oldest waiting message is nonce %d",
                    first_nonce,
                    waiting[0].nonce,
                )
            return self.ctx.config.l1.poll_seconds
        age = now() - min(m.created_at for m in run)
        full = len(run) == capacities[-1]
        if not full and age < self.ctx.config.batch.max_wait_seconds and not self._idle():
            return self.ctx.config.batch.max_wait_seconds - age
        capacity = next(c for c in capacities if c >= len(run))
        number = 0 if last is None else last.batch_number + 1
        batch = store.close_batch(number, capacity=capacity, message_ids=[m.id for m in run])
        reason = "full" if full else "prover idle" if age < self.ctx.config.batch.max_wait_seconds else "age"
        log.info(
            "batch %d closed (%s): %d messages (nonces %d..%d), capacity %d",
            number,
            reason,
            len(run),
            batch.first_nonce,
            batch.last_nonce,
            capacity,
        )
        return batch

    def _idle(self) -> bool:
        """Nothing proving, and at most one proven batch waiting for L1: the next proof then overlaps
        that batch's commit, and when L1 is the slower, messages gather into larger batches instead of
        queueing up small ones behind it."""
        waiting = self.ctx.store.batches(status=[BatchStatus.PROVEN, BatchStatus.COMMITTING])
        return not self._proving and len(waiting) <= 1

    async def _prove(self, batch: StoredBatch) -> None:
        store, number = self.ctx.store, batch.batch_number
        rows = store.messages(direction="out", batch_number=number)
        if len(rows) != batch.count:
            raise BatcherError(
                f"batch {number} should hold {batch.count} messages; the store has {len(rows)}"
            )
        statement = Batch(self.ctx.chain_id, number, batch.h_start, tuple(m.message.preimage() for m in rows))
        proven = await self.pool.prove(statement, batch.capacity)
        public = proven.public
        if public.h_end != batch.h_end:
            raise BatcherError(
                f"batch {number}: the proof ends on outbox hash {public.h_end:#x}, "
                f"the chain on {batch.h_end:#x}"
            )
        if store.record_proof(
            number,
            batch_root=public.batch_root,
            public_inputs=public.values(),
            proof=snarkjs_json.proof_to_json(proven.proof),
            seconds=proven.seconds,
            h_start=public.h_start,
            h_end=public.h_end,
        ):
            self.ctx.metrics.batch_proven(proven.seconds)
            log.info("batch %d proven in %.2f s", number, proven.seconds)
        self.ctx.wakeups.wake("settler", "batcher")
