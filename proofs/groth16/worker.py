"""Provers in processes of their own, so that seconds of proving never block the daemon's event loop.

    with ProverWorker({"batch-64": Path("batch-64.zkey")}) as worker:
        worker.load()                                     # read the keys now: a bad key fails here
        proof = worker.submit("batch-64", witness).result()
        proof = await worker.prove("batch-64", witness)   # from asyncio
        result = await worker.run(job, *args)             # any module-level function, in a worker

A job of its own (the relayer's batch proofs compute the witness in the worker too) gets the keys
with `proving_key(name)`. Each process reads a .zkey the first time it needs it and keeps it; its
numba kernels use every core (numba's threads). Processes are started with "spawn": forking a
process that runs threads (asyncio, numba) is unsafe. Each exits by itself once the process that
started it is gone, even after a SIGKILL that left no chance to shut it down. An error in a worker
(a bad key, a bad witness) comes back as the same exception from `result()` or the await.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, TypeVar

from proofs.groth16.keys import ProvingKey, read_proving_key
from proofs.groth16.proof import Proof
from proofs.groth16.prover import prove

P = ParamSpec("P")
T = TypeVar("T")

# In a worker process: the keys it may read, by name, and those it has read.
_paths: dict[str, Path] = {}
_keys: dict[str, ProvingKey] = {}


def _init(paths: Mapping[str, Path], parent: int) -> None:
    _paths.update(paths)
    _exit_with(parent)


def _exit_with(parent: int) -> None:
    """Exit this worker once `parent` is gone: a killed parent never shuts its pool down, and an
    orphaned worker would wait for work forever, holding its keys in memory."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def proving_key(name: str) -> ProvingKey:
    """In a worker process: the proving key named `name`, read the first time and kept."""
    if name not in _keys:
        if name not in _paths:
            raise KeyError(f"no proving key named {name!r} (known: {', '.join(sorted(_paths)) or 'none'})")
        _keys[name] = read_proving_key(_paths[name])
    return _keys[name]


def _load_all() -> dict[str, int]:
    return {name: proving_key(name).n_vars for name in _paths}


def _prove(name: str, witness: Sequence[int]) -> Proof:
    return prove(proving_key(name), witness)


class ProverWorker:
    """`workers` processes (one by default) holding the proving keys named in `keys` (name → .zkey path)."""

    def __init__(self, keys: Mapping[str, Path | str], *, workers: int = 1) -> None:
        paths = {name: Path(path) for name, path in keys.items()}
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(paths, os.getpid()),
        )

    def submit_call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run `fn` (a module-level function: it is pickled by name) in a worker process."""
        return self._executor.submit(fn, *args, **kwargs)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`submit_call`, awaited."""
        return await asyncio.wrap_future(self.submit_call(fn, *args, **kwargs))

    def load(self) -> dict[str, int]:
        """Read every key in a worker now (the number of wires of each); raises what reading raised."""
        return self.submit_call(_load_all).result()

    def submit(self, key: str, witness: Sequence[int]) -> Future[Proof]:
        return self.submit_call(_prove, key, list(witness))

    async def prove(self, key: str, witness: Sequence[int]) -> Proof:
        return await asyncio.wrap_future(self.submit(key, witness))

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers; proofs not started are cancelled. With `wait=False` it returns at once
        and a proof under way ends in the background."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> ProverWorker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
