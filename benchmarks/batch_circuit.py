"""Size and speed of the batch circuit (proofs/circuits/batch.py) per capacity, K = 4 value slots.

For each capacity: constraints, wires, public inputs, the seconds to build the R1CS (once per process)
and to compute a witness for a full batch of value-carrying messages.

    python -m benchmarks.batch_circuit [--out FILE] [--capacity N ...]
"""

from __future__ import annotations

import sys
import time

from benchmarks import arguments, report
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
    start = time.perf_counter()
    circuit.witness(Batch(901, 0, 0, messages))
    witnessed = time.perf_counter() - start
    result = {
        "constraints": r1cs.n_constraints,
        "wires": r1cs.n_wires,
        "public_inputs": r1cs.n_public,
        "build_seconds": round(built, 2),
        "witness_seconds": round(witnessed, 2),
    }
    build_r1cs.cache_clear()  # one circuit in memory at a time
    return result


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'capacity':>9}{'constraints':>13}{'wires':>10}{'public':>8}{'build s':>9}{'witness s':>11}"]
    for key, row in sorted(results.items(), key=lambda item: int(item[0])):
        lines.append(
            f"{key:>9}{row['constraints']:>13,}{row['wires']:>10,}{row['public_inputs']:>8}"
            f"{row['build_seconds']:>9.2f}{row['witness_seconds']:>11.2f}"
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
