"""The batcher: closes a batch of this chain's outgoing messages and has it proven.

Batch k holds the next messages in nonce order, starting from the outbox hash batch k-1 ended on. It
closes when it is full: the largest configured capacity is, or the next message would carry value to
a fifth (destination, asset) pair (the circuit has four value slots); or when the prover is idle and
at most one proven batch waits for L1 (nothing is gained by waiting: a lone message does not wait
for company, proving overlaps the previous batch's commit, and under load batches fill while the
prover and L1 are busy; `batch.close_when_idle = false` turns this off); or
`batch.max_wait_seconds` after its oldest message arrived. It is proven with the smallest capacity
that holds it.

Closing is one store step (`Store.close_batch`: the batch, its capacity and its messages' move to
"batched"), written before proving starts; a batch found "proving" after a restart is proven again
from the same messages and capacity, which gives the same statement (or, if that capacity is no
longer configured, with the smallest configured one that holds it: nothing of the batch has left
the daemon yet). A failed proof is tried again after 2, 4, 8 ... seconds, up to a minute. Proving
runs in the prover pool while the settler commits earlier batches. No batch closes while this
chain's outgoing pipeline is halted.
"""

from __future__ import annotations

import asyncio
import logging

from proofs.circuits.batch import DEFAULT_SLOTS, Batch
from proofs.formats import snarkjs_json
from relayer.pipeline.context import Context, now
from relayer.pipeline.prover import ProverPool
from relayer.store import BatchStatus, OutStatus, StoredBatch, StoredMessage

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 60.0


class BatcherError(RuntimeError):
    """The store and the chain disagree in a way the batcher cannot repair by itself."""


class Batcher:
    """Closes batches and keeps up to `pool.workers` of them proving at once (a batch closes on the
    outbox hash the one before it ends on, which the chain gave, so it need not wait for its proof)."""

    def __init__(self, ctx: Context, pool: ProverPool) -> None:
        self.ctx = ctx
        self.pool = pool
        self._proving: dict[int, asyncio.Task[None]] = {}
        self._failures: dict[int, int] = {}  # failed tries of each batch, since its last success
        self._retry_at: dict[int, float] = {}

    async def step(self) -> float | None:
        """Collect finished proofs, then start proving unfinished or newly closed batches. None if it
        did something; otherwise the seconds until a waiting batch is due to close (at most the L1's
        poll interval: the outbox watcher wakes it). A proof that failed leaves its batch "proving",
        to be proven again after a delay that doubles with each failed try (up to a minute)."""
        for number, task in list(self._proving.items()):
            if task.done() and not task.cancelled():
                del self._proving[number]
                self._finished(number, task.exception())
        started = False
        wait = self.ctx.config.l1.poll_seconds
        for batch in self.ctx.store.batches(status=BatchStatus.PROVING):
            number = batch.batch_number
            if len(self._proving) >= self.pool.workers or number in self._proving:
                continue
            if self._retry_at.get(number, 0.0) > now():
                wait = min(wait, self._retry_at[number] - now())
                continue
            started |= self._start(batch)
        while len(self._proving) < self.pool.workers and self.ctx.outgoing_halt() is None:
            closed = self._close()
            if isinstance(closed, float):
                wait = min(wait, closed)
                break
            started |= self._start(closed)
        return None if started else wait

    def _finished(self, number: int, error: BaseException | None) -> None:
        if error is None:
            self._failures.pop(number, None)
            self._retry_at.pop(number, None)
            return
        tries = self._failures[number] = self._failures.get(number, 0) + 1
        delay = min(MAX_RETRY_SECONDS, 2.0**tries)
        self._retry_at[number] = now() + delay
        self.ctx.metrics.failure("prove")
        log.error(
            "batch %d: proving failed (try %d; again in %.0f s): %s",
            number,
            tries,
            delay,
            error,
            exc_info=error,
        )

    def _start(self, batch: StoredBatch) -> bool:
        """Start proving `batch`; False if no configured capacity can (it stays "proving")."""
        capacities = self.pool.capacities
        if batch.capacity not in capacities:  # the configured capacities changed since it closed
            holding = [c for c in capacities if c >= batch.count]
            if not holding:
                log.critical(
                    "batch %d (%d messages) was closed with capacity %d, which is no longer configured, and "
                    "no configured capacity (%s) holds it: add %d to [batch] capacities and restart",
                    batch.batch_number,
                    batch.count,
                    batch.capacity,
                    ", ".join(map(str, capacities)),
                    batch.capacity,
                )
                self._retry_at[batch.batch_number] = now() + MAX_RETRY_SECONDS
                return False
            log.warning(
                "batch %d: capacity %d is no longer configured; proving it with capacity %d",
                batch.batch_number,
                batch.capacity,
                holding[0],
            )
            batch = self.ctx.store.change_capacity(batch.batch_number, holding[0])
        self._proving[batch.batch_number] = asyncio.create_task(self._prove(batch))
        return True

    def _close(self) -> StoredBatch | float:
        """Close the next batch if it is due; else the seconds until it will be (or the poll interval
        when nothing waits)."""
        store, capacities = self.ctx.store, self.pool.capacities
        last = store.last_batch()
        first_nonce = 0 if last is None else last.last_nonce + 1
        waiting = sorted(store.messages(direction="out", status=OutStatus.SENT), key=lambda m: m.nonce)
        run: list[StoredMessage] = []
        pairs: set[tuple[int, bytes]] = set()  # (destination, asset) pairs carrying value: one slot each
        full = False
        for m in waiting:
            if m.nonce != first_nonce + len(run):
                break
            if m.message.amount:
                pair = (m.message.dest_chain_id, m.message.asset_id)
                if pair not in pairs and len(pairs) == DEFAULT_SLOTS:
                    full = True  # the circuit's value slots are taken: this message opens the next batch
                    break
                pairs.add(pair)
            run.append(m)
            if len(run) == capacities[-1]:
                full = True
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
        if not self.ctx.config.batch.close_when_idle:
            return False
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
            capacity=batch.capacity,
        ):
            self.ctx.metrics.batch_proven(proven.seconds)
            log.info("batch %d proven in %.2f s", number, proven.seconds)
        self.ctx.wakeups.wake("settler", "batcher")
