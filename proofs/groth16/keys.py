"""The proving key and the verifying key.

Points outside the kernels are plain integers in affine form:

- a G1 point is (x, y); (0, 0) is the point at infinity, as the EVM precompiles and snarkjs write it;
- a G2 point is ((x.c0, x.c1), (y.c0, y.c1)) where an Fp2 element is c0 + c1·u, real part first: py_ecc's
  order. EIP-197 (and so Solidity) writes the imaginary part first; snarkjs's JSON writes c0 first.

The proving key's point tables are numpy arrays in the .zkey's own layout (affine, Montgomery form,
four little-endian 64-bit limbs per coordinate, infinity as all zeros) so that a .zkey is read without
conversion and the kernels use them as they are.

`read_proving_key` reads a .zkey for proving: `proofs.formats.zkey.read` from a mapping of the file.
"""

from __future__ import annotations

import dataclasses
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from proofs.bn254.field import P

G1Point = tuple[int, int]
G2Point = tuple[tuple[int, int], tuple[int, int]]

G1_INFINITY: G1Point = (0, 0)
G2_INFINITY: G2Point = ((0, 0), (0, 0))


def _py_ecc() -> Any:
    """py_ecc's optimized_bn128, imported on first use: the prover never needs it (70 ms of its start)."""
    from py_ecc import optimized_bn128  # noqa: PLC0415

    return optimized_bn128


def g1_to_py_ecc(point: G1Point) -> Any:
    """py_ecc's (optimized_bn128) projective form of a G1 point."""
    bn = _py_ecc()
    if point == G1_INFINITY:
        return bn.Z1
    return (bn.FQ(point[0]), bn.FQ(point[1]), bn.FQ.one())


def g2_to_py_ecc(point: G2Point) -> Any:
    """py_ecc's projective form of a G2 point (FQ2([c0, c1]) is c0 + c1·u)."""
    bn = _py_ecc()
    if point == G2_INFINITY:
        return bn.Z2
    (x0, x1), (y0, y1) = point
    return (bn.FQ2([x0, x1]), bn.FQ2([y0, y1]), bn.FQ2.one())


def g1_from_py_ecc(point: Any) -> G1Point:
    """A py_ecc G1 point as plain affine integers."""
    bn = _py_ecc()
    if bn.is_inf(point):
        return G1_INFINITY
    x, y = bn.normalize(point)
    return (int(x), int(y))


def g2_from_py_ecc(point: Any) -> G2Point:
    """A py_ecc G2 point as plain affine integers, real part first."""
    bn = _py_ecc()
    if bn.is_inf(point):
        return G2_INFINITY
    x, y = bn.normalize(point)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


DEVELOPMENT_LABEL = "xrelay development setup from a known seed: NOT FOR PRODUCTION"
"""The text that labels a development key wherever it is written (.zkey section, JSON field)."""

# The twist's constant: y² = x³ + 3/(9 + u) over Fp2, i.e. 3·(9 - u)/82.
_INV_82 = pow(82, -1, P)
_B2 = (27 * _INV_82 % P, -3 * _INV_82 % P)


def _fp2_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return ((a[0] * b[0] - a[1] * b[1]) % P, (a[0] * b[1] + a[1] * b[0]) % P)


def g1_on_curve(point: G1Point) -> bool:
    """Whether `point` is a point of G1: both coordinates in [0, P) with y² = x³ + 3, or the point at
    infinity (0, 0). G1 has cofactor 1, so a point on the curve is in the group of order r."""
    x, y = point
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (x, y) == G1_INFINITY or (y * y - x * x * x - 3) % P == 0


def g2_on_curve(point: G2Point) -> bool:
    """Whether `point` is on the twist y² = x³ + 3/(9 + u) over Fp2 (every coordinate in [0, P)), or the
    point at infinity. This is NOT a subgroup check: the twist's group has a large cofactor, and
    proofs.groth16.verifier checks the subgroup too."""
    (x0, x1), (y0, y1) = point
    if not all(0 <= c < P for c in (x0, x1, y0, y1)):
        return False
    if point == G2_INFINITY:
        return True
    x, y = (x0, x1), (y0, y1)
    lhs = _fp2_mul(y, y)
    x3 = _fp2_mul(_fp2_mul(x, x), x)
    return lhs == ((x3[0] + _B2[0]) % P, (x3[1] + _B2[1]) % P)


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
    contributions: bytes | None = field(default=None, compare=False, repr=False)
    """The .zkey's section 10 (the ceremony's circuit hash and its contributions) exactly as read, kept
    so that a key read from a file is written back byte for byte; None for a key made here."""

    @property
    def n_public(self) -> int:
        return self.vk.n_public

    @property
    def development(self) -> bool:
        return self.vk.development


def read_proving_key(path: Path | str) -> ProvingKey:
    """The proving key of a .zkey file, as `proofs.formats.zkey.read` reads it (the same checks, the same
    errors), from a read-only mapping of the file instead of its bytes. `zkey.read` holds the file's
    bytes, a copy of every section and the key's arrays at once, three times the key; here the sections
    are views of the mapping, so the peak is the mapped pages and the arrays, and the mapping goes as
    soon as the key is read (its pages stay in the page cache, shared, for the next reader)."""
    from proofs.formats import zkey  # noqa: PLC0415  (proofs.formats.zkey imports this module)

    source = str(path)
    with open(path, "rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped: zkey says what it is not
            return zkey.from_bytes(b"", source)
    view = memoryview(mapped)
    # zkey.from_bytes slices, unpacks and copies its data, so a memoryview serves as bytes: its sections
    # are views, not copies. The one it keeps (the contributions) is copied out here; the mapping is
    # unmapped when its last view goes, on return (or with the error raised).
    pk = zkey.from_bytes(cast(bytes, view), source)
    contributions = None if pk.contributions is None else bytes(pk.contributions)
    return dataclasses.replace(pk, contributions=contributions)
