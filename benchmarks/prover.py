"""The Groth16 prover beside snarkjs (and, with --rapidsnark, beside iden3's native prover): `groth16
prove` on the same .zkey and .wtns, in the same run.

For the batch circuit at capacities 16 and 64 and synthetic circuits of 2^16 and 2^18 constraints, each
prover runs as a fresh process that reads the files, proves and writes the proof (ours as `python -m
proofs.groth16 prove`), `--repeat` times, the provers taking turns; every proof is checked by our
verifier. Per prover and circuit (medians over the repeats):

- process seconds: the whole process's wall time (start, read, prove, write), and its CPU seconds (user
  + system: on a busy machine the fairer figure, as wall time then depends on what else runs);
- peak memory, two ways: the whole process's peak resident set (the kernel's high-water mark of it,
  VmHWM, which only grows: read every 5 ms, it misses no short peak), and the increase of that peak
  over the same prover's "idle" peak, its peak proving a circuit of two constraints (the process, its
  runtime and, for ours, the numba kernels loaded: what any proof costs, whatever its size);
- ratios ours / theirs of time, CPU time, peak and peak increase.

Ours also reports its read and prove seconds measured inside the process and the seconds of each phase
of the proof (`prove --timings`). Then G1 MSM throughput at 2^16 and 2^20 points, off-chain verification
time (py_ecc) and on-chain verification gas.

The keys come from the development setup (proofs.groth16.setup), written as .zkey files. rapidsnark is a
benchmark-only comparison, never a dependency: build it from https://github.com/iden3/rapidsnark and pass
its `prover` binary.

    python -m benchmarks.prover [--out FILE] [--size NAME ...] [--keep DIR] [--repeat N]
                                [--rapidsnark PATH]
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from proofs.groth16.keys import ProvingKey
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
IDLE = "idle"
"""The circuit of each prover's idle figures: two constraints."""


@dataclass(frozen=True)
class Run:
    """One prover process: wall and CPU seconds, peak resident memory in bytes, its stdout."""

    wall: float
    cpu: float
    peak: int
    out: str


def _high_water(pid: int) -> int | None:
    """The peak resident memory of a running process in bytes (Linux's VmHWM), or None where there is no
    /proc (or the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def _run(cmd: list[str]) -> Run:
    """Run a prover to its end. Its peak memory is the kernel's high-water mark of its resident set,
    read every 5 ms while it runs (VmHWM only grows, so the last reading misses at most the last 5 ms);
    where there is no /proc, the largest resident set seen (psutil). Not ru_maxrss from wait4: Linux
    starts a child's maxrss at the size of the process that forked it, this benchmark's own."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=out, stderr=err)
        peak = 0
        watched = psutil.Process(process.pid)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            high = _high_water(process.pid)
            if high is None:
                with contextlib.suppress(psutil.Error):
                    high = watched.memory_info().rss
            peak = max(peak, high or 0)
            time.sleep(0.005)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} failed: {err.read().decode()[-2000:]}")
        return Run(wall, usage.ru_utime + usage.ru_stime, peak, out.read().decode())


def _provers(rapidsnark: Path | None) -> dict[str, Callable[[Path, Path, Path, Path], list[str]]]:
    """The command of each prover for (key, witness, proof out, public out)."""
    provers: dict[str, Callable[[Path, Path, Path, Path], list[str]]] = {
        "ours": lambda *files: [
            sys.executable,
            "-m",
            "proofs.groth16",
            "prove",
            "--timings",
            *map(str, files),
        ],
        "snarkjs": lambda *files: [
            toolchain.node(),
            str(toolchain.snarkjs()),
            "groth16",
            "prove",
            *map(str, files),
        ],
    }
    if rapidsnark is not None:
        provers["rapidsnark"] = lambda *files: [str(rapidsnark), *map(str, files)]
    return provers


def _mib(n: float) -> float:
    return round(n / 2**20, 1)


