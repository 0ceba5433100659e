"""The batcher's adaptive batches, on a real store and a real prover pool with keys of capacities 8
and 16: when a batch closes (full, prover idle, age) and which capacity proves it; each proof
verifies against its capacity's verifying key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from bridge_contracts.messages import Message
from proofs.circuits.batch import BatchCircuit
from proofs.formats import snarkjs_json, zkey
from proofs.groth16.keys import ProvingKey
from proofs.groth16.setup import setup
from proofs.groth16.verifier import verify
from relayer.metrics import Metrics
from relayer.pipeline.batcher import Batcher
from relayer.pipeline.context import Context, Wakeups
from relayer.pipeline.prover import ProverPool
from relayer.pipeline.settler import public_inputs
from relayer.store import BatchStatus, Halt, OutStatus, Store
from tests.stored import outgoing, send, settle

CAPACITIES = (8, 16)
Keys = dict[int, tuple[ProvingKey, Path]]
Scenario = Callable[[Store, Batcher], Awaitable[None]]
MAX_WAIT = 30.0  # far beyond each test: a batch that closes did so on count or on an idle prover


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for capacity in CAPACITIES:
        pk = setup(BatchCircuit(capacity).r1cs, seed=f"batcher test {capacity}".encode(), development=True)
        zkey.write(pk, folder / f"batch-{capacity}.zkey")
        made[capacity] = (pk, folder / f"batch-{capacity}.zkey")
    return made


@dataclass
class Harness:
    """What the batcher reads of the daemon's context: its store, config, metrics and wake-ups."""

    store: Store
    chain_id: int = 901
    config: SimpleNamespace = field(
        default_factory=lambda: SimpleNamespace(
            batch=SimpleNamespace(max_wait_seconds=MAX_WAIT, close_when_idle=True),
            l1=SimpleNamespace(poll_seconds=1.0),
        )
    )
    metrics: Metrics = field(default_factory=Metrics)
    wakeups: Wakeups = field(default_factory=Wakeups)

    def outgoing_halt(self) -> Halt | None:
        return self.store.active_halt("outbox")


def run(tmp_path: Path, keys: Keys, scenario: Scenario, capacities: tuple[int, ...] = CAPACITIES) -> None:
    async def main() -> None:
        pool = ProverPool({c: path for c, (_, path) in keys.items() if c in capacities})
        try:
            await pool.start()
            store = Store(tmp_path / "bank-a.sqlite")
            await scenario(store, Batcher(cast(Context, Harness(store)), pool))
        finally:
            pool.close()

    asyncio.run(main())


async def until_proven(store: Store, batcher: Batcher, number: int) -> None:
    deadline = time.monotonic() + 120
    while (batch := store.batch(number)) is None or batch.status != BatchStatus.PROVEN:
        assert time.monotonic() < deadline, f"batch {number} not proven in 120 s"
        await batcher.step()
        await asyncio.sleep(0.05)


def check_proof(store: Store, number: int, keys: Keys) -> None:
    batch = store.batch(number)
    assert batch is not None and batch.proof is not None
    pk, _ = keys[batch.capacity]
    assert verify(pk.vk, public_inputs(batch).values(), snarkjs_json.proof_from_json(batch.proof))


def test_a_lone_message_closes_at_once_in_the_smallest_capacity(tmp_path: Path, keys: Keys) -> None:
    async def scenario(store: Store, batcher: Batcher) -> None:
        send(store, outgoing(0))
        await batcher.step()  # the prover is idle: no waiting for company (max_wait is 30 s)
        batch = store.batch(0)
        assert batch is not None and (batch.capacity, batch.count) == (8, 1)
        await until_proven(store, batcher, 0)
        check_proof(store, 0, keys)

    run(tmp_path, keys, scenario)


def test_a_flood_fills_the_largest_and_the_rest_waits_for_the_prover(tmp_path: Path, keys: Keys) -> None:
    async def scenario(store: Store, batcher: Batcher) -> None:
        send(store, *(outgoing(n) for n in range(21)))
        assert await batcher.step() is None  # started: batch 0 full at 16
        batch = store.batch(0)
        assert batch is not None and (batch.capacity, batch.count, batch.first_nonce) == (16, 16, 0)
        # while batch 0 proves, the other 5 wait (one prover: the pool is busy)
        wait = await batcher.step()
        assert store.batch(1) is None and wait is not None
        await until_proven(store, batcher, 0)
        await batcher.step()
        # batch 0 waits for L1: the 5 are proven meanwhile, in the smallest capacity holding them
        batch = store.batch(1)
        assert batch is not None and (batch.capacity, batch.count, batch.first_nonce) == (8, 5, 16)
        await until_proven(store, batcher, 1)
        # two batches wait for L1: a new message waits for them (or for its age), not a third commit
        send(store, outgoing(21))
        await batcher.step()
        assert store.batch(2) is None
        settle(store, 0)
        await batcher.step()
        batch = store.batch(2)
        assert batch is not None and (batch.capacity, batch.count, batch.first_nonce) == (8, 1, 21)
        await until_proven(store, batcher, 2)
        for number in (0, 1, 2):
            check_proof(store, number, keys)
        first, second = store.batch(0), store.batch(1)
        assert first is not None and second is not None and second.h_start == first.h_end
        assert not store.messages(direction="out", status=OutStatus.SENT)

    run(tmp_path, keys, scenario)


