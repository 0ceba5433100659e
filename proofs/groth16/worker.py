"""A prover in its own process, so that seconds of proving never block the daemon's event loop.

    with ProverWorker({"batch-64": Path("batch-64.zkey")}) as worker:
        worker.load()                                     # read the keys now: a bad key fails here
        proof = worker.submit("batch-64", witness).result()
        proof = await worker.prove("batch-64", witness)   # from asyncio

The worker process reads each .zkey once and keeps it; its numba kernels use every core (numba's
threads). It is started with "spawn": forking a process that runs threads (asyncio, numba) is unsafe.
An error in the worker (a bad key, a bad witness) comes back as the same exception from `result()`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType

from proofs.formats import zkey
from proofs.groth16.keys import ProvingKey
from proofs.groth16.proof import Proof
from proofs.groth16.prover import prove

_paths: dict[str, Path] = {}
_keys: dict[str, ProvingKey] = {}


def _init(paths: Mapping[str, Path]) -> None:
    _paths.update(paths)


def _key(name: str) -> ProvingKey:
    if name not in _keys:
        if name not in _paths:
            raise KeyError(f"no proving key named {name!r} (known: {', '.join(sorted(_paths)) or 'none'})")
        _keys[name] = zkey.read(_paths[name])
    return _keys[name]


def _load_all() -> dict[str, int]:
    return {name: _key(name).n_vars for name in _paths}


def _prove(name: str, witness: Sequence[int]) -> Proof:
    return prove(_key(name), witness)


class ProverWorker:
    """One worker process holding the proving keys named in `keys` (name → .zkey path)."""

    def __init__(self, keys: Mapping[str, Path | str]) -> None:
        paths = {name: Path(path) for name, path in keys.items()}
        self._executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(paths,),
        )

    def load(self) -> dict[str, int]:
        """Read every key in the worker now (the number of wires of each); raises what reading raised."""
        return self._executor.submit(_load_all).result()

    def submit(self, key: str, witness: Sequence[int]) -> Future[Proof]:
        return self._executor.submit(_prove, key, list(witness))

    async def prove(self, key: str, witness: Sequence[int]) -> Proof:
        return await asyncio.wrap_future(self.submit(key, witness))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProverWorker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