def _summary(runs: list[Run], idle: dict[str, Any] | None) -> dict[str, Any]:
    peak = statistics.median(r.peak for r in runs)
    row = {
        "process_seconds": round(statistics.median(r.wall for r in runs), 3),
        "process_seconds_all": [round(r.wall, 3) for r in runs],
        "cpu_seconds": round(statistics.median(r.cpu for r in runs), 3),
        "peak_mib": _mib(peak),
    }
    if idle is not None:
        row["peak_increase_mib"] = round(row["peak_mib"] - idle["peak_mib"], 1)
    return row


def _ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    ratios = {
        "time": ours["process_seconds"] / theirs["process_seconds"],
        "cpu": ours["cpu_seconds"] / theirs["cpu_seconds"],
        "peak": ours["peak_mib"] / theirs["peak_mib"],
    }
    if "peak_increase_mib" in ours and theirs.get("peak_increase_mib", 0) > 0:
        ratios["peak_increase"] = ours["peak_increase_mib"] / theirs["peak_increase_mib"]
    return {k: round(v, 3) for k, v in ratios.items()}


def _prove_all(
    name: str, work: Path, provers: dict[str, Callable[[Path, Path, Path, Path], list[str]]], repeat: int
) -> dict[str, list[Run]]:
    """Each prover `repeat` times on the files of `name`, taking turns."""
    runs: dict[str, list[Run]] = {prover: [] for prover in provers}
    inputs = (work / f"{name}.zkey", work / f"{name}.wtns")
    for _ in range(repeat):
        for prover, command in provers.items():
            outputs = (work / f"{name}.{prover}.proof.json", work / f"{name}.{prover}.public.json")
            runs[prover].append(_run(command(*inputs, *outputs)))
    return runs


@dataclass(frozen=True)
class Circuit:
    pk: ProvingKey
    public: list[int]
    constraints: int
    setup_seconds: float


def _write_circuit(name: str, work: Path) -> Circuit:
    """The key and witness files of circuit `name` in `work`."""
    r1cs, witness = (CIRCUITS | {IDLE: lambda: synthetic(2)})[name]()
    start = time.perf_counter()
    pk = groth16_setup.setup(r1cs, seed=SEED, development=True)
    setup_seconds = time.perf_counter() - start
    zkey.write(pk, work / f"{name}.zkey")
    wtns.write(witness, work / f"{name}.wtns")
    return Circuit(pk, witness[1 : r1cs.n_public + 1], r1cs.n_constraints, setup_seconds)


def idle(work: Path, provers: dict[str, Callable[[Path, Path, Path, Path], list[str]]]) -> dict[str, Any]:
    """Each prover's peak memory and process time on a circuit of two constraints: what any proof
    costs before its size counts (the process, its runtime, for ours the numba kernels loaded)."""
    _write_circuit(IDLE, work)
    runs = _prove_all(IDLE, work, provers, 2)
    return {prover: _summary(r, None) for prover, r in runs.items()}


