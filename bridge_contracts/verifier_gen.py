"""Generate a Solidity Groth16 verifier for one verifying key, on the EVM's BN254 precompiles.

    python -m bridge_contracts.verifier_gen VK_JSON OUT.sol [--name CONTRACT]

`render(vk)` writes the source; `compile_verifier` compiles it with the pinned solc (build.py's
standard-JSON machinery, cached in memory by source hash); `deploy_verifier` deploys it on a Chain;
`calldata(proof, inputs)` gives verifyProof's arguments.

The contract has one function, in the signature snarkjs's verifiers have, so that the output of
`snarkjs zkey export soliditycalldata` can be passed as is:

    verifyProof(uint256[2] a, uint256[2][2] b, uint256[2] c, uint256[N] input) view returns (bool)

with b's Fp2 coordinates imaginary part first (EIP-197's order: [[x.c1, x.c0], [y.c1, y.c0]]). It checks
e(-A, B) · e(α, β) · e(vk_x, γ) · e(C, δ) = 1, vk_x = IC₀ + Σ inputᵢ · ICᵢ₊₁, with ECMUL (0x07) and ECADD
(0x06) for each nonzero input (EIP-196) and ONE pairing call (0x08, EIP-197) on the four pairs.

Verdicts. verifyProof returns false, and never reverts, for an invalid proof:

- a public input ≥ r (ECMUL would reduce it: x and x + r must not both verify);
- a proof coordinate ≥ p (checked here: the negation of A, y ↦ p - y, would otherwise turn some
  y ≥ p into an alias of a valid y);
- a point off its curve or B outside G2's subgroup (the pairing precompile fails on those: a failed
  call is a "false", never a success);
- a pairing product that is not 1.

It reverts with NotEnoughGas() when it was given too little gas to decide: ECMUL and ECADD on the key's
points with a scalar < r fail only for lack of gas, and a failed pairing call counts as a verdict only
if it was offered at least the pairing's price (EIP-1108: 45,000 + 34,000 per pair) under EIP-150's
63/64 rule. So a false is always a verdict on the proof, and eth_estimateGas cannot settle on a gas
limit that starves the precompiles. Precompiles are offered all remaining gas (not their price), so
a chain that reprices them does not break the verifier; on such a chain only the NotEnoughGas()
threshold is off. A failing precompile consumes all the gas it was offered: a proof with a malformed
point costs its submitter about 63/64 of the gas left at the pairing call.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from bridge_contracts.build import compile_sources
from bridge_contracts.chain import Chain
from proofs.bn254.field import P
from proofs.field import R
from proofs.groth16.keys import (
    G1_INFINITY,
    G2_INFINITY,
    G1Point,
    G2Point,
    VerifyingKey,
    g1_on_curve,
    g2_on_curve,
)
from proofs.groth16.proof import Proof

SOLIDITY_VERSION = "0.8.30"  # the pinned solc (toolchain.solc_version(); the tests check they agree)
ERROR = "NotEnoughGas()"

ECADD, ECMUL, PAIRING = 0x06, 0x07, 0x08
PAIRS = 4
PAIRING_GAS = 45_000 + 34_000 * PAIRS  # EIP-1108
# The least gas left before the pairing call for which the precompile is surely offered its price: the
# CALL's own 100 (warm, EIP-2929), then 63/64 of the rest (EIP-150); 100 more for the instructions
# between reading gas() and the call. Too high only turns a false into NotEnoughGas() at a tight limit.
PAIRING_MIN_GAS = (PAIRING_GAS * 64 + 62) // 63 + 200

# Memory from the free memory pointer m (used as scratch, never allocated): the pairing input, four
# pairs of 0xc0 bytes (G1 x, y; G2 x.c1, x.c0, y.c1, y.c0). vk_x is summed in place in pair 3's G1 slot;
# ECMUL's operands (point, scalar) and product use the 0x60 bytes after it, γ's slot, written later.
VK_X = 0x180
PAIRING_INPUT = 0xC0 * PAIRS


def _check_key(vk: VerifyingKey) -> None:
    """A key the verifier could never accept a proof for is refused here, not discovered on chain."""
    if vk.n_public < 1:
        raise ValueError("the verifying key has no public inputs: Solidity has no uint256[0]")
    if not g1_on_curve(vk.alpha_1) or vk.alpha_1 == G1_INFINITY:
        raise ValueError("the verifying key's alpha_1 is not a point of G1")
    for name in ("beta_2", "gamma_2", "delta_2"):
        point = getattr(vk, name)
        if point == G2_INFINITY or not g2_on_curve(point):
            raise ValueError(
                f"the verifying key's {name} is not on BN254's G2 curve (Fp2 halves swapped? keys.py wants "
                "the real part first)"
            )
    for i, point in enumerate(vk.ic):
        if not g1_on_curve(point):
            raise ValueError(f"the verifying key's ic[{i}] is not a point of G1")


def _hex(x: int) -> str:
    return f"0x{x:064x}"


def _g1_constants(name: str, point: G1Point, note: str) -> list[str]:
    return [
        f"    // {note}",
        f"    uint256 internal constant {name}_X = {_hex(point[0])};",
        f"    uint256 internal constant {name}_Y = {_hex(point[1])};",
    ]


def _g2_constants(name: str, point: G2Point, note: str) -> list[str]:
    (x0, x1), (y0, y1) = point
    return [
        f"    // {note}",
        f"    uint256 internal constant {name}_X_IM = {_hex(x1)};",
        f"    uint256 internal constant {name}_X_RE = {_hex(x0)};",
        f"    uint256 internal constant {name}_Y_IM = {_hex(y1)};",
        f"    uint256 internal constant {name}_Y_RE = {_hex(y0)};",
    ]


def _word(array: str, i: int) -> str:
    """The calldata offset of word i of a static calldata array, as a Yul expression."""
    return array if i == 0 else f"add({array}, {32 * i:#x})"


def _and_lines(terms: list[str]) -> list[str]:
    return [f"ok := and(ok, {term})" for term in terms]


_DEVELOPMENT_BANNER = """\
// =====================================================================================================
// NOT FOR PRODUCTION: GENERATED FROM A DEVELOPMENT VERIFYING KEY.
// Its setup's secrets are known (a fixed seed): anyone can forge proofs this verifier accepts.
// Use it on devnets and in tests only.
// =====================================================================================================
"""


def render(vk: VerifyingKey, contract_name: str = "Groth16Verifier") -> str:
    """The Solidity source of a verifier for `vk` (see the module's docstring)."""
    if not contract_name.isidentifier():
        raise ValueError(f"not a Solidity contract name: {contract_name!r}")
    _check_key(vk)
    n = vk.n_public
    selector = bytes(Web3.keccak(text=ERROR)[:4]).hex()

    constants = [
        "    // BN254's base field modulus p and scalar field modulus (group order) r.",
        f"    uint256 internal constant P = {_hex(P)};",
        f"    uint256 internal constant R = {_hex(R)};",
        "    // The least gas left before the pairing call for which the precompile is surely offered its",
        f"    // price, {PAIRING_GAS:_} (EIP-1108, {PAIRS} pairs), under EIP-150's 63/64 rule.",
        f"    uint256 internal constant PAIRING_MIN_GAS = {PAIRING_MIN_GAS:_};",
        "",
        "    // The verifying key. G2 coordinates are c0 + c1·u, written imaginary part first (EIP-197).",
        *_g1_constants("ALPHA", vk.alpha_1, "[alpha]_1"),
        *_g2_constants("BETA", vk.beta_2, "[beta]_2"),
        *_g2_constants("GAMMA", vk.gamma_2, "[gamma]_2"),
        *_g2_constants("DELTA", vk.delta_2, "[delta]_2"),
    ]
    for i, point in enumerate(vk.ic):
        note = "IC_0: the constant wire's term of vk_x" if i == 0 else f"IC_{i}: multiplies input[{i - 1}]"
        constants += _g1_constants(f"IC{i}", point, note)

    # The calldata offsets of every proof coordinate and of every public input.
    coordinates = [_word(arg, i) for arg, size in (("a", 2), ("b", 4), ("c", 2)) for i in range(size)]
    inputs = [_word("input", i) for i in range(n)]
    accumulate = [f"mulAdd(vkX, IC{i + 1}_X, IC{i + 1}_Y, calldataload({w}))" for i, w in enumerate(inputs)]
    pair = 0xC0
    body = [
        "// vk_x += s·(x, y), the sum at acc (0x40 bytes), ECMUL's operands and product in the 0x60 bytes",
        "// after it. Skipped for s = 0 (0·IC is the point at infinity). The key's points are valid and",
        "// s < r, so ECMUL and ECADD fail only for lack of gas.",
        "function mulAdd(acc, x, y, s) {",
        "    if s {",
        "        let operands := add(acc, 0x40)",
        "        mstore(operands, x)",
        "        mstore(add(operands, 0x20), y)",
        "        mstore(add(operands, 0x40), s)",
        f"        let success := staticcall(gas(), {ECMUL:#04x}, operands, 0x60, operands, 0x40)",
        f"        success := and(success, staticcall(gas(), {ECADD:#04x}, acc, 0x80, acc, 0x40))",
        "        if iszero(success) { notEnoughGas() }",
        "    }",
        "}",
        "",
        "function notEnoughGas() {",
        f"    mstore(0, shl(224, 0x{selector})) // {ERROR}",
        "    revert(0, 4)",
        "}",
        "",
        "// Every proof coordinate below p; every public input below r. P and R are read once into stack",
        "// variables: a 32-byte constant repeated in the code costs more at each use (measured).",
        "let p := P",
        "let r := R",
        f"let ok := lt(calldataload({coordinates[0]}), p)",
        *_and_lines([f"lt(calldataload({w}), p)" for w in coordinates[1:]]),
        *_and_lines([f"lt(calldataload({w}), r)" for w in inputs]),
        "",
        "if ok {",
        "    let m := mload(0x40)",
        "",
        "    // vk_x = IC_0 + sum of input[i]·IC_{i+1}, in pair 3's G1 slot.",
        f"    let vkX := add(m, {VK_X:#x})",
        "    mstore(vkX, IC0_X)",
        "    mstore(add(vkX, 0x20), IC0_Y)",
        *(f"    {line}" for line in accumulate),
        "",
        "    // Pair 1: (-A, B), with -(x, y) = (x, p - y) and -(0, 0) = (0, 0); B as given (EIP-197 order).",
        "    mstore(m, calldataload(a))",
        "    mstore(add(m, 0x20), mod(sub(p, calldataload(add(a, 0x20))), p))",
        "    calldatacopy(add(m, 0x40), b, 0x80)",
        "    // Pair 2: (alpha, beta).",
        f"    mstore(add(m, {pair:#x}), ALPHA_X)",
        f"    mstore(add(m, {pair + 0x20:#x}), ALPHA_Y)",
        f"    mstore(add(m, {pair + 0x40:#x}), BETA_X_IM)",
        f"    mstore(add(m, {pair + 0x60:#x}), BETA_X_RE)",
        f"    mstore(add(m, {pair + 0x80:#x}), BETA_Y_IM)",
        f"    mstore(add(m, {pair + 0xA0:#x}), BETA_Y_RE)",
        "    // Pair 3: (vk_x, gamma).",
        f"    mstore(add(m, {2 * pair + 0x40:#x}), GAMMA_X_IM)",
        f"    mstore(add(m, {2 * pair + 0x60:#x}), GAMMA_X_RE)",
        f"    mstore(add(m, {2 * pair + 0x80:#x}), GAMMA_Y_IM)",
        f"    mstore(add(m, {2 * pair + 0xA0:#x}), GAMMA_Y_RE)",
        "    // Pair 4: (C, delta).",
        f"    calldatacopy(add(m, {3 * pair:#x}), c, 0x40)",
        f"    mstore(add(m, {3 * pair + 0x40:#x}), DELTA_X_IM)",
        f"    mstore(add(m, {3 * pair + 0x60:#x}), DELTA_X_RE)",
        f"    mstore(add(m, {3 * pair + 0x80:#x}), DELTA_Y_IM)",
        f"    mstore(add(m, {3 * pair + 0xA0:#x}), DELTA_Y_RE)",
        "",
        "    // One pairing check on the 4 pairs. It fails on a point off its curve or outside G2's",
        "    // subgroup: that is a false, unless the call may have been starved of gas.",
        "    let g := gas()",
        f"    ok := staticcall(g, {PAIRING:#04x}, m, {PAIRING_INPUT:#x}, m, 0x20)",
        "    if and(iszero(ok), lt(g, PAIRING_MIN_GAS)) { notEnoughGas() }",
        "    valid := and(ok, mload(m))",
        "}",
    ]
    development = _DEVELOPMENT_BANNER if vk.development else ""
    dev_notice = (
        "/// @notice NOT FOR PRODUCTION: the key comes from a development setup; proofs can be forged.\n"
        if vk.development
        else ""
    )
    plural = "s" if n > 1 else ""
    return (
        "// SPDX-License-Identifier: Apache-2.0\n"
        "// GENERATED by `python -m bridge_contracts.verifier_gen` from a Groth16 verifying key."
        " DO NOT EDIT.\n"
        f"pragma solidity {SOLIDITY_VERSION};\n"
        "\n"
        f"{development}"
        f"{chr(10) if development else ''}"
        f"/// @title Groth16 verifier over BN254 for one verifying key ({n} public input{plural}).\n"
        f"{dev_notice}"
        "/// @notice verifyProof returns true for a valid proof of the public inputs and false for anything\n"
        "/// else: an input >= r, a proof coordinate >= p, a point off its curve or outside its group, a\n"
        "/// failed pairing check. It reverts (NotEnoughGas()) only when given too little gas to decide.\n"
        "/// @dev Arguments as `snarkjs zkey export soliditycalldata` prints them: b = [[x.c1, x.c0],\n"
        "/// [y.c1, y.c0]] (EIP-197). Checks e(-A, B)·e(alpha, beta)·e(vk_x, gamma)·e(C, delta) == 1 with\n"
        "/// vk_x = IC_0 + sum of input[i]·IC_{i+1}: ECMUL (0x07) and ECADD (0x06) per nonzero input, then\n"
        "/// one pairing call (0x08) on the 4 pairs.\n"
        f"contract {contract_name} {{\n"
        "    /// The call had too little gas left for a precompile to decide; retry with more gas.\n"
        "    error NotEnoughGas();\n"
        "\n" + "\n".join(constants) + "\n"
        "\n"
        "    function verifyProof(\n"
        "        uint256[2] calldata a,\n"
        "        uint256[2][2] calldata b,\n"
        "        uint256[2] calldata c,\n"
        f"        uint256[{n}] calldata input\n"
        "    ) external view returns (bool valid) {\n"
        "        // The arguments are static calldata arrays: `a`, `b`, `c` and `input` are their offsets.\n"
        '        assembly ("memory-safe") {\n'
        + "\n".join(f"            {line}" if line else "" for line in body)
        + "\n"
        "        }\n"
        "    }\n"
        "}\n"
    )


# --- compiling and deploying ---------------------------------------------------------------------------

_compiled: dict[str, tuple[list[dict[str, Any]], str]] = {}


def compile_solidity(source: str, contract_name: str) -> tuple[list[dict[str, Any]], str]:
    """(abi, bytecode) of `contract_name` in a self-contained Solidity source, compiled with the pinned
    solc and build.py's settings; cached in memory by the source's hash."""
    key = hashlib.sha256(f"{contract_name}\0{source}".encode()).hexdigest()
    if key not in _compiled:
        with tempfile.TemporaryDirectory() as tmp:
            sources = Path(tmp) / "src"
            sources.mkdir()
            (sources / f"{contract_name}.sol").write_text(source)
            result = compile_sources(sources)
        text = result.artifacts.get(f"{contract_name}.json")
        if text is None:
            raise ValueError(f"the source declares no contract {contract_name}")
        artifact = json.loads(text)
        _compiled[key] = (artifact["abi"], artifact["bytecode"])
    return _compiled[key]


def compile_verifier(
    vk: VerifyingKey, contract_name: str = "Groth16Verifier"
) -> tuple[list[dict[str, Any]], str]:
    """(abi, bytecode) of the verifier for `vk`."""
    return compile_solidity(render(vk, contract_name), contract_name)


def deploy_compiled(chain: Chain, abi: list[dict[str, Any]], bytecode: str, what: str) -> Contract:
    """Deploy a contract compiled here (not a committed artifact); no constructor arguments."""
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = chain.send(factory.constructor(), what=f"deploy {what}")
    address = receipt["contractAddress"]
    assert address is not None
    return chain.w3.eth.contract(address=address, abi=abi)


def deploy_verifier(chain: Chain, vk: VerifyingKey, contract_name: str = "Groth16Verifier") -> Contract:
    """Compile and deploy the verifier for `vk` on `chain`."""
    abi, bytecode = compile_verifier(vk, contract_name)
    return deploy_compiled(chain, abi, bytecode, contract_name)


def calldata(proof: Proof, inputs: Sequence[int]) -> tuple[list[int], list[list[int]], list[int], list[int]]:
    """verifyProof's arguments (a, b, c, input) for a proof: B's Fp2 halves imaginary part first."""
    (bx0, bx1), (by0, by1) = proof.b
    return list(proof.a), [[bx1, bx0], [by1, by0]], list(proof.c), list(inputs)


# --- command line --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge_contracts.verifier_gen",
        description="Write a Solidity Groth16 verifier for a snarkjs verification key (JSON).",
    )
    parser.add_argument(
        "vk_json", type=Path, help="the verification key, as `snarkjs zkey export verificationkey`"
    )
    parser.add_argument("out", type=Path, help="the Solidity file to write")
    parser.add_argument("--name", default="Groth16Verifier", help="the contract's name")
    args = parser.parse_args(argv)

    from proofs.formats.snarkjs_json import verifying_key_from_json  # noqa: PLC0415

    vk = verifying_key_from_json(json.loads(args.vk_json.read_text()), str(args.vk_json))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(vk, args.name))
    print(f"wrote {args.out} ({vk.n_public} public inputs{', DEVELOPMENT KEY' if vk.development else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
