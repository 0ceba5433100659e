"""relayer.pipeline.prover.ProverPool: batch proofs made in worker processes with a development key
for capacity 8 verify against the public inputs they come with, concurrently too, and a bad key
fails at start()."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from proofs.circuits.batch import Batch, BatchCircuit
from proofs.formats import FormatError, zkey
from proofs.groth16.keys import ProvingKey
from proofs.groth16.prover import ProverError
from proofs.groth16.setup import setup
from proofs.groth16.verifier import verify
from proofs.message import LeafPreimage, roll
from relayer.pipeline.prover import ProvenBatch, ProverPool, ProverPoolError

CAPACITY = 8
ASSET_X = 0xA11CE << 200 | 0x1234
T = TypeVar("T")

FIRST = Batch(
    chain_id=901,
    batch_number=0,
    h_start=0,
    messages=(
        LeafPreimage(902, 0, 0, 1),
        LeafPreimage(902, ASSET_X, 10**18, 2),
        LeafPreimage(900, ASSET_X, 5, 3),
    ),
)
SECOND = Batch(
    chain_id=901,
    batch_number=1,
    h_start=roll(roll(roll(0, FIRST.messages[0].leaf()), FIRST.messages[1].leaf()), FIRST.messages[2].leaf()),
    messages=(LeafPreimage(900, 0, 0, 4), LeafPreimage(902, ASSET_X, 7, 5)),
)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProvingKey, Path]:
    pk = setup(BatchCircuit(CAPACITY).r1cs, seed=b"xrelay tests: prover pool", development=True)
    path = tmp_path_factory.mktemp("keys") / "batch-8.zkey"
    zkey.write(pk, path)
    return pk, path


def with_pool(path: Path, capacity: int, use: Callable[[ProverPool], Awaitable[T]], workers: int = 1) -> T:
    async def run() -> T:
        pool = ProverPool({capacity: path}, workers=workers)
        try:
            return await use(pool)
        finally:
            pool.close()

    return asyncio.run(run())


def check(pk: ProvingKey, batch: Batch, proven: ProvenBatch) -> None:
    public = proven.public
    assert public == BatchCircuit(CAPACITY).public_inputs(batch)
    assert (public.chain_id, public.batch_number, public.count) == (
        901,
        batch.batch_number,
        len(batch.messages),
    )
    assert verify(pk.vk, public.values(), proven.proof)
    assert proven.seconds > 0


def test_a_batch_proof_verifies_against_its_public_inputs(key: tuple[ProvingKey, Path]) -> None:
    pk, path = key

    async def use(pool: ProverPool) -> ProvenBatch:
        await pool.start()
        return await pool.prove(FIRST, CAPACITY)

    proven = with_pool(path, CAPACITY, use)
    check(pk, FIRST, proven)
    assert proven.public.h_end == SECOND.h_start
    tampered = proven.public.values()
    tampered[4] += 1  # another h_end
    assert not verify(pk.vk, tampered, proven.proof)


def test_two_batches_proven_concurrently_both_verify(key: tuple[ProvingKey, Path]) -> None:
    pk, path = key

    async def use(pool: ProverPool) -> list[ProvenBatch]:
        await pool.start()
        return list(await asyncio.gather(pool.prove(FIRST, CAPACITY), pool.prove(SECOND, CAPACITY)))

    first, second = with_pool(path, CAPACITY, use, workers=2)
    check(pk, FIRST, first)
    check(pk, SECOND, second)
    assert first.public != second.public
    assert not verify(pk.vk, second.public.values(), first.proof)


def test_a_pool_whose_worker_died_fails_that_batch_and_proves_the_next(key: tuple[ProvingKey, Path]) -> None:
    pk, path = key

    async def use(pool: ProverPool) -> ProvenBatch:
        await pool.start()
        for child in psutil.Process().children(recursive=True):
            if "spawn_main" in " ".join(child.cmdline()):  # the pool's workers, not the test's nodes
                child.kill()  # as an out-of-memory kill would
        with pytest.raises(BrokenProcessPool):
            await pool.prove(FIRST, CAPACITY)
        return await pool.prove(FIRST, CAPACITY)

    check(pk, FIRST, with_pool(path, CAPACITY, use))


def test_a_missing_key_fails_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "keys" / "batch-8.zkey"
    with pytest.raises(FileNotFoundError) as raised:
        with_pool(missing, CAPACITY, lambda pool: pool.start())
    assert str(missing) in str(raised.value)


def test_a_corrupt_key_fails_at_start(tmp_path: Path) -> None:
    corrupt = tmp_path / "batch-8.zkey"
    corrupt.write_bytes(b"not a proving key at all")
    with pytest.raises(FormatError, match="not a zkey file") as raised:
        with_pool(corrupt, CAPACITY, lambda pool: pool.start())
    assert str(corrupt) in str(raised.value)


def test_a_key_for_another_capacity_fails_at_the_first_batch(key: tuple[ProvingKey, Path]) -> None:
    _, path = key

    async def use(pool: ProverPool) -> ProvenBatch:
        return await pool.prove(Batch(901, 0, 0, (LeafPreimage(902, 0, 0, 1),)), 16)

    with pytest.raises(ProverError, match="wires"):
        with_pool(path, 16, use)


def test_a_key_for_another_capacity_fails_at_start(key: tuple[ProvingKey, Path]) -> None:
    _, path = key
    with pytest.raises(Exception, match=r"capacity|wires|circuit"):
        with_pool(path, 16, lambda pool: pool.start())


def test_a_capacity_without_a_key_is_refused_with_the_ones_it_has(key: tuple[ProvingKey, Path]) -> None:
    _, path = key

    async def use(pool: ProverPool) -> ProvenBatch:
        return await pool.prove(FIRST, 64)

    with pytest.raises(ProverPoolError, match=r"no proving key for capacity 64 \(this pool has 8\)"):
        with_pool(path, CAPACITY, use)