def test_nine_waiting_messages_take_capacity_16(tmp_path: Path, keys: Keys) -> None:
    async def scenario(store: Store, batcher: Batcher) -> None:
        send(store, *(outgoing(n) for n in range(9)))
        await batcher.step()
        batch = store.batch(0)
        assert batch is not None and (batch.capacity, batch.count) == (16, 9)
        await until_proven(store, batcher, 0)
        check_proof(store, 0, keys)

    run(tmp_path, keys, scenario)


def test_a_busy_pipeline_closes_on_age(tmp_path: Path, keys: Keys) -> None:
    async def scenario(store: Store, batcher: Batcher) -> None:
        send(store, outgoing(0))
        await batcher.step()
        await until_proven(store, batcher, 0)  # proven, never settled
        send(store, outgoing(1))
        await batcher.step()  # closes at once: one batch waiting for L1 is fine
        await until_proven(store, batcher, 1)  # two wait now: the pipeline is busy
        send(store, outgoing(2))
        cast(SimpleNamespace, batcher.ctx.config).batch.max_wait_seconds = 0.5
        wait = await batcher.step()
        assert store.batch(2) is None and wait is not None and 0 < wait <= 0.5
        await asyncio.sleep(wait)
        await batcher.step()
        batch = store.batch(2)
        assert batch is not None and (batch.capacity, batch.count) == (8, 1)
        await until_proven(store, batcher, 2)

    run(tmp_path, keys, scenario)


def test_a_fifth_value_pair_opens_the_next_batch(tmp_path: Path, keys: Keys) -> None:
    """The circuit has four value slots: a batch never carries value to five (destination, asset)
    pairs, however much room its capacity has (such a batch could never be proven)."""

    def paying(nonce: int, asset: int) -> Message:
        return replace(outgoing(nonce, amount=nonce + 1), asset_id=asset.to_bytes(32, "big"))

    async def scenario(store: Store, batcher: Batcher) -> None:
        # assets 1, 2, 1, 3, 4, then 5 (a fifth pair), then a plain message and asset 1 again
        send(store, *(paying(n, a) for n, a in enumerate((1, 2, 1, 3, 4, 5))), outgoing(6), paying(7, 1))
        await batcher.step()
        batch = store.batch(0)
        assert batch is not None and (batch.capacity, batch.count) == (8, 5)
        await until_proven(store, batcher, 0)
        await batcher.step()
        batch = store.batch(1)
        assert batch is not None and (batch.capacity, batch.count, batch.first_nonce) == (8, 3, 5)
        await until_proven(store, batcher, 1)
        for number in (0, 1):
            check_proof(store, number, keys)
            slots = public_inputs(store.batch(number)).slots  # type: ignore[arg-type]
            assert sum(slot.amount for slot in slots) == sum(
                m.message.amount for m in store.messages(direction="out", batch_number=number)
            )

    run(tmp_path, keys, scenario)


def test_a_batch_closed_with_a_capacity_no_longer_configured_is_proven_with_one_that_is(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario(store: Store, batcher: Batcher) -> None:
        send(store, *(outgoing(n) for n in range(12)))
        store.close_batch(0, capacity=16, message_ids=[f"901:{n}" for n in range(3)])  # before a restart
        await batcher.step()  # the pool has capacity 8 only now
        batch = store.batch(0)
        assert batch is not None and (batch.capacity, batch.count) == (8, 3)
        await until_proven(store, batcher, 0)
        check_proof(store, 0, keys)
        settle(store, 0)
        # 9 messages closed with 16: no configured capacity holds them; the batch stays, unproven
        store.close_batch(1, capacity=16, message_ids=[f"901:{n}" for n in range(3, 12)])
        assert await batcher.step() is not None
        batch = store.batch(1)
        assert batch is not None and (batch.status, batch.capacity) == (BatchStatus.PROVING, 16)

    run(tmp_path, keys, scenario, capacities=(8,))
