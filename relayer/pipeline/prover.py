"""The prover pool: batch proofs in a separate process, never on the daemon's event loop.

The worker process builds the batch circuit once per capacity, reads the proving key once, then for
each batch computes the witness and proves it. It is started with "spawn" (forking a process that
runs threads is unsafe), and one worker uses every core through numba's threads.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
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


class ProverPoolError(RuntimeError):
    """The proving key does not fit the batch circuit."""


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


def _warm(key_path: Path, capacity: int) -> None:
    if key_path not in _keys:
        _keys[key_path] = zkey.read(key_path)
    key, r1cs = _keys[key_path], BatchCircuit(capacity).r1cs
    if (key.n_vars, len(key.vk.ic) - 1) != (r1cs.n_wires, r1cs.n_public):
        raise ProverPoolError(
            f"{key_path} is not a key of the batch circuit of capacity {capacity}: it has {key.n_vars} wires "
            f"and {len(key.vk.ic) - 1} public inputs, the circuit {r1cs.n_wires} and {r1cs.n_public}"
        )


def _exit_with(parent: int) -> None:
    """In the worker: exit when the daemon that started it is gone (even after a SIGKILL, which
    leaves no chance to shut the pool down)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


class ProverPool:
    """Proves batches of one capacity with one proving key, in `workers` processes."""

    def __init__(self, key_path: Path, capacity: int, *, workers: int = 1) -> None:
        self.key_path = key_path
        self.capacity = capacity
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with,
            initargs=(os.getpid(),),
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
