"""The prover pool: batch proofs in worker processes (`proofs.groth16.worker`), never on the daemon's
event loop.

Each worker process builds the batch circuit once per capacity and reads the proving key once, then
for each batch computes the witness and proves it; one worker uses every core through numba's threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from proofs.circuits.batch import Batch, BatchCircuit, PublicInputs
from proofs.groth16.proof import Proof
from proofs.groth16.prover import prove
from proofs.groth16.worker import ProverWorker, proving_key
from proofs.message import LeafPreimage

log = logging.getLogger(__name__)


class ProverPoolError(RuntimeError):
    """A proving key does not fit the batch circuit, or the pool has none for a capacity."""


@dataclass(frozen=True)
class ProvenBatch:
    public: PublicInputs
    proof: Proof
    seconds: float  # witness and proof, in the worker


def _prove_batch(key: str, capacity: int, batch: Batch) -> ProvenBatch:
    started = time.perf_counter()
    circuit = BatchCircuit(capacity)
    public, witness = circuit.public_and_witness(batch)  # compiled; the hashes from the circuit itself
    proof = prove(proving_key(key), witness)
    return ProvenBatch(public, proof, time.perf_counter() - started)


def _check_key(key: str, key_path: Path, capacity: int) -> None:
    """Read the key and check it fits the circuit; then compute one witness, so that the circuit's
    compiled witness program is built (and its kernels loaded) before the first batch needs it."""
    circuit = BatchCircuit(capacity)
    pk, r1cs = proving_key(key), circuit.r1cs
    if (pk.n_vars, len(pk.vk.ic) - 1) != (r1cs.n_wires, r1cs.n_public):
        raise ProverPoolError(
            f"{key_path} is not a key of the batch circuit of capacity {capacity}: it has {pk.n_vars} wires "
            f"and {len(pk.vk.ic) - 1} public inputs, the circuit {r1cs.n_wires} and {r1cs.n_public}"
        )
    circuit.public_and_witness(Batch(1, 0, 0, (LeafPreimage(2, 0, 0, 0),)))


class ProverPool:
    """Proves batches with one proving key per capacity (`keys`: capacity → .zkey path), in `workers`
    processes, each holding every key."""

    def __init__(self, keys: Mapping[int, Path], *, workers: int = 1) -> None:
        if not keys:
            raise ProverPoolError("a prover pool needs at least one proving key")
        self.keys = dict(sorted(keys.items()))
        self.workers = workers
        self._worker = self._new_worker()

    @property
    def capacities(self) -> tuple[int, ...]:
        return tuple(self.keys)

    def _new_worker(self) -> ProverWorker:
        return ProverWorker({_name(c): path for c, path in self.keys.items()}, workers=self.workers)

    async def start(self) -> None:
        """Read the keys and build the circuits now, so a bad key fails at start, not at the first batch
        (and the first batch of the largest capacity does not wait for its circuit)."""
        for capacity, path in self.keys.items():
            await self._worker.run(_check_key, _name(capacity), path, capacity)

    async def prove(self, batch: Batch, capacity: int) -> ProvenBatch:
        """The batch's proof with the circuit of `capacity`. A worker that died (killed, out of memory)
        fails this batch, and the pool is started anew so the next try has live workers."""
        if capacity not in self.keys:
            raise ProverPoolError(
                f"no proving key for capacity {capacity} (this pool has {', '.join(map(str, self.keys))})"
            )
        try:
            return await self._worker.run(_prove_batch, _name(capacity), capacity, batch)
        except BrokenProcessPool:
            log.error("a prover process died; starting the prover pool anew")
            self._worker.close(wait=False)
            self._worker = self._new_worker()
            raise

    def close(self) -> None:
        self._worker.close(wait=False)


def _name(capacity: int) -> str:
    return f"batch-{capacity}"
