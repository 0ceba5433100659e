"""Gas and code size of the generated Poseidon libraries (bridge_contracts/src/generated/PoseidonT*.sol).

Starts its own anvil, deploys the libraries and the test harness, and hashes inputs [1, ..., n] once per
width. `gas` is what the harness measures around the library call (gasleft() difference): the
DELEGATECALL to the warm library, its arguments and result, and the hash. A transaction's first call
to a library costs 2,500 gas more (cold address, EIP-2929). `code_size` is the deployed runtime code
in bytes (the EIP-170 limit is 24,576). "reference" is the gas per hash of the best public Solidity
implementation, the target these libraries aim below.

    python -m benchmarks.poseidon_gas [--out FILE]
"""

from __future__ import annotations

import sys

from benchmarks import arguments, local_chain, report
from bridge_contracts.deploy import deploy_poseidon
from proofs.poseidon import poseidon

CHAIN_ID = 31_337
REFERENCE_GAS = {2: 13_500, 3: 21_100, 4: 37_600, 5: 54_300, 6: 74_000}
EIP170_LIMIT = 24_576


def measure() -> dict[str, dict[str, int]]:
    """{width t: {"gas": ..., "code_size": ...}} for t = 2..7, keys as strings (JSON)."""
    with local_chain(CHAIN_ID) as chain:
        libraries = deploy_poseidon(chain)
        harness = chain.deploy("PoseidonHarness", libraries=libraries)
        results: dict[str, dict[str, int]] = {}
        for t in range(2, 8):
            inputs = list(range(1, t))
            digest, gas = getattr(harness.functions, f"hashT{t}")(inputs).call()
            if digest != poseidon(inputs):
                raise AssertionError(f"PoseidonT{t} disagrees with proofs.poseidon on {inputs}")
            code = chain.w3.eth.get_code(chain.w3.to_checksum_address(libraries[f"PoseidonT{t}"]))
            results[str(t)] = {"gas": int(gas), "code_size": len(code)}
        return results


def table(results: dict[str, dict[str, int]]) -> str:
    lines = [
        f"{'library':<12}{'inputs':>7}{'gas':>9}{'reference':>11}{'code size':>11}{'of limit':>10}",
    ]
    for key, row in sorted(results.items(), key=lambda item: int(item[0])):
        t = int(key)
        reference = f"{REFERENCE_GAS[t]:,}" if t in REFERENCE_GAS else "-"
        lines.append(
            f"{'PoseidonT' + key:<12}{t - 1:>7}{row['gas']:>9,}{reference:>11}"
            f"{row['code_size']:>11,}{row['code_size'] / EIP170_LIMIT:>10.0%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments("poseidon_gas", __doc__ or "").parse_args(argv)
    results = measure()
    report(table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
