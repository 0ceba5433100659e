"""The Groth16 prover beside snarkjs: `groth16 prove` on the same .zkey and .wtns, in the same run.

For the batch circuit at capacities 16 and 64 and synthetic circuits of 2^16 and 2^18 constraints:
our prove time and snarkjs's (each a fresh process proving from the files, timed around the proof, and
whole-process wall time), their ratio, and the peak memory of each process. Then G1 MSM throughput at
2^16 and 2^20 points, off-chain verification time (py_ecc) and on-chain verification gas.

The keys come from the development setup (proofs.groth16.setup), written as .zkey files; both provers
read the same files, ours as `python -m proofs.groth16 prove`, and every proof is checked by our verifier.
The ratio is our process's wall time over snarkjs's: both start, read the files, prove and write.

    python -m benchmarks.prover [--out FILE] [--size NAME ...] [--keep DIR]
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import arguments, local_chain, report
from bridge_contracts import toolchain
from bridge_contracts.verifier_gen import calldata, deploy_verifier
from proofs.bn254 import field
from proofs.bn254.msm import batch_mul_g1, msm_g1
from proofs.circuits.batch import Batch, BatchCircuit, build_r1cs
from proofs.field import R
from proofs.formats import snarkjs_json, wtns, zkey
from proofs.groth16 import setup as groth16_setup
from proofs.groth16.verifier import verify
from proofs.message import LeafPreimage
from proofs.r1cs.builder import R1CS, Builder

SEED = b"xrelay benchmark"
ASSET = 0xA55E7 << 200


def synthetic(n_constraints: int) -> tuple[R1CS, list[int]]:
    """A chain y ← y² + x of `n_constraints` multiplications with one public input: full-size witness
    values, the worst case for the MSMs (a real circuit has many 0/1 wires)."""
    b = Builder("synthetic")
    x = b.public("x")
    y = x
    for _ in range(n_constraints):
        y = b.mul(y, y) + x
    r1cs = b.build()
    return r1cs, r1cs.witness({"x": 7})


def batch(capacity: int) -> tuple[R1CS, list[int]]:
    circuit = BatchCircuit(capacity)
    messages = tuple(LeafPreimage(902 + i % 2, ASSET, 10**18 + i, i) for i in range(capacity))
    return circuit.r1cs, circuit.witness(Batch(901, 0, 0, messages))


CIRCUITS: dict[str, Callable[[], tuple[R1CS, list[int]]]] = {
    "batch-16": lambda: batch(16),
    "batch-64": lambda: batch(64),
    # the largest counts whose domain (constraints + public inputs + 1, rounded up) is 2^16 and 2^18
    "synthetic-2^16": lambda: synthetic(2**16 - 2),
    "synthetic-2^18": lambda: synthetic(2**18 - 2),
}


def _peak_rss(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for a process; (peak resident memory of it and its children in bytes, wall seconds)."""
    start = time.perf_counter()
    peak = 0
    parent = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.02)
    return peak, time.perf_counter() - start


def _run(cmd: list[str]) -> tuple[str, int, float]:
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak, wall = _peak_rss(process)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {err.decode()[-2000:]}")
    return out.decode(), peak, wall


def measure(name: str, work: Path, step: Callable[[str], None]) -> dict[str, Any]:
    step(f"{name}: circuit and witness")
    r1cs, witness = CIRCUITS[name]()
    step(f"{name}: development setup")
    start = time.perf_counter()
    pk = groth16_setup.setup(r1cs, seed=SEED, development=True)
    setup_seconds = time.perf_counter() - start
    key_path, witness_path = work / f"{name}.zkey", work / f"{name}.wtns"
    zkey.write(pk, key_path)
    wtns.write(witness, witness_path)
    public = witness[1 : r1cs.n_public + 1]
    n_constraints, n_wires = r1cs.n_constraints, r1cs.n_wires
    del r1cs, witness
    build_r1cs.cache_clear()

    step(f"{name}: our prover")
    ours_proof = work / f"{name}.ours.json"
    ours_public = work / f"{name}.ours.public.json"
    inputs = (str(key_path), str(witness_path))
    out, ours_peak, ours_wall = _run(
        [
            sys.executable,
            "-m",
            "proofs.groth16",
            "prove",
            "--timings",
            *inputs,
            str(ours_proof),
            str(ours_public),
        ]
    )
    ours = json.loads(out.strip().splitlines()[-1])
    step(f"{name}: snarkjs groth16 prove")
    theirs_proof, theirs_public = work / f"{name}.snarkjs.json", work / f"{name}.public.json"
    snarkjs = [toolchain.node(), str(toolchain.snarkjs())]
    _, theirs_peak, theirs_wall = _run(
        [*snarkjs, "groth16", "prove", *inputs, str(theirs_proof), str(theirs_public)]
    )
    step(f"{name}: verify both proofs")
    for path in (ours_proof, theirs_proof):
        proof = snarkjs_json.proof_from_json(json.loads(path.read_text()), str(path))
        if not verify(pk.vk, public, proof):
            raise RuntimeError(f"{name}: the proof in {path} does not verify")
    return {
        "constraints": n_constraints,
        "wires": n_wires,
        "domain_size": pk.domain_size,
        "setup_seconds": round(setup_seconds, 2),
        "ours_prove_seconds": round(ours["prove_seconds"], 3),
        "ours_read_seconds": round(ours["read_seconds"], 3),
        "ours_process_seconds": round(ours_wall, 3),
        "ours_peak_mib": round(ours_peak / 2**20),
        "snarkjs_process_seconds": round(theirs_wall, 3),
        "snarkjs_peak_mib": round(theirs_peak / 2**20),
        "ratio": round(ours_wall / theirs_wall, 3),
    }