def measure(  # noqa: PLR0917
    name: str,
    work: Path,
    step: Callable[[str], None],
    provers: dict[str, Callable[[Path, Path, Path, Path], list[str]]],
    idle_rows: dict[str, Any],
    repeat: int,
) -> dict[str, Any]:
    step(f"{name}: circuit, witness and development setup")
    circuit = _write_circuit(name, work)
    build_r1cs.cache_clear()
    step(f"{name}: {' / '.join(provers)} x {repeat}")
    runs = _prove_all(name, work, provers, repeat)
    step(f"{name}: verify every prover's proof")
    for prover in provers:
        path = work / f"{name}.{prover}.proof.json"
        proof = snarkjs_json.proof_from_json(json.loads(path.read_text()), str(path))
        if not verify(circuit.pk.vk, circuit.public, proof):
            raise RuntimeError(f"{name}: the proof in {path} does not verify")
    rows = {prover: _summary(r, idle_rows[prover]) for prover, r in runs.items()}
    timings = [json.loads(r.out.strip().splitlines()[-1]) for r in runs["ours"]]
    rows["ours"]["read_seconds"] = round(statistics.median(t["read_seconds"] for t in timings), 3)
    rows["ours"]["prove_seconds"] = round(statistics.median(t["prove_seconds"] for t in timings), 3)
    rows["ours"]["phases"] = {
        phase: round(statistics.median(t["phases"][phase] for t in timings), 3)
        for phase in timings[0]["phases"]
    }
    result: dict[str, Any] = {
        "constraints": circuit.constraints,
        "wires": circuit.pk.n_vars,
        "domain_size": circuit.pk.domain_size,
        "setup_seconds": round(circuit.setup_seconds, 2),
        **rows,
        "ratios": {theirs: _ratios(rows["ours"], rows[theirs]) for theirs in provers if theirs != "ours"},
    }
    result["ratio"] = result["ratios"]["snarkjs"]["time"]  # ours / snarkjs process time, as before
    return result


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
    proof_path, public_path = work / "batch-64.ours.proof.json", work / "batch-64.ours.public.json"
    proof = snarkjs_json.proof_from_json(json.loads(proof_path.read_text()), "proof")
    public = snarkjs_json.public_from_json(json.loads(public_path.read_text()), "public")
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
    provers = list(results["idle"])
    lines = [
        "process s: whole-process wall time (median); cpu s: its user + system time; peak MiB: its peak "
        "resident set (VmHWM); +idle MiB: that peak less the same prover's peak on a 2-constraint "
        "circuit; ours/it: our figure over its, for time, CPU time, peak and peak increase",
        f"{'circuit':<16}{'prover':<12}{'process s':>10}{'cpu s':>8}{'peak MiB':>10}{'+idle MiB':>11}"
        f"{'ours/it: time':>15}{'cpu':>7}{'peak':>7}{'+peak':>7}",
    ]
    for prover in provers:
        row = results["idle"][prover]
        lines.append(
            f"{'(idle)':<16}{prover:<12}{row['process_seconds']:>10.2f}{row['cpu_seconds']:>8.2f}"
            f"{row['peak_mib']:>10.1f}"
        )
    for name, circuit in results["provers"].items():
        for prover in provers:
            row = circuit[prover]
            line = (
                f"{name if prover == provers[0] else '':<16}{prover:<12}{row['process_seconds']:>10.2f}"
                f"{row['cpu_seconds']:>8.2f}{row['peak_mib']:>10.1f}{row['peak_increase_mib']:>11.1f}"
            )
            if prover in circuit["ratios"]:
                r = circuit["ratios"][prover]
                increase = f"{r['peak_increase']:>7.2f}" if "peak_increase" in r else f"{'-':>7}"
                line += f"{r['time']:>15.2f}{r['cpu']:>7.2f}{r['peak']:>7.2f}{increase}"
            lines.append(line)
        ours = circuit["ours"]
        phases = ", ".join(f"{k} {v:.2f}" for k, v in ours["phases"].items())
        lines.append(
            f"{'':<16}ours inside its process: read {ours['read_seconds']:.2f} s, prove "
            f"{ours['prove_seconds']:.2f} s ({phases}); {circuit['constraints']:,} constraints, "
            f"setup {circuit['setup_seconds']:.1f} s"
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
    parser.add_argument("--repeat", type=int, default=3, help="runs of each prover per circuit (default 3)")
    parser.add_argument(
        "--rapidsnark", type=Path, help="iden3's rapidsnark `prover` binary, to compare with (never needed)"
    )
    args = parser.parse_args(argv)
    if args.rapidsnark is not None and not os.access(args.rapidsnark, os.X_OK):
        parser.error(f"--rapidsnark {args.rapidsnark}: not an executable file")
    sizes = args.size or list(CIRCUITS)
    provers = _provers(args.rapidsnark)
    results: dict[str, Any] = {"provers": {}, "msm_g1": {}}
    with (
        tempfile.TemporaryDirectory() as scratch,
        Progress(
            TextColumn("{task.description:<52}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        ) as progress,
    ):
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        task = progress.add_task("starting", total=1 + len(sizes) * 3 + 2 + ("batch-64" in sizes))

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        step("each prover on a 2-constraint circuit (idle figures)")
        results["idle"] = idle(work, provers)
        for name in sizes:
            results["provers"][name] = measure(name, work, step, provers, results["idle"], args.repeat)
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
