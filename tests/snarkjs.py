"""Test helpers that drive the real snarkjs (the reference our Groth16 formats and verifier are checked
against): run its command line, hold a real small trusted-setup ceremony, prove and verify with it.

Not a test module. Measured on the 2-core development machine (shared with other jobs): `ceremony`
takes about 4.5 s for small_circuit (4 constraints, power 4) and about 320 s at power 13 for
BatchCircuit(8) (7,441 constraints): 217 s in `powersoftau prepare phase2`, 57 s in `groth16 setup`,
25 s in the phase-1 beacon, 15 s in the phase-1 contribution, 3 s each for the phase-2 steps.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bridge_contracts import toolchain
from proofs.field import R
from proofs.formats import r1cs as r1cs_file
from proofs.r1cs import R1CS, Builder

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class SnarkjsFailed(RuntimeError):
    """A snarkjs command exited with an error."""


def run(*args: str | Path, cwd: Path | str | None = None, timeout: float = 600) -> str:
    """snarkjs's standard output (colours stripped) for the command line `args`; raises SnarkjsFailed
    with its output when it fails, whether by its exit status or by an error it logs."""
    command = [toolchain.node(), str(toolchain.snarkjs()), *map(str, args)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    stdout, stderr = _ANSI.sub("", done.stdout), _ANSI.sub("", done.stderr)
    # Some commands report an error ("[ERROR] snarkJS: ...") and still exit with 0.
    if done.returncode != 0 or "[ERROR]" in stdout or "[ERROR]" in stderr:
        raise SnarkjsFailed(
            f"snarkjs {' '.join(map(str, args))} failed (exit status {done.returncode}):\n{stdout}\n{stderr}"
        )
    return stdout


def ceremony(r1cs_path: Path, workdir: Path, power: int) -> Path:
    """A real (small) Groth16 ceremony for the circuit in `r1cs_path`, as the snarkjs README runs one:
    phase 1 (powers of tau: new, one contribution, a beacon, prepare phase 2) and phase 2 (setup, one
    contribution, a beacon). Contributions use fixed entropy, so the key is NOT secure: tests only.
    Returns the final .zkey, in `workdir`. `power` must be at least log2 of the circuit's domain size."""
    workdir.mkdir(parents=True, exist_ok=True)
    beacon = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
    steps: list[tuple[str, ...]] = [
        ("powersoftau", "new", "bn128", str(power), "pot_0.ptau"),
        ("powersoftau", "contribute", "pot_0.ptau", "pot_1.ptau", "--name=first", "-e=xrelay test entropy 1"),
        ("powersoftau", "beacon", "pot_1.ptau", "pot_2.ptau", beacon, "10", "-n=beacon"),
        ("powersoftau", "prepare", "phase2", "pot_2.ptau", "pot_final.ptau"),
        ("groth16", "setup", str(r1cs_path.resolve()), "pot_final.ptau", "circuit_0.zkey"),
        (
            "zkey",
            "contribute",
            "circuit_0.zkey",
            "circuit_1.zkey",
            "--name=second",
            "-e=xrelay test entropy 2",
        ),
        ("zkey", "beacon", "circuit_1.zkey", "circuit_final.zkey", beacon, "10", "-n=phase 2 beacon"),
    ]
    for step in steps:
        run(*step, cwd=workdir)
    return workdir / "circuit_final.zkey"


def export_verification_key(zkey: Path, out: Path) -> dict[str, Any]:
    """`snarkjs zkey export verificationkey`: the key's JSON, also left in `out`."""
    run("zkey", "export", "verificationkey", zkey, out)
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def prove(zkey: Path, wtns: Path, proof: Path, public: Path) -> tuple[dict[str, Any], list[str]]:
    """`snarkjs groth16 prove`: (proof JSON, public signals JSON), also left in `proof` and `public`."""
    run("groth16", "prove", zkey, wtns, proof, public)
    return json.loads(proof.read_text()), json.loads(public.read_text())


def verify(vk: Path, public: Path, proof: Path) -> bool:
    """`snarkjs groth16 verify`: whether snarkjs accepts the proof (it prints OK! or fails)."""
    try:
        out = run("groth16", "verify", vk, public, proof)
    except SnarkjsFailed:
        return False
    return "OK!" in out


# --- the small circuit the Groth16 format and verifier tests share -----------------------------------


@cache
def small_circuit() -> R1CS:
    """Three public inputs x, y, z and two private a, c: t = a·c, u = t·(a + 3), u + x = 2y + 5, t·c = z.
    Four constraints with constants and coefficients other than 1 on both sides; domain size 8."""
    b = Builder("small")
    x, y, z = b.public("x"), b.public("y"), b.public("z")
    a, c = b.private("a"), b.private("c")
    t = b.mul(a, c)
    u = b.mul(t, a + 3)
    b.enforce(u + x, 1, y * 2 + 5)
    b.enforce(t, c * 7 - 1, z)
    return b.build()


def small_witness(a: int, c: int, y: int = 1000) -> list[int]:
    """A witness of small_circuit for private values a, c (the public values follow from them)."""
    t = a * c
    u = t * (a + 3)
    return small_circuit().witness(
        {"x": (2 * y + 5 - u) % R, "y": y, "z": t * (7 * c - 1) % R, "a": a, "c": c}
    )


_ceremonies: dict[str, Path] = {}


def small_ceremony(factory: pytest.TempPathFactory) -> Path:
    """The final .zkey of a real ceremony for small_circuit (power 4), held once per test session."""
    if "small" not in _ceremonies:
        workdir = factory.mktemp("small_ceremony")
        r1cs_file.write(small_circuit(), workdir / "small.r1cs")
        _ceremonies["small"] = ceremony(workdir / "small.r1cs", workdir, 4)
    return _ceremonies["small"]
