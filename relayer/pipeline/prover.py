"""The prover pool: batch proofs in worker processes (`proofs.groth16.worker`), never on the daemon's
event loop.

Each worker process builds the batch circuit once per capacity and reads the proving key once, then
for each batch computes the witness and proves it; one worker uses every core through numba's threads.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from proofs.circuits.batch import Batch, BatchCircuit, PublicInputs
from proofs.groth16.proof import Proof
from proofs.groth16.prover import prove
from proofs.groth16.worker import ProverWorker, proving_key

log = logging.getLogger(__name__)


class ProverPoolError(RuntimeError):
    """The proving key does not fit the batch circuit."""


@dataclass(frozen=True)
class ProvenBatch:
    public: PublicInputs
    proof: Proof
    seconds: float  # witness and proof, in the worker


def _prove_batch(key: str, capacity: int, batch: Batch) -> ProvenBatch:
    started = time.perf_counter()
    circuit = BatchCircuit(capacity)
    public = circuit.public_inputs(batch)
    proof = prove(proving_key(key), circuit.witness(batch, public))
    return ProvenBatch(public, proof, time.perf_counter() - started)


def _check_key(key: str, key_path: Path, capacity: int) -> None:
    pk, r1cs = proving_key(key), BatchCircuit(capacity).r1cs
    if (pk.n_vars, len(pk.vk.ic) - 1) != (r1cs.n_wires, r1cs.n_public):
        raise ProverPoolError(
            f"{key_path} is not a key of the batch circuit of capacity {capacity}: it has {pk.n_vars} wires "
            f"and {len(pk.vk.ic) - 1} public inputs, the circuit {r1cs.n_wires} and {r1cs.n_public}"
        )


class ProverPool:
    """Proves batches of one capacity with one proving key, in `workers` processes."""

    def __init__(self, key_path: Path, capacity: int, *, workers: int = 1) -> None:
        self.key_path = key_path
        self.capacity = capacity
        self.workers = workers
        self._key = f"batch-{capacity}"
        self._worker = ProverWorker({self._key: key_path}, workers=workers)

    async def start(self) -> None:
        """Read the key and build the circuit now, so a bad key fails at start, not at the first batch."""
        await self._worker.run(_check_key, self._key, self.key_path, self.capacity)

    async def prove(self, batch: Batch) -> ProvenBatch:
        """The batch's proof. A worker that died (killed, out of memory) fails this batch, and the
        pool is started anew so the next try has live workers."""
        try:
            return await self._worker.run(_prove_batch, self._key, self.capacity, batch)
        except BrokenProcessPool:
            log.error("a prover process died; starting the prover pool anew")
            self._worker.close(wait=False)
            self._worker = ProverWorker({self._key: self.key_path}, workers=self.workers)
            raise

    def close(self) -> None:
        self._worker.close(wait=False)
