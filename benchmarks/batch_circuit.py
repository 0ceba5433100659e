"""Size and speed of the batch circuit (proofs/circuits/batch.py) per capacity, K = 4 value slots.

For each capacity: constraints, wires, public inputs, the seconds to build the R1CS (once per process),
and to compute a witness for a full batch of value-carrying messages two ways: the reference (Python
hashes for the public inputs, then `R1CS.witness` over Python ints) and the compiled path the prover
pool runs (`BatchCircuit.public_and_witness`: proofs.r1cs.compiled, limbs for the prover; the best of
three). `first_compiled_seconds` is the first compiled witness of the process: making the witness
program and loading its kernels from numba's disk cache (compiling them when the cache is cold).

    python -m benchmarks.batch_circuit [--out FILE] [--capacity N ...]
"""

from __future__ import annotations

import sys
import time

from benchmarks import arguments, report
from proofs.bn254 import field
from proofs.circuits.batch import Batch, BatchCircuit, build_r1cs
from proofs.message import LeafPreimage

CAPACITIES = (8, 16, 64, 256)
ASSET = 0xA55E7 << 200


def measure(capacity: int) -> dict[str, float]:
    start = time.perf_counter()
    circuit = BatchCircuit(capacity)
    r1cs = circuit.r1cs
    built = time.perf_counter() - start
    messages = tuple(LeafPreimage(902 + i % 2, ASSET, 10**18 + i, i) for i in range(capacity))
    batch = Batch(901, 0, 0, messages)
    start = time.perf_counter()
    circuit.witness_limbs(batch)
    first = time.perf_counter() - start
    compiled = []
    for _ in range(3):
        start = time.perf_counter()
        _, limbs = circuit.public_and_witness(batch)
        compiled.append(time.perf_counter() - start)
    start = time.perf_counter()
    reference = circuit.witness(batch, compiled=False)
    referenced = time.perf_counter() - start
    if field.ints(limbs) != reference:
        raise AssertionError(f"capacity {capacity}: the compiled witness differs from the reference")
    result = {
        "constraints": r1cs.n_constraints,
        "wires": r1cs.n_wires,
        "public_inputs": r1cs.n_public,
        "build_seconds": round(built, 2),
        "reference_witness_seconds": round(referenced, 3),
        "first_compiled_seconds": round(first, 3),
        "witness_seconds": round(min(compiled), 4),
    }
    build_r1cs.cache_clear()  # one circuit in memory at a time
    return result


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{'capacity':>9}{'constraints':>13}{'wires':>10}{'public':>8}{'build s':>9}"
        f"{'reference s':>13}{'first s':>9}{'witness s':>11}{'speed-up':>10}"
    ]
    for key, row in sorted(results.items(), key=lambda item: int(item[0])):
        lines.append(
            f"{key:>9}{row['constraints']:>13,}{row['wires']:>10,}{row['public_inputs']:>8}"
            f"{row['build_seconds']:>9.2f}{row['reference_witness_seconds']:>13.3f}"
            f"{row['first_compiled_seconds']:>9.3f}{row['witness_seconds']:>11.4f}"
            f"{row['reference_witness_seconds'] / row['witness_seconds']:>9.0f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("batch_circuit", __doc__ or "")
    parser.add_argument(
        "--capacity", type=int, action="append", help="capacities to measure (default 8 16 64 256)"
    )
    args = parser.parse_args(argv)
    results = {str(n): measure(n) for n in args.capacity or CAPACITIES}
    report(table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
