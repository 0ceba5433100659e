"""Gas of the generated Groth16 verifier (bridge_contracts.verifier_gen) per number of public inputs.

Starts its own anvil and, for 1, 4, 8 and 22 public inputs (22: the batch circuit), deploys the verifier
of a random key and checks one valid proof (made with the key's trapdoor: there is no prover here).

- `verify`: the gas of verifyProof as a contract pays it, measured by a tiny meter contract around a
  STATICCALL to the verifier's warm address (gas() before and after, read with eth_call): the call
  (100), the verification, the return. A transaction's first call to the verifier costs 2,500 more
  (cold address, EIP-2929). Random inputs, none zero.
- `verify_zero_inputs`: the same with every public input 0 (their ECMUL and ECADD are skipped).
- `transaction`: gasUsed of a transaction calling verifyProof directly: `verify` plus the transaction's
  21,000, its calldata and the cold access.
- `code_size`: the verifier's deployed code in bytes.

The target is `verify` < 250,000 with up to 8 public inputs: the pairing alone costs 181,000 (EIP-1108,
4 pairs) and each nonzero input about 6,300 (ECMUL 6,000 + ECADD 150 + two calls).

    python -m benchmarks.verifier_gas [--out FILE]
"""

from __future__ import annotations

import random
import sys

import py_ecc.optimized_bn128 as bn
from web3.contract import Contract

from benchmarks import arguments, local_chain, report
from bridge_contracts.chain import Chain
from bridge_contracts.verifier_gen import (
    SOLIDITY_VERSION,
    calldata,
    compile_solidity,
    deploy_compiled,
    deploy_verifier,
)
from proofs.field import R
from proofs.groth16.keys import G1Point, G2Point, VerifyingKey, g1_from_py_ecc, g2_from_py_ecc
from proofs.groth16.proof import Proof

CHAIN_ID = 31_337
SIZES = (1, 4, 8, 22)
TARGET = 250_000

METER = f"""\
// SPDX-License-Identifier: Apache-2.0
pragma solidity {SOLIDITY_VERSION};

/// BENCHMARKS ONLY: the gas of one call to a verifier, as a contract pays it (STATICCALL, warm address).
contract VerifierGasMeter {{
    function measure(address verifier, bytes calldata data)
        external
        view
        returns (bool valid, uint256 used)
    {{
        require(verifier.code.length > 0); // warms the address
        bool ok;
        assembly {{
            let input := mload(0x40)
            calldatacopy(input, data.offset, data.length)
            let before := gas()
            ok := staticcall(gas(), verifier, input, data.length, 0, 0x20)
            used := sub(before, gas())
            valid := mload(0)
        }}
        require(ok);
    }}
}}
"""


def _g1(scalar: int) -> G1Point:
    return g1_from_py_ecc(bn.multiply(bn.G1, scalar))


def _g2(scalar: int) -> G2Point:
    return g2_from_py_ecc(bn.multiply(bn.G2, scalar))


def key_and_proof(n_public: int, inputs: list[int], seed: int) -> tuple[VerifyingKey, Proof]:
    """A random key and a valid proof of `inputs`, from the setup's trapdoor: with s = ic₀ + Σ xᵢ·icᵢ,
    A = [a]₁, B = [b]₂, C = [(a·b - α·β - s·γ)/δ]₁ satisfies e(A, B) = e(α, β)·e(vk_x, γ)·e(C, δ)."""
    rng = random.Random(seed)
    alpha, beta, gamma, delta, a, b = (rng.randrange(1, R) for _ in range(6))
    ic = [rng.randrange(1, R) for _ in range(n_public + 1)]
    vk = VerifyingKey(_g1(alpha), _g2(beta), _g2(gamma), _g2(delta), tuple(_g1(x) for x in ic))
    s = (ic[0] + sum(x * y for x, y in zip(inputs, ic[1:], strict=True))) % R
    c = (a * b - alpha * beta - s * gamma) * pow(delta, -1, R) % R
    return vk, Proof(_g1(a), _g2(b), _g1(c))


def _meter(chain: Chain) -> Contract:
    abi, bytecode = compile_solidity(METER, "VerifierGasMeter")
    return deploy_compiled(chain, abi, bytecode, "VerifierGasMeter")


def _measure_one(chain: Chain, meter: Contract, n_public: int) -> dict[str, int]:
    rng = random.Random(n_public)
    inputs = [rng.randrange(1, R) for _ in range(n_public)]
    zeros = [0] * n_public
    vk, proof = key_and_proof(n_public, inputs, seed=n_public)
    verifier = deploy_verifier(chain, vk, f"Groth16Verifier{n_public}")
    # The same key's trapdoor proves the all-zero inputs too (the seed gives the same key).
    _, zero_proof = key_and_proof(n_public, zeros, seed=n_public)

    row: dict[str, int] = {}
    for column, args in (
        ("verify", calldata(proof, inputs)),
        ("verify_zero_inputs", calldata(zero_proof, zeros)),
    ):
        data = verifier.encode_abi("verifyProof", args=list(args))
        valid, used = meter.functions.measure(verifier.address, data).call()
        if not valid:
            raise AssertionError(f"the verifier for {n_public} inputs rejects a valid proof")
        row[column] = int(used)
    receipt = chain.send(verifier.functions.verifyProof(*calldata(proof, inputs)))
    row["transaction"] = int(receipt["gasUsed"])
    row["code_size"] = len(chain.w3.eth.get_code(verifier.address))
    return row


def measure() -> dict[str, dict[str, int]]:
    """{public inputs: {"verify", "verify_zero_inputs", "transaction", "code_size"}}, keys as strings."""
    with local_chain(CHAIN_ID) as chain:
        meter = _meter(chain)
        return {str(n): _measure_one(chain, meter, n) for n in SIZES}


def table(results: dict[str, dict[str, int]]) -> str:
    lines = [f"{'inputs':>6}{'verify':>10}{'all 0':>10}{'transaction':>13}{'per input':>11}{'code size':>11}"]
    base = None
    for key, row in sorted(results.items(), key=lambda item: int(item[0])):
        n = int(key)
        if base is None:
            base = (n, row["verify"])
        per_input = f"{(row['verify'] - base[1]) / (n - base[0]):,.0f}" if n != base[0] else "-"
        lines.append(
            f"{n:>6}{row['verify']:>10,}{row['verify_zero_inputs']:>10,}{row['transaction']:>13,}"
            f"{per_input:>11}{row['code_size']:>11,}"
        )
    lines.append(f"target: verify < {TARGET:,} gas with up to 8 public inputs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments("verifier_gas", __doc__ or "").parse_args(argv)
    results = measure()
    report(table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
