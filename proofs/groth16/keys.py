"""The proving key and the verifying key.

Points outside the kernels are plain integers in affine form:

- a G1 point is (x, y); (0, 0) is the point at infinity, as the EVM precompiles and snarkjs write it;
- a G2 point is ((x.c0, x.c1), (y.c0, y.c1)) where an Fp2 element is c0 + c1·u, real part first: py_ecc's
  order. EIP-197 (and so Solidity) writes the imaginary part first; snarkjs's JSON writes c0 first.

The proving key's point tables are numpy arrays in the .zkey's own layout (affine, Montgomery form,
four little-endian 64-bit limbs per coordinate, infinity as all zeros) so that a .zkey is read without
conversion and the kernels use them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

G1Point = tuple[int, int]
G2Point = tuple[tuple[int, int], tuple[int, int]]

G1_INFINITY: G1Point = (0, 0)
G2_INFINITY: G2Point = ((0, 0), (0, 0))


@dataclass(frozen=True)
class VerifyingKey:
    """[α]₁, [β]₂, [γ]₂, [δ]₂ and the IC points [(β·Aᵢ(τ) + α·Bᵢ(τ) + Cᵢ(τ))/γ]₁, one for the constant
    wire and one per public input, in wire order. `development` marks a key from a dev setup (a known
    seed): such a key proves nothing and must never be used outside devnets and tests."""

    alpha_1: G1Point
    beta_2: G2Point
    gamma_2: G2Point
    delta_2: G2Point
    ic: tuple[G1Point, ...]
    development: bool = False

    @property
    def n_public(self) -> int:
        return len(self.ic) - 1


@dataclass(frozen=True)
class Coefficients:
    """The QAP's A and B matrices as the .zkey stores them (section 4), one entry per nonzero coefficient:
    `matrix` 0 for A, 1 for B; `constraint` the row; `signal` the wire; `value` (m, 4) uint64 in Montgomery
    form. Rows n_constraints .. n_constraints + n_public are snarkjs's extra rows binding each public
    input (and the constant wire) in A. C is not stored: the prover computes it as A·B row by row."""

    matrix: np.ndarray
    constraint: np.ndarray
    signal: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class ProvingKey:
    """Everything the prover needs (the .zkey's sections 2 to 9). Tables, each (count, 2, 4) for G1 and
    (count, 2, 2, 4) for G2:

    - a_query:  [Aᵢ(τ)]₁ for every wire;
    - b1_query: [Bᵢ(τ)]₁ and b2_query: [Bᵢ(τ)]₂ for every wire;
    - c_query:  [(β·Aᵢ(τ) + α·Bᵢ(τ) + Cᵢ(τ))/δ]₁ for the private wires (n_public + 1 onwards);
    - h_query:  [Lᵢ(τ)/δ]₁ for i < domain_size, where Lᵢ is the Lagrange basis polynomial of the odd
      point ω^(2i+1) of the domain of size 2·domain_size (snarkjs's H, see qap.py).
    """

    vk: VerifyingKey
    n_vars: int
    domain_size: int
    beta_1: G1Point
    delta_1: G1Point
    a_query: np.ndarray
    b1_query: np.ndarray
    b2_query: np.ndarray
    c_query: np.ndarray
    h_query: np.ndarray
    coefficients: Coefficients

    @property
    def n_public(self) -> int:
        return self.vk.n_public

    @property
    def development(self) -> bool:
        return self.vk.development
