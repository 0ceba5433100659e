"""Key generation: a development setup from a seed.

Groth16's setup draws the "toxic waste" τ, α, β, γ, δ and publishes points built from them; whoever knows
them can prove anything. Here they are derived from a seed, so anyone with the seed can forge proofs:
this setup is for devnets and tests only. `setup` refuses to run unless the caller says so, and every key
it makes carries `development=True`, which the .zkey and JSON writers and the generated Solidity verifier
label "NOT FOR PRODUCTION". For anything else use a key from a real ceremony (snarkjs powers of tau and
phase-2 contributions), read with `proofs.formats.zkey.read`.

The keys are exactly what snarkjs's `groth16 setup` would derive from the same secrets (same QAP, same
extra public rows, same H basis, see qap.py), so snarkjs proves with them and verifies their proofs.
"""

from __future__ import annotations

import hashlib

import numpy as np
from py_ecc import optimized_bn128 as bn

from proofs.bn254 import field
from proofs.bn254.curve import g1_points
from proofs.bn254.msm import batch_mul_g1, batch_mul_g2
from proofs.field import R
from proofs.groth16 import qap
from proofs.groth16.keys import G1Point, G2Point, ProvingKey, VerifyingKey, g1_from_py_ecc, g2_from_py_ecc
from proofs.r1cs.builder import R1CS


class SetupRefused(ValueError):
    """A seeded setup was asked for without saying it is for development."""


def _secret(seed: bytes, name: str) -> int:
    """A nonzero scalar derived from the seed, independently for each of τ, α, β, γ, δ: 512 bits of
    sha256 output reduced into [1, r)."""
    first = hashlib.sha256(b"xrelay development setup\x00" + name.encode() + b"\x00" + seed).digest()
    return int.from_bytes(first + hashlib.sha256(first).digest(), "big") % (R - 1) + 1


def _g1(k: int) -> G1Point:
    return g1_from_py_ecc(bn.multiply(bn.G1, k))


def _g2(k: int) -> G2Point:
    return g2_from_py_ecc(bn.multiply(bn.G2, k))


G1_GENERATOR = _g1(1)
G2_GENERATOR = _g2(1)


def _scaled(values: list[int], factor: int) -> np.ndarray:
    return field.limbs([v * factor % R for v in values])


def setup(r1cs: R1CS, *, seed: bytes, development: bool = False) -> ProvingKey:
    """The proving key (holding its verifying key) of `r1cs` for the toxic waste derived from `seed`.
    Refused unless `development=True`: anyone who knows the seed can forge proofs for this key."""
    if not development:
        raise SetupRefused(
            "a setup from a seed is for development only (anyone with the seed can forge proofs): "
            "pass development=True for devnets and tests, or use a ceremony's .zkey "
            "(proofs.formats.zkey.read) for anything else"
        )
    tau, alpha, beta, gamma, delta = (_secret(seed, x) for x in ("tau", "alpha", "beta", "gamma", "delta"))
    domain_size = qap.domain_size(r1cs)
    at_tau = qap.evaluate_at(r1cs, tau)
    a, b, c = field.ints(at_tau.a), field.ints(at_tau.b), field.ints(at_tau.c)
    n_fixed = r1cs.n_public + 1
    # βAᵢ(τ) + αBᵢ(τ) + Cᵢ(τ): over γ for the public wires (IC), over δ for the private ones (C query).
    k = [(beta * ai + alpha * bi + ci) % R for ai, bi, ci in zip(a, b, c, strict=True)]
    gamma_inv, delta_inv = pow(gamma, -1, R), pow(delta, -1, R)
    ic = batch_mul_g1(G1_GENERATOR, _scaled(k[:n_fixed], gamma_inv))
    vk = VerifyingKey(
        alpha_1=_g1(alpha),
        beta_2=_g2(beta),
        gamma_2=_g2(gamma),
        delta_2=_g2(delta),
        ic=tuple(g1_points(ic)),
        development=True,
    )
    h = field.ints(qap.h_lagrange(tau, domain_size))
    return ProvingKey(
        vk=vk,
        n_vars=r1cs.n_wires,
        domain_size=domain_size,
        beta_1=_g1(beta),
        delta_1=_g1(delta),
        a_query=batch_mul_g1(G1_GENERATOR, at_tau.a),
        b1_query=batch_mul_g1(G1_GENERATOR, at_tau.b),
        b2_query=batch_mul_g2(G2_GENERATOR, at_tau.b),
        c_query=batch_mul_g1(G1_GENERATOR, _scaled(k[n_fixed:], delta_inv)),
        h_query=batch_mul_g1(G1_GENERATOR, _scaled(h, delta_inv)),
        coefficients=qap.coefficients(r1cs),
    )
