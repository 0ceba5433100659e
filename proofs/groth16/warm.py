"""Compile every kernel of the setup and the prover into numba's disk cache, with progress.

numba compiles a kernel for this machine's CPU the first time it runs and keeps it on disk (see
proofs/bn254/__init__.py for where): on a fresh machine the setup's and the prover's kernels take a
minute or two, which the first proof (a user's first `make demo`) would otherwise spend. `warm()` runs
the setup's and the prover's work on a circuit of a few constraints, step by step, and the batch
circuit's compiled witness (proofs/r1cs/compiled.py) on a batch of one message, so that every kernel is
compiled with the argument types the real work passes it, and shows which step and which function it
is at. With the cache filled it takes seconds: each kernel is only loaded. `make setup` runs it once
(`python -m proofs.groth16 warm`) and again when the kernels' sources change.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numba.core import event
from numba.core.config import CACHE_DIR
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from proofs.bn254 import field
from proofs.bn254.field import P
from proofs.bn254.msm import batch_mul_g1, batch_mul_g2, msm_g1, msm_g2
from proofs.circuits.batch import Batch, BatchCircuit
from proofs.field import R
from proofs.formats import zkey
from proofs.groth16 import qap, setup
from proofs.groth16.keys import read_proving_key
from proofs.groth16.prover import prove
from proofs.groth16.verifier import verify
from proofs.message import LeafPreimage
from proofs.r1cs.builder import Builder

Step = tuple[str, Callable[[], object]]


class WarmError(RuntimeError):
    """The warm-up's test proof did not verify: the kernels are broken on this machine."""


def steps(workdir: Path) -> list[Step]:
    """The warm-up, step by step: the kernels of one part each, then a whole development setup, its key
    file and a proof read from it (which catch any kernel the parts missed)."""
    builder = Builder("warm")
    x = builder.public("x")
    y = x
    for _ in range(5):
        y = builder.mul(y, y) + x
    r1cs = builder.build()
    witness = r1cs.witness({"x": 3})
    scalars = field.limbs([pow(7, k, R) for k in range(16)])
    n = qap.domain_size(r1cs)

    def h_values() -> object:
        montgomery = field.to_montgomery(field.limbs(witness), R)
        return qap.h_values(qap.coefficients(r1cs), montgomery, n)

    def development_setup() -> None:
        zkey.write(setup.setup(r1cs, seed=b"xrelay warm", development=True), workdir / "warm.zkey")

    def proof() -> None:
        pk = read_proving_key(workdir / "warm.zkey")
        if not verify(pk.vk, r1cs.public_values(witness), prove(pk, witness)):
            raise WarmError("the warm-up's proof does not verify: the kernels are broken on this machine")

    def batch_witness() -> None:
        BatchCircuit(8).public_and_witness(Batch(1, 0, 0, (LeafPreimage(2, 0, 0, 0),)))

    return [
        ("Montgomery form", lambda: field.from_montgomery(field.to_montgomery(scalars, P), R)),
        ("fixed-base products in G1", lambda: batch_mul_g1(setup.G1_GENERATOR, scalars)),
        ("fixed-base products in G2", lambda: batch_mul_g2(setup.G2_GENERATOR, scalars)),
        ("QAP polynomials at tau", lambda: qap.evaluate_at(r1cs, 11)),
        ("H points' scalars", lambda: qap.h_lagrange(11, n)),
        ("MSM in G1", lambda: msm_g1(batch_mul_g1(setup.G1_GENERATOR, scalars), scalars)),
        ("MSM in G2", lambda: msm_g2(batch_mul_g2(setup.G2_GENERATOR, scalars), scalars)),
        ("H values (NTTs)", h_values),
        ("a development setup", development_setup),
        ("a proof from the key file", proof),
        ("the batch circuit's compiled witness", batch_witness),
    ]


class _Compiling(event.Listener):  # type: ignore[misc]
    """Records the functions numba compiles (it says nothing on a cache hit)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_start(self, ev: Any) -> None:
        function = ev.data["dispatcher"].py_func
        self.names.append(f"{function.__module__.rsplit('.', 1)[-1]}.{function.__name__}")

    def on_end(self, ev: Any) -> None:
        pass


def _watched(step: Callable[[], object], show: Callable[[], None]) -> None:
    """Run `step` while a thread refreshes the display: numba holds the interpreter for long stretches
    while it compiles, and this shows the function it is at between them."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.25):
            show()

    watcher = threading.Thread(target=watch, daemon=True, name="warm-progress")
    watcher.start()
    try:
        step()
    finally:
        done.set()
        watcher.join()


def warm(console: Console | None = None) -> int:
    """Compile (or load) every kernel, showing progress on `console` (stderr by default): a bar over the
    steps and the function being compiled on a terminal, a line per step otherwise. Returns how many
    functions numba compiled (0 when the cache held them all)."""
    console = console or Console(stderr=True)
    compiling = _Compiling()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, event.install_listener("numba:compile", compiling):
        todo = steps(Path(scratch))
        if console.is_terminal:
            columns = (
                TextColumn("kernels: {task.description:<26}"),
                BarColumn(bar_width=24),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[compiling]}"),
            )
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("", total=len(todo), compiling="")

                def show() -> None:
                    latest = compiling.names[-1] if compiling.names else ""
                    progress.update(task, compiling=f"compiling {latest}" if latest else "")

                for description, step in todo:
                    progress.update(task, description=description)
                    _watched(step, show)
                    progress.advance(task)
                progress.update(task, description="ready", compiling="")
        else:  # a log: one plain line per step
            for number, (description, step) in enumerate(todo, 1):
                began, before = time.perf_counter(), len(compiling.names)
                step()
                seconds, count = time.perf_counter() - began, len(compiling.names) - before
                print(
                    f"kernels {number}/{len(todo)}: {description}: {seconds:.1f} s, "
                    f"{count} functions compiled",
                    file=console.file,
                    flush=True,
                )
    total = time.perf_counter() - start
    print(
        f"kernels ready in {total:.1f} s: {len(compiling.names)} functions compiled, the rest loaded from "
        f"numba's cache ({CACHE_DIR})",
        file=console.file,
        flush=True,
    )
    return len(compiling.names)