def msm_throughput(log_n: int) -> dict[str, float]:
    rng = random.Random(log_n)
    n = 1 << log_n
    points = batch_mul_g1((1, 2), field.limbs([rng.randrange(1, R) for _ in range(n)]))
    scalars = field.limbs([rng.randrange(R) for _ in range(n)])
    msm_g1(points[:16], scalars[:16])  # compiled or loaded from the cache, outside the timing
    best = min(_timed(lambda: msm_g1(points, scalars)) for _ in range(2))
    cores = os.cpu_count() or 1
    return {
        "points": n,
        "seconds": round(best, 3),
        "points_per_second": round(n / best),
        "points_per_second_per_core": round(n / best / cores),
        "cores": cores,
    }


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def verification(work: Path) -> dict[str, Any]:
    """Off-chain verification time and on-chain gas for the batch-64 key and one of its proofs."""
    pk = zkey.read(work / "batch-64.zkey")
    proof = snarkjs_json.proof_from_json(json.loads((work / "batch-64.ours.json").read_text()), "proof")
    public = snarkjs_json.public_from_json(json.loads((work / "batch-64.public.json").read_text()), "public")
    seconds = min(_timed(lambda: verify(pk.vk, public, proof)) for _ in range(3))
    with local_chain(31337) as chain:
        verifier = deploy_verifier(chain, pk.vk)
        gas = verifier.functions.verifyProof(*calldata(proof, public)).estimate_gas()
    return {
        "public_inputs": len(public),
        "py_ecc_seconds": round(seconds, 3),
        "solidity_transaction_gas": gas,
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'circuit':<16}{'constraints':>12}{'setup s':>9}{'ours s':>9}{'(prove)':>9}"
        f"{'snarkjs s':>11}{'ratio':>7}{'ours MiB':>10}{'snarkjs MiB':>13}"
    ]
    for name, row in results["provers"].items():
        lines.append(
            f"{name:<16}{row['constraints']:>12,}{row['setup_seconds']:>9.2f}{row['ours_process_seconds']:>9.2f}"
            f"{row['ours_prove_seconds']:>9.2f}{row['snarkjs_process_seconds']:>11.2f}{row['ratio']:>7.2f}"
            f"{row['ours_peak_mib']:>10,}{row['snarkjs_peak_mib']:>13,}"
        )
    for key, row in results["msm_g1"].items():
        lines.append(
            f"G1 MSM {key}: {row['seconds']:.2f} s, {row['points_per_second']:,} points/s "
            f"({row['points_per_second_per_core']:,} per core, {row['cores']} cores)"
        )
    if "verify" in results:
        v = results["verify"]
        lines.append(
            f"verify ({v['public_inputs']} public inputs): py_ecc {v['py_ecc_seconds']:.2f} s, "
            f"Solidity: a verifyProof transaction estimates {v['solidity_transaction_gas']:,} gas (intrinsic "
            "21,000 and calldata included; `make bench` has the execution gas per input count)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("prover", __doc__ or "")
    parser.add_argument("--size", action="append", choices=list(CIRCUITS), help="circuits (default: all)")
    parser.add_argument("--keep", type=Path, help="keep the keys, witnesses and proofs in this directory")
    args = parser.parse_args(argv)
    sizes = args.size or list(CIRCUITS)
    results: dict[str, Any] = {"provers": {}, "msm_g1": {}}
    with (
        tempfile.TemporaryDirectory() as scratch,
        Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        ) as progress,
    ):
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        task = progress.add_task("starting", total=len(sizes) * 5 + 2 + ("batch-64" in sizes))

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        for name in sizes:
            results["provers"][name] = measure(name, work, step)
        for log_n in (16, 20):
            step(f"G1 MSM at 2^{log_n} points")
            results["msm_g1"][f"2^{log_n}"] = msm_throughput(log_n)
        if "batch-64" in sizes:
            step("verification: py_ecc and Solidity")
            results["verify"] = verification(work)
    report(table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
