"""Off-chain Groth16 verification with py_ecc, one proof or a batch.

A proof (A, B, C) of public inputs x₁..xₙ is valid for a key when

    e(A, B) = e(α, β) · e(vk_x, γ) · e(C, δ),   vk_x = IC₀ + Σ xᵢ·ICᵢ

checked as e(-A, B) · e(α, β) · e(vk_x, γ) · e(C, δ) = 1: the Miller loops of the pairs multiplied
together and ONE final exponentiation (py_ecc's optimized_bn128 does the Miller loop and the final
exponentiation separately). The Miller loop of (α, β) depends only on the key and is computed once per
key (cached), so a proof costs three Miller loops and one final exponentiation.

`verify_batch` checks k proofs of one key at once with random weights ρᵢ (128 bits, from a
cryptographic RNG by default):

    Π e(-ρᵢ·Aᵢ, Bᵢ) · e(α, β)^(Σρᵢ) · e(Σ ρᵢ·vk_xᵢ, γ) · e(Σ ρᵢ·Cᵢ, δ) = 1

k + 2 Miller loops, one final exponentiation. If any proof is invalid the product is 1 with probability
at most about 2^-128 over the weights, so a batch that passes means every proof in it is valid; a batch
that fails says only that at least one is not (verify them one by one to find which).

Points are checked before any pairing: proof points and key points on their curves, the G2 points in
the subgroup of order r (the twist has a cofactor; G1 has none), and no point at infinity except that the
proof points A, B, C must not be infinity either (an honest proof's are not, except with negligible
probability). The key's checks run once per key (cached).

What is a "no" and what is an error:

- `verify` and `verify_batch` return False for a proof that does not verify for any reason: the pairing
  check fails, a point is not on its curve or not in its subgroup or is at infinity, a public input is
  not in [0, r). That is the answer for anything an untrusted prover can send.
- They raise VerifierError (a ValueError) for a caller's mistake: a number of public inputs other than
  the key's n_public, a key that is malformed (points off their curves or groups, an IC point at
  infinity), an empty batch.

Measured on the 2-core development machine (py_ecc 8, CPython 3.11, shared with other jobs at a load of
2 to 4): 0.65 to 0.95 s per proof, plus about 0.4 s at a key's first use (its checks, three G2 subgroup
checks, and its (α, β) Miller loop); 1.7 to 3.0 s for a batch of 8, against 5 to 7 s one by one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

from py_ecc import optimized_bn128 as bn
from py_ecc.optimized_bn128.optimized_pairing import cast_point_to_fq12, miller_loop

from proofs.field import R
from proofs.groth16.keys import (
    G1_INFINITY,
    G2_INFINITY,
    G1Point,
    G2Point,
    VerifyingKey,
    g1_on_curve,
    g1_to_py_ecc,
    g2_on_curve,
    g2_to_py_ecc,
)
from proofs.groth16.proof import Proof

WEIGHT_BITS = 128


class VerifierError(ValueError):
    """verify or verify_batch was called wrongly: a malformed key, or the wrong number of inputs."""


class RandomBits(Protocol):
    """What `verify_batch` draws its weights from: random.Random or secrets.SystemRandom."""

    def getrandbits(self, k: int, /) -> int: ...


# --- points in py_ecc's form ----------------------------------------------------------------------------

PyG1 = Any  # (FQ, FQ, FQ): projective
PyG2 = Any  # (FQ2, FQ2, FQ2)


def g2_in_subgroup(point: G2Point) -> bool:
    """Whether a point on the twist is in G2, the subgroup of order r: r·P = ∞ (~30 ms in py_ecc)."""
    return bool(bn.is_inf(bn.multiply(g2_to_py_ecc(point), R)))


def _valid_g1(point: G1Point) -> bool:
    return point != G1_INFINITY and g1_on_curve(point)


def _valid_g2(point: G2Point) -> bool:
    return point != G2_INFINITY and g2_on_curve(point) and g2_in_subgroup(point)


def _miller(q: PyG2, p: PyG1) -> Any:
    """The Miller loop of the pair (P ∈ G1, Q ∈ G2), without the final exponentiation."""
    if bn.is_inf(q) or bn.is_inf(p):
        return bn.FQ12.one()
    return miller_loop(bn.twist(q), cast_point_to_fq12(p), final_exponentiate=False)


def _msm_g1(points: Sequence[PyG1], scalars: Sequence[int]) -> PyG1:
    total = bn.Z1
    for point, k in zip(points, scalars, strict=True):
        if k:
            total = bn.add(total, bn.multiply(point, k))
    return total


# --- the key ------------------------------------------------------------------------------------------


class _PreparedKey:
    """A checked key in py_ecc's form, with the Miller loop of (α, β)."""

    def __init__(self, vk: VerifyingKey) -> None:
        for name, point in (("alpha_1", vk.alpha_1), *((f"ic[{i}]", p) for i, p in enumerate(vk.ic))):
            if not _valid_g1(point):
                raise VerifierError(
                    f"the verifying key's {name} {point} is not a point of G1 (or is infinity)"
                )
        for name, point2 in (("beta_2", vk.beta_2), ("gamma_2", vk.gamma_2), ("delta_2", vk.delta_2)):
            if not _valid_g2(point2):
                raise VerifierError(
                    f"the verifying key's {name} {point2} is not a point of G2 (or is infinity)"
                )
        self.n_public = vk.n_public
        self.ic = [g1_to_py_ecc(p) for p in vk.ic]
        self.gamma = g2_to_py_ecc(vk.gamma_2)
        self.delta = g2_to_py_ecc(vk.delta_2)
        self.alpha_beta = _miller(g2_to_py_ecc(vk.beta_2), g1_to_py_ecc(vk.alpha_1))

    def check_count(self, public_inputs: Sequence[int], which: str = "") -> None:
        if len(public_inputs) != self.n_public:
            raise VerifierError(
                f"{which}{len(public_inputs)} public inputs given; the key has {self.n_public}"
            )


