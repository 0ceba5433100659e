"""The generated Solidity Groth16 verifier (bridge_contracts.verifier_gen) on anvil.

There is no prover here: proofs are made with the setup's trapdoor. With random α, β, γ, δ and ICᵢ
scalars the key is ([α]₁, [β]₂, [γ]₂, [δ]₂, [icᵢ]₁); for inputs x, s = ic₀ + Σ xᵢ·icᵢ and random a, b,
the proof A = [a]₁, B = [b]₂, C = [(a·b - α·β - s·γ)/δ]₁ satisfies e(A, B) = e(α, β)·e(vk_x, γ)·e(C, δ).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import py_ecc.optimized_bn128 as bn
import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams

from bridge_contracts import toolchain, verifier_gen
from bridge_contracts.chain import Chain
from bridge_contracts.verifier_gen import calldata, deploy_verifier, render
from proofs.bn254.field import P
from proofs.field import R
from proofs.groth16.keys import G1Point, G2Point, VerifyingKey, g1_from_py_ecc, g2_from_py_ecc
from proofs.groth16.proof import Proof

SIZES = (1, 4, 8, 22)  # 22: the batch circuit's public inputs
NOT_ENOUGH_GAS = "0x" + bytes(Web3.keccak(text="NotEnoughGas()")[:4]).hex()


# --- the trapdoor ------------------------------------------------------------------------------------


def _g1(scalar: int) -> G1Point:
    return g1_from_py_ecc(bn.multiply(bn.G1, scalar % R))


def _g2(scalar: int) -> G2Point:
    return g2_from_py_ecc(bn.multiply(bn.G2, scalar % R))


@dataclass(frozen=True)
class Trapdoor:
    alpha: int
    beta: int
    gamma: int
    delta: int
    ic: tuple[int, ...]
    vk: VerifyingKey

    def prove(self, inputs: list[int], rng: random.Random) -> Proof:
        s = (self.ic[0] + sum(x * ic for x, ic in zip(inputs, self.ic[1:], strict=True))) % R
        a, b = rng.randrange(1, R), rng.randrange(1, R)
        c = (a * b - self.alpha * self.beta - s * self.gamma) * pow(self.delta, -1, R)
        return Proof(_g1(a), _g2(b), _g1(c))


@cache
def _shared() -> tuple[int, int, int, int, G1Point, G2Point, G2Point, G2Point]:
    rng = random.Random(197)
    alpha, beta, gamma, delta = (rng.randrange(1, R) for _ in range(4))
    return alpha, beta, gamma, delta, _g1(alpha), _g2(beta), _g2(gamma), _g2(delta)


@cache
def trapdoor(n_public: int, development: bool = False) -> Trapdoor:
    alpha, beta, gamma, delta, alpha_1, beta_2, gamma_2, delta_2 = _shared()
    rng = random.Random(n_public)
    ic = tuple(rng.randrange(1, R) for _ in range(n_public + 1))
    vk = VerifyingKey(alpha_1, beta_2, gamma_2, delta_2, tuple(_g1(x) for x in ic), development)
    return Trapdoor(alpha, beta, gamma, delta, ic, vk)


Args = tuple[list[int], list[list[int]], list[int], list[int]]


def _verify(verifier: Contract, args: Args, gas: int | None = None) -> bool:
    params: TxParams = {} if gas is None else {"gas": gas}
    return bool(verifier.functions.verifyProof(*args).call(params))


def _calldata_gas(data: bytes) -> int:
    return sum(4 if byte == 0 else 16 for byte in data)


# --- the source ----------------------------------------------------------------------------------------


def test_pragma_is_the_pinned_solc_and_p_is_bn254s() -> None:
    assert toolchain.solc_version() == verifier_gen.SOLIDITY_VERSION
    assert bn.field_modulus == P
    assert f"pragma solidity {toolchain.solc_version()};" in render(trapdoor(1).vk)


def test_development_key_is_marked_not_for_production() -> None:
    dev = render(trapdoor(1, development=True).vk)
    assert "NOT FOR PRODUCTION" in dev.split("contract ", 1)[0]  # in the banner, before the contract
    assert "NOT FOR PRODUCTION" not in render(trapdoor(1).vk)


def test_keys_the_verifier_could_not_use_are_refused() -> None:
    vk = trapdoor(1).vk
    (x0, x1), (y0, y1) = vk.beta_2
    with pytest.raises(ValueError, match="beta_2 is not on BN254's G2 curve"):
        render(replace(vk, beta_2=((x1, x0), (y1, y0))))  # EIP-197 order given as keys.py's
    with pytest.raises(ValueError, match=r"ic\[1\]"):
        render(replace(vk, ic=(vk.ic[0], (vk.ic[1][0], vk.ic[1][1] + 1))))
    with pytest.raises(ValueError, match="no public inputs"):
        render(replace(vk, ic=vk.ic[:1]))
    with pytest.raises(ValueError, match="contract name"):
        render(vk, "Not A Name")


# --- verdicts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_public", SIZES)
def test_valid_proofs_verify(chain_a: Chain, n_public: int) -> None:
    t = trapdoor(n_public)
    rng = random.Random(1000 + n_public)
    verifier = deploy_verifier(chain_a, t.vk, f"Verifier{n_public}")
    inputs = [rng.randrange(R) for _ in range(n_public)]
    args = calldata(t.prove(inputs, rng), inputs)
    assert _verify(verifier, args)

    # In a transaction (its gas estimated by the node): it succeeds, and for up to 8 inputs the
    # verification stays below 250k gas (the transaction's 21,000 and calldata aside).
    receipt = chain_a.send(verifier.functions.verifyProof(*args))
    data = bytes.fromhex(verifier.encode_abi("verifyProof", args=args)[2:])
    execution = receipt["gasUsed"] - 21_000 - _calldata_gas(data)
    assert verifier_gen.PAIRING_GAS < execution < 190_000 + 7_000 * n_public


def test_inputs_zero_and_r_minus_1(chain_a: Chain) -> None:
    t = trapdoor(4)
    rng = random.Random(7)
    verifier = deploy_verifier(chain_a, t.vk, "Verifier4")
    for inputs in ([0, R - 1, 0, 1], [0, 0, 0, 0], [R - 1] * 4):
        assert _verify(verifier, calldata(t.prove(inputs, rng), inputs)), inputs


def _fp2_sqrt(a: Any) -> Any:
    """A square root in Fp2 = Fp[u]/(u² + 1), p ≡ 3 mod 4 (Adj and Rodríguez-Henríquez, algorithm 9),
    or None."""
    a1 = a ** ((P - 3) // 4)
    alpha = a1 * a1 * a
    if alpha ** (P + 1) == bn.FQ2([P - 1, 0]):  # a0 = αᵖ·α = -1: not a square
        return None
    x0 = a1 * a
    if alpha == bn.FQ2([P - 1, 0]):
        return bn.FQ2([0, 1]) * x0
    return (alpha + bn.FQ2.one()) ** ((P - 1) // 2) * x0


def _twist_point_outside_g2() -> G2Point:
    """A point on the G2 curve (the twist) that is not in G2: its cofactor is ~2^254."""
    for x0 in range(1, 100):
        x = bn.FQ2([x0, 1])
        y = _fp2_sqrt(x**3 + bn.b2)
        if y is not None and y * y == x**3 + bn.b2:
            assert not bn.is_inf(bn.multiply((x, y, bn.FQ2.one()), R))
            return ((x0, 1), (int(y.coeffs[0]), int(y.coeffs[1])))
    raise AssertionError("no point found")


def _plus_p(words: list[int], j: int) -> list[int]:
    return [w + P if k == j else w for k, w in enumerate(words)]


def _invalid_variants(proof: Proof, inputs: list[int]) -> dict[str, Args]:
    a, b, c, x = calldata(proof, inputs)
    (ax, ay), (cx, cy) = proof.a, proof.c
    other = random.Random(99)
    shifted_a = bn.normalize(bn.add((bn.FQ(ax), bn.FQ(ay), bn.FQ.one()), bn.G1))
    b_words = [*b[0], *b[1]]
    variants: dict[str, Args] = {
        "input flipped": (a, b, c, [x[0] ^ 1, *x[1:]]),
        "input + r": (a, b, c, [x[0] + R, *x[1:]]),
        "input 2^256 - 1": (a, b, c, [*x[:-1], 2**256 - 1]),
        "A + G1": ([int(shifted_a[0]), int(shifted_a[1])], b, c, x),
        "A negated": ([ax, P - ay], b, c, x),
        "A at infinity": ([0, 0], b, c, x),
        "B another point": (a, calldata(replace(proof, b=_g2(other.randrange(R))), x)[1], c, x),
        "C another point": (a, b, list(_g1(other.randrange(R))), x),
        # a y >= p that a naive negation (p - y) mod p maps onto -A's y: the range check must catch it
        "A.y aliased": ([ax, (ay + 2**256) % P + P], b, c, x),
        "A off the curve": ([ax, ay + 1], b, c, x),
        "C off the curve": (a, b, [cx, (cy + 1) % P], x),
        "B off the curve": (a, [b[0], [b[1][0], (b[1][1] + 1) % P]], c, x),
        "B outside G2": (a, calldata(replace(proof, b=_twist_point_outside_g2()), x)[1], c, x),
        "B's Fp2 halves swapped": (a, [[b[0][1], b[0][0]], [b[1][1], b[1][0]]], c, x),
        "B's x and y swapped": (a, [b[1], b[0]], c, x),
    }
    for j in range(2):
        variants[f"A[{j}] + p"] = (_plus_p(a, j), b, c, x)
        variants[f"C[{j}] + p"] = (a, b, _plus_p(c, j), x)
    for j in range(4):
        words = _plus_p(b_words, j)
        variants[f"B[{j // 2}][{j % 2}] + p"] = (a, [words[:2], words[2:]], c, x)
    return variants


def test_invalid_proofs_return_false(chain_a: Chain) -> None:
    t = trapdoor(4)
    rng = random.Random(11)
    verifier = deploy_verifier(chain_a, t.vk, "Verifier4")
    inputs = [rng.randrange(R) for _ in range(4)]
    proof = t.prove(inputs, rng)
    assert _verify(verifier, calldata(proof, inputs))
    variants = _invalid_variants(proof, inputs)
    assert len(variants) == 23
    accepted = [name for name, args in variants.items() if _verify(verifier, args)]
    assert accepted == []
    # In a transaction too, an invalid proof is a false, not a revert: a malformed point (the pairing
    # precompile fails) and an input out of the field (no precompile call).
    for name in ("B off the curve", "input + r"):
        receipt = chain_a.send(verifier.functions.verifyProof(*variants[name]), what=name)
        assert receipt["status"] == 1


def test_a_valid_proof_never_gets_false_for_lack_of_gas(chain_a: Chain) -> None:
    """Starved precompiles make verifyProof revert NotEnoughGas(), never return false: whatever the gas
    limit, a valid proof gets true or a revert, and eth_estimateGas finds a limit that verifies it."""
    t = trapdoor(4)
    rng = random.Random(12)
    verifier = deploy_verifier(chain_a, t.vk, "Verifier4")
    inputs = [rng.randrange(R) for _ in range(4)]
    args = calldata(t.prove(inputs, rng), inputs)
    outcomes: dict[int, str] = {}
    for gas in range(30_000, 260_001, 2_000):
        try:
            outcomes[gas] = str(_verify(verifier, args, gas))
        except ContractLogicError as exc:
            outcomes[gas] = "NotEnoughGas" if exc.data == NOT_ENOUGH_GAS else f"revert {exc.data!r}"
        except Web3RPCError as exc:  # out of gas outside a precompile, or below the intrinsic gas
            outcomes[gas] = f"error {exc.rpc_response}"
    assert "False" not in outcomes.values()
    assert "NotEnoughGas" in outcomes.values() and outcomes[260_000] == "True"
    estimate = verifier.functions.verifyProof(*args).estimate_gas()
    assert _verify(verifier, args, estimate)

    # An invalid proof gets its false as soon as the pairing could have been paid for.
    bad = _invalid_variants(t.prove(inputs, rng), inputs)["B off the curve"]
    assert not _verify(verifier, bad, 260_000)


# --- against snarkjs -------------------------------------------------------------------------------------


def test_snarkjs_proof_and_calldata_verify(chain_a: Chain, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A real snarkjs ceremony and proof: the verifier written by the command line from snarkjs's
    exported key accepts `snarkjs zkey export soliditycalldata`'s arguments as they are."""
    sj = pytest.importorskip("proofs.formats.snarkjs_json")
    from proofs.formats import wtns as wtns_file  # noqa: PLC0415
    from tests import snarkjs  # noqa: PLC0415

    zkey = snarkjs.small_ceremony(tmp_path_factory)
    work = tmp_path_factory.mktemp("verifier_snarkjs")
    snarkjs.export_verification_key(zkey, work / "vk.json")
    wtns_file.write(snarkjs.small_witness(3, 5), work / "witness.wtns")
    proof_json, public = snarkjs.prove(zkey, work / "witness.wtns", work / "proof.json", work / "public.json")
    printed = snarkjs.run("zkey", "export", "soliditycalldata", work / "public.json", work / "proof.json")
    a, b, c, inputs = json.loads(f"[{printed.strip()}]")
    args: Args = (
        [int(v, 16) for v in a],
        [[int(v, 16) for v in pair] for pair in b],
        [int(v, 16) for v in c],
        [int(v, 16) for v in inputs],
    )
    assert args[3] == [int(v) for v in public]
    # The same arguments from our own reading of the proof: calldata() swaps B's halves as snarkjs does.
    assert calldata(sj.proof_from_json(proof_json), [int(v) for v in public]) == args

    assert (
        verifier_gen.main([str(work / "vk.json"), str(work / "Verifier.sol"), "--name", "SnarkjsVerifier"])
        == 0
    )
    abi, bytecode = verifier_gen.compile_solidity((work / "Verifier.sol").read_text(), "SnarkjsVerifier")
    verifier = verifier_gen.deploy_compiled(chain_a, abi, bytecode, "SnarkjsVerifier")
    assert _verify(verifier, args)
    assert not _verify(verifier, (args[0], args[1], args[2], [args[3][0] ^ 1, *args[3][1:]]))
