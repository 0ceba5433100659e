"""The prover pool: batch proofs in a separate process, never on the daemon's event loop.

The worker process builds the batch circuit once per capacity, reads the proving key once, then for
each batch computes the witness and proves it. It is started with "spawn" (forking a process that
runs threads is unsafe), and one worker uses every core through numba's threads.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from proofs.circuits.batch import Batch, BatchCircuit, PublicInputs
from proofs.formats import zkey
from proofs.groth16.keys import ProvingKey
from proofs.groth16.proof import Proof
from proofs.groth16.prover import prove

_keys: dict[Path, ProvingKey] = {}


@dataclass(frozen=True)
class ProvenBatch:
    public: PublicInputs
    proof: Proof
    seconds: float  # witness and proof, in the worker


def _prove_batch(key_path: Path, capacity: int, batch: Batch) -> ProvenBatch:
    started = time.perf_counter()
    if key_path not in _keys:
        _keys[key_path] = zkey.read(key_path)
    circuit = BatchCircuit(capacity)
    public = circuit.public_inputs(batch)
    witness = circuit.witness(batch, public)
    proof = prove(_keys[key_path], witness)
    return ProvenBatch(public, proof, time.perf_counter() - started)


def _warm(key_path: Path, capacity: int) -> int:
    if key_path not in _keys:
        _keys[key_path] = zkey.read(key_path)
    return BatchCircuit(capacity).r1cs.n_constraints


class ProverPool:
    """Proves batches of one capacity with one proving key, in `workers` processes."""

    def __init__(self, key_path: Path, capacity: int, *, workers: int = 1) -> None:
        self.key_path = key_path
        self.capacity = capacity
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )

    async def start(self) -> None:
        """Read the key and build the circuit now, so a bad key fails at start, not at the first batch."""
        await asyncio.wrap_future(self._executor.submit(_warm, self.key_path, self.capacity))

    async def prove(self, batch: Batch) -> ProvenBatch:
        return await asyncio.wrap_future(
            self._executor.submit(_prove_batch, self.key_path, self.capacity, batch)
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