@lru_cache(maxsize=16)
def _prepare(vk: VerifyingKey) -> _PreparedKey:
    return _PreparedKey(vk)


def check_verifying_key(vk: VerifyingKey) -> None:
    """Raise VerifierError unless every point of the key is in its group and not at infinity."""
    _prepare(vk)


def _inputs_valid(public_inputs: Sequence[int]) -> bool:
    return all(isinstance(x, int) and 0 <= x < R for x in public_inputs)


def _proof_valid(proof: Proof) -> bool:
    return _valid_g1(proof.a) and _valid_g1(proof.c) and _valid_g2(proof.b)


def _is_one(f: Any) -> bool:
    return bool(bn.final_exponentiate(f) == bn.FQ12.one())


def _weight(source: RandomBits) -> int:
    while True:
        w = source.getrandbits(WEIGHT_BITS)
        if w:
            return w


# --- verification -------------------------------------------------------------------------------------


def verify(vk: VerifyingKey, public_inputs: Sequence[int], proof: Proof) -> bool:
    """Whether `proof` is a valid proof of `public_inputs` (in wire order) for `vk`. False for any
    invalid proof or input value; VerifierError for a malformed key or the wrong number of inputs."""
    key = _prepare(vk)
    key.check_count(public_inputs)
    if not _inputs_valid(public_inputs) or not _proof_valid(proof):
        return False
    vk_x = bn.add(key.ic[0], _msm_g1(key.ic[1:], public_inputs))
    f = (
        _miller(g2_to_py_ecc(proof.b), bn.neg(g1_to_py_ecc(proof.a)))
        * key.alpha_beta
        * _miller(key.gamma, vk_x)
        * _miller(key.delta, g1_to_py_ecc(proof.c))
    )
    return _is_one(f)


def verify_batch(
    vk: VerifyingKey,
    items: Sequence[tuple[Sequence[int], Proof]],
    rng: RandomBits | None = None,
) -> bool:
    """Whether every (public inputs, proof) in `items` is valid for `vk`, checked together (see the
    module's docstring). `rng` draws the 128-bit weights: secrets.SystemRandom() unless given (give a
    seeded random.Random only in tests: weights an attacker can predict make the check unsound).
    False if any proof or input value is invalid; VerifierError for a malformed key, a wrong number of
    inputs in any item, or no items."""
    if not items:
        raise VerifierError("an empty batch: there is no proof to verify")
    key = _prepare(vk)
    for i, (public_inputs, _) in enumerate(items):
        key.check_count(public_inputs, f"item {i}: ")
    if not all(_inputs_valid(x) and _proof_valid(p) for x, p in items):
        return False
    source: RandomBits = secrets.SystemRandom() if rng is None else rng
    weights = [_weight(source) for _ in items]
    # Σ ρᵢ·vk_xᵢ = (Σ ρᵢ)·IC₀ + Σⱼ (Σᵢ ρᵢ·xᵢⱼ)·ICⱼ: one small MSM over the IC points.
    total = sum(weights) % R
    per_input = [
        sum(w * x[j] for w, (x, _) in zip(weights, items, strict=True)) % R for j in range(key.n_public)
    ]
    vk_x = _msm_g1(key.ic, [total, *per_input])
    c = _msm_g1([g1_to_py_ecc(p.c) for _, p in items], weights)
    f = key.alpha_beta**total * _miller(key.gamma, vk_x) * _miller(key.delta, c)
    for w, (_, proof) in zip(weights, items, strict=True):
        f = f * _miller(g2_to_py_ecc(proof.b), bn.neg(bn.multiply(g1_to_py_ecc(proof.a), w)))
    return _is_one(f)
