"""The R1CS → QAP reduction, snarkjs's way, for the setup (`evaluate_at`, `h_lagrange`) and the prover
(`coefficients`, `evaluate_rows`, `h_values`).

What snarkjs does, from its source (snarkjs 0.7.x, src/zkey_new.js, src/groth16_prove.js; ffjavascript
src/wasm_field1.js and src/engine_fft.js; wasmcurves src/build_fft.js and src/build_qap.js):

- Domain. zkey_new.js: cirPower = log2(nConstraints + nPublic) + 1 with log2 rounding down, so the domain
  has n = 2^cirPower points, the smallest power of two above nConstraints + nPublic, i.e. at least
  nConstraints + nPublic + 1 rows; ω_n is ffjavascript's root w[cirPower] = 5^((r - 1) / n) (ntt.py).
- Rows. Row k < nConstraints is constraint k; row nConstraints + s, for s = 0..nPublic, has the single
  coefficient 1 for wire s in A (B and C are zero there). These rows make the A polynomials of the
  constant wire and the public inputs linearly independent (the IC points then bind the public inputs).
  Wire i's polynomials are Aᵢ(X) = Σ_k A[k][i]·L_k(X) over the Lagrange basis L_k of the domain (the
  .ptau's "Lagrange" sections are ifft's of the powers of τ: L_k(τ) = (τⁿ - 1)/n · ω^k/(τ - ω^k)).
- Section 4 of a .zkey ("coefficients"): one entry (matrix, constraint, signal, value) per nonzero of A
  (matrix 0) and B (matrix 1), constraint by constraint, A's before B's, then the extra rows; C is never
  stored. NOTE the encoding of value: zkey_new.js writes Fr.toRprLE(Fr.mul(Fr.fromRprLE(c), R2r)), the
  bytes of c·2^512 mod r, so that the prover's Montgomery product with a PLAIN witness value
  (build_qap.js qap_buildABC) gives Montgomery(c·w). `Coefficients.value` here is Montgomery(c) =
  c·2^256 mod r, one factor 2^256 less: a .zkey reader turns the file's limbs into `value` with
  field.from_montgomery, and a writer does the reverse with field.to_montgomery.
- H. groth16_prove.js builds a_k = Σᵢ A[k][i]·wᵢ and b_k likewise for k < n, sets c_k = a_k·b_k (not from
  the C matrix), then for each of a, b, c: ifft, batchApplyKey(1, inc) (coefficient j times inc^j),
  fft, with inc = Fr.w[cirPower + 1] = ω_{2n} (or Fr.shift = 25 when cirPower = 28, the 2-adicity);
  h_i = A(x_i)·B(x_i) - C(x_i) at x_i = inc·ω_n^i, sent out of Montgomery form as the scalars of the
  H multiexp. zkey_new.js (writeHs) takes the H points from the .ptau's Lagrange section of size 2n, the
  odd entries: [L^{2n}_{2i+1}(τ)]₁, divided by δ by the phase-2 contributions. Since A·B - C has degree
  < 2n and vanishes on the even points ω_{2n}^{2i} = ω_n^i (for a satisfying witness),
  Σ h_i·L^{2n}_{2i+1}(τ) = (A·B - C)(τ) = H(τ)·Z(τ): the usual Groth16 term, without ever dividing by Z.
  One wrinkle (powersoftau_preparephase2.js): a .ptau of power p holds τ^0..τ^(2^(p+1) - 2) in G1, so
  its Lagrange section of size 2^(p+1) is built with a zero in place of τ^(2^(p+1) - 1); when the
  domain is exactly 2^p, the H points are that truncated basis (`h_lagrange(..., truncated=True)`).
  Both give the same Σ hᵢ·Hᵢ, since A·B - C has degree at most 2n - 2.

tests/test_qap.py checks all of this against snarkjs itself (0.7.6, with ffjavascript 0.3.1): it writes
a .ptau for a known τ, α, β, runs `powersoftau prepare phase2` and `groth16 setup`, and finds the IC, A,
B₁, C and H points of evaluate_at and h_lagrange byte for byte in the .zkey.

For the general coset x_i = g·ω_n^i (g = ω_{2n}, or 25 at n = 2^28) the H scalars are the Lagrange basis
of the 2n points {ω_n^i} and {g·ω_n^i} together, at the coset points:
L_i(τ) = (τⁿ - 1)(τⁿ - gⁿ) / ((gⁿ - 1)·n·gⁿ) · x_i/(τ - x_i), which for gⁿ = -1 is
(τ^{2n} - 1)/(2n) · x_i/(τ - x_i) = L^{2n}_{2i+1}(τ). (At n = 2^28 the prover follows snarkjs's shift;
that snarkjs's .ptau holds this basis there is not checked.)

Arrays are (count, 4) uint64, four little-endian limbs per element; each function says whether Montgomery
(x·2^256 mod r) or plain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from proofs.bn254 import ntt
from proofs.bn254.field import (
    FR_ONE,
    fr_add,
    fr_mul,
    fr_sub,
    from_montgomery,
    is_zero,
    limbs,
    load,
    store,
    to_montgomery,
)
from proofs.field import R
from proofs.groth16.keys import Coefficients
from proofs.r1cs.builder import R1CS

MAX_DOMAIN_SIZE = ntt.MAX_SIZE
"""2^28: Fr's 2-adicity bounds the domain."""

_CHUNK = 1 << 12


class QAPError(ValueError):
    """A circuit, coefficient table or domain size that the QAP cannot be built on."""


class DomainTooLarge(QAPError):
    """The circuit needs a domain of more than 2^28 points."""


class WitnessShapeError(QAPError):
    """A witness array of the wrong length, shape or type for the coefficients."""


def domain_size(r1cs: R1CS) -> int:
    """snarkjs's domain size: the smallest power of two above n_constraints + n_public (so at least
    n_constraints + n_public + 1 rows), at least 2."""
    rows = r1cs.n_constraints + r1cs.n_public + 1
    n = 1 << max(1, (rows - 1).bit_length())
    if n > MAX_DOMAIN_SIZE:
        raise DomainTooLarge(
            f"{r1cs.n_constraints} constraints and {r1cs.n_public} public inputs need {rows} QAP rows, "
            f"a domain of {n} points; BN254's scalar field has roots of unity for at most 2^28"
        )
    return n


def coset_shift(domain_size: int) -> int:
    """snarkjs's coset for H (plain int): ω_{2n}, so that the coset is the odd half of the domain of size
    2n, or ffjavascript's Fr.shift = 25 for n = 2^28, where there is no ω_{2n}."""
    ntt.log2_size(domain_size)
    if domain_size == MAX_DOMAIN_SIZE:
        return ntt.GENERATOR**2
    return ntt.root_of_unity(2 * domain_size)


# --- the R1CS as coefficient entries --------------------------------------------------------------------


def _entries(r1cs: R1CS, matrices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(matrix, constraint, signal, plain values) of A (0), B (1) and, if matrices == 3, C (2), constraint
    by constraint, then the extra rows of A for the constant wire and the public inputs."""
    mats: list[int] = []
    rows: list[int] = []
    sigs: list[int] = []
    vals: list[int] = []
    for k, constraint in enumerate(r1cs.constraints):
        for m in range(matrices):
            row = constraint[m]
            count = len(row.wires)
            mats += [m] * count
            rows += [k] * count
            sigs += row.wires
            vals += row.coeffs
    n_constraints = r1cs.n_constraints
    for s in range(r1cs.n_public + 1):
        mats.append(0)
        rows.append(n_constraints + s)
        sigs.append(s)
        vals.append(1)
    return (
        np.array(mats, dtype=np.uint32),
        np.array(rows, dtype=np.uint32),
        np.array(sigs, dtype=np.uint32),
        vals,
    )


def _distinct_montgomery(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(each distinct value once in Montgomery form, the index of each value among them (uint32)):
    circuits repeat a few coefficients (1, -1, Poseidon's constants) over and over."""
    if not values:
        return np.zeros((0, 4), dtype=np.uint64), _NO_INDEX
    index: dict[int, int] = {}
    ids = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.uint32, count=len(values))
    table: np.ndarray = to_montgomery(limbs(list(index)), R)
    return table, ids


def _montgomery_array(values: list[int]) -> np.ndarray:
    """The values in Montgomery form, converting each distinct value once."""
    table, ids = _distinct_montgomery(values)
    return table[ids] if values else table


_NO_INDEX = np.zeros(0, dtype=np.uint32)  # writable, as every index is: one kernel specialisation


class ValueTable:
    """Each distinct value once, as rows are added slice by slice (read_proving_key's compact
    coefficients): `add` gives each row's index in `values()`."""

    def __init__(self) -> None:
        self._slots = np.full(1 << 12, -1, dtype=np.int64)
        self._rows = np.empty((1 << 11, 4), dtype=np.uint64)
        self._count = 0

    def add(self, rows: np.ndarray) -> np.ndarray:
        """The index of each of `rows` ((n, 4) uint64) among the distinct values, new ones added."""
        rows = np.ascontiguousarray(rows, dtype=np.uint64)
        needed = self._count + rows.shape[0]
        if 2 * needed > self._slots.shape[0]:  # at most half full, so every probe ends soon
            capacity = 1 << (2 * needed - 1).bit_length()
            grown = np.empty((capacity // 2, 4), dtype=np.uint64)
            grown[: self._count] = self._rows[: self._count]
            self._rows, self._slots = grown, np.full(capacity, -1, dtype=np.int64)
            _intern(self._rows[: self._count], self._slots, self._rows, 0, np.empty(self._count, np.uint32))
        out = np.empty(rows.shape[0], dtype=np.uint32)
        self._count = _intern(rows, self._slots, self._rows, self._count, out)
        return out

    def values(self) -> np.ndarray:
        return self._rows[: self._count].copy()


@njit(cache=True)
def _intern(rows, slots, table, count, out):  # type: ignore[no-untyped-def]
    """out[i] = the index of rows[i] in table[:count], appending it when new; slots is an open-addressing
    hash of the table's rows (-1 empty, a power of two long, at most half full). Returns the new count."""
    mask = slots.shape[0] - 1
    for i in range(rows.shape[0]):
        a, b, c, d = rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3]
        h = (a ^ (b * np.uint64(0x9E3779B97F4A7C15)) ^ (c * np.uint64(0xC2B2AE3D27D4EB4F)) ^ d) * np.uint64(
            0x165667B19E3779F9
        )
        slot = np.int64(h >> np.uint64(32)) & mask
        while True:
            s = slots[slot]
            if s < 0:
                table[count, 0], table[count, 1], table[count, 2], table[count, 3] = a, b, c, d
                slots[slot] = count
                out[i] = count
                count += 1
                break
            if table[s, 0] == a and table[s, 1] == b and table[s, 2] == c and table[s, 3] == d:
                out[i] = s
                break
            slot = (slot + 1) & mask
    return count


def coefficients(r1cs: R1CS) -> Coefficients:
    """The .zkey's section 4 for this circuit, in snarkjs's order: the A and B entries constraint by
    constraint (A's first), then the extra A rows n_constraints + s for s = 0..n_public (wire s,
    coefficient 1). Values in Montgomery form (see the module docstring for the file's encoding)."""
    domain_size(r1cs)
    matrix, constraint, signal, values = _entries(r1cs, 2)
    return Coefficients(matrix=matrix, constraint=constraint, signal=signal, value=_montgomery_array(values))


# --- sparse products ------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _accumulate(matrix, out_index, in_index, value, value_index, vec, out, bounds):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """out[matrix[e]][out_index[e]] += value[v]·vec[in_index[e]] over the entries e, Montgomery, where v is
    value_index[e] or, when value_index is empty, e. Each task owns the outputs out_index in
    [bounds[p], bounds[p + 1]) and scans every entry, so no two threads write the same row and the
    entries may come in any order."""
    n_mats = out.shape[0]
    count = matrix.shape[0]
    indexed = value_index.shape[0] > 0
    for p in prange(bounds.shape[0] - 1):
        lo = bounds[p]
        hi = bounds[p + 1]
        for e in range(count):
            k = np.int64(out_index[e])
            m = np.int64(matrix[e])
            if k < lo or k >= hi or m >= n_mats:
                continue
            target = out[m]
            v = np.int64(value_index[e]) if indexed else e
            x = fr_mul(load(value, v), load(vec, np.int64(in_index[e])))
            store(target, k, fr_add(load(target, k), x))


def _bounds(out_index: np.ndarray, n_out: int) -> np.ndarray:
    """Split [0, n_out) into one range per thread with about as many entries in each (counted on a
    sample of at most 2^16 entries: a histogram of millions costs more than the imbalance)."""
    parts = max(1, numba.get_num_threads())
    bounds = np.zeros(parts + 1, dtype=np.int64)
    bounds[-1] = n_out
    if parts > 1 and out_index.shape[0]:
        sample = out_index[:: max(1, out_index.shape[0] >> 16)]
        cumulative = np.cumsum(np.bincount(sample, minlength=n_out))
        targets = cumulative[-1] * np.arange(1, parts) // parts
        bounds[1:-1] = np.searchsorted(cumulative, targets, side="right")
    return bounds


def _check_coefficients(coeffs: Coefficients, domain_size: int) -> int:
    """Checks the arrays' shapes and that every row fits the domain; returns 1 + the largest signal."""
    m = coeffs.matrix.shape[0]
    index = coeffs.value_index
    values = coeffs.value.shape[0] if index is not None and coeffs.value.ndim == 2 else m
    if (
        coeffs.constraint.shape != (m,)
        or coeffs.signal.shape != (m,)
        or coeffs.value.shape != (values, 4)
        or (index is not None and index.shape != (m,))
    ):
        raise QAPError(
            f"coefficient arrays disagree: matrix {coeffs.matrix.shape}, constraint "
            f"{coeffs.constraint.shape}, signal {coeffs.signal.shape}, value {coeffs.value.shape}, value "
            f"index {None if index is None else index.shape} (want (m,), (m,), (m,), (m, 4), None; or "
            "(m,), (m,), (m,), (k, 4), (m,))"
        )
    if index is not None and m and int(index.max()) >= values:
        raise QAPError(f"a coefficient's value index is {int(index.max())}, past the {values} values")
    if m and int(coeffs.constraint.max()) >= domain_size:
        raise QAPError(
            f"a coefficient is in row {int(coeffs.constraint.max())}, "
            f"outside the domain of {domain_size} rows"
        )
    if m and int(coeffs.matrix.max()) > 1:
        raise QAPError(f"coefficient matrix {int(coeffs.matrix.max())}: only 0 (A) and 1 (B) are stored")
    return int(coeffs.signal.max()) + 1 if m else 0


def _check_witness(witness: np.ndarray, needed: int, n_vars: int | None) -> np.ndarray:
    if not isinstance(witness, np.ndarray) or witness.ndim != 2 or witness.shape[1] != 4:
        shape = getattr(witness, "shape", type(witness).__name__)
        raise WitnessShapeError(f"a witness is an (n_vars, 4) uint64 array of Montgomery limbs, not {shape}")
    if witness.dtype != np.uint64:
        raise WitnessShapeError(f"a witness array holds uint64 limbs, not {witness.dtype}")
    if n_vars is not None and witness.shape[0] != n_vars:
        raise WitnessShapeError(f"the witness has {witness.shape[0]} wires; the circuit has {n_vars}")
    if witness.shape[0] < needed:
        raise WitnessShapeError(
            f"the witness has {witness.shape[0]} wires but the coefficients use wire {needed - 1}"
        )
    return np.ascontiguousarray(witness)


def evaluate_rows(
    coeffs: Coefficients, witness: np.ndarray, domain_size: int, *, n_vars: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with a_k = Σᵢ A[k][i]·wᵢ and b_k = Σᵢ B[k][i]·wᵢ for every row k of the domain (zero past
    the last row): (domain_size, 4) Montgomery arrays, from a (n_vars, 4) Montgomery witness. `n_vars`,
    when given, is the exact witness length required (a key's n_vars); without it the witness must at
    least cover every wire the coefficients use."""
    ntt.log2_size(domain_size)
    needed = _check_coefficients(coeffs, domain_size)
    w = _check_witness(witness, needed, n_vars)
    out = np.zeros((2, domain_size, 4), dtype=np.uint64)
    index = _NO_INDEX if coeffs.value_index is None else coeffs.value_index.astype(np.uint32, copy=False)
    _accumulate(
        coeffs.matrix.astype(np.uint8, copy=False),  # 0 or 1 (checked): one kernel for every key
        coeffs.constraint,
        coeffs.signal,
        np.ascontiguousarray(coeffs.value, dtype=np.uint64),
        np.ascontiguousarray(index),
        w,
        out,
        _bounds(coeffs.constraint, domain_size),
    )
    return out[0], out[1]


# --- the prover's H -------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _products(a, b):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    out = np.empty_like(a)
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            store(out, i, fr_mul(load(a, i), load(b, i)))
    return out


@njit(cache=True, parallel=True)
def _join(a, b, c):  # type: ignore[no-untyped-def]
    """c = plain a·b - c (from Montgomery inputs), in place."""
    n = a.shape[0]
    one = (np.uint64(1), np.uint64(0), np.uint64(0), np.uint64(0))
    for t in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(t * _CHUNK, min(n, (t + 1) * _CHUNK)):
            store(c, i, fr_mul(fr_sub(fr_mul(load(a, i), load(b, i)), load(c, i)), one))


def h_values(
    coeffs: Coefficients,
    witness: np.ndarray,
    domain_size: int,
    *,
    n_vars: int | None = None,
    shift: int | None = None,
) -> np.ndarray:
    """The prover's H scalars: h_i = A(x_i)·B(x_i) - C(x_i) at x_i = g·ω_n^i, i < n, where A, B, C
    interpolate a_k, b_k and c_k = a_k·b_k over the domain (see the module docstring): a (domain_size, 4)
    PLAIN array, ready as the scalars of the MSM with the H points. The witness is (n_vars, 4)
    Montgomery. g is snarkjs's `coset_shift(domain_size)` unless `shift` (plain) says otherwise."""
    a, b = evaluate_rows(coeffs, witness, domain_size, n_vars=n_vars)
    c: np.ndarray = _products(a, b)
    g = coset_shift(domain_size) if shift is None else shift % R
    for poly in (a, b, c):
        ntt.coset_values_inplace(poly, g)
    _join(a, b, c)  # h in c's rows (its own array: a and b, one array, go on return)
    return c


# --- the setup: the polynomials at τ --------------------------------------------------------------------


@dataclass(frozen=True)
class QAPEvaluation:
    """Aᵢ(τ), Bᵢ(τ), Cᵢ(τ) for every wire i of a circuit: (n_wires, 4) PLAIN arrays, over the QAP with
    snarkjs's extra public rows, on the domain of `domain_size` points."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    domain_size: int


@njit(cache=True, parallel=True)
def _differences(tau, points):  # type: ignore[no-untyped-def]
    n = points.shape[0]
    out = np.empty_like(points)
    for t in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(t * _CHUNK, min(n, (t + 1) * _CHUNK)):
            store(out, i, fr_sub(tau, load(points, i)))
    return out


@njit(cache=True, parallel=True)
def _lagrange_finish(points, inverses, factor, correction, to_plain):  # type: ignore[no-untyped-def]
    """factor·x_i·inverses[i] - correction·x_i, with 1 in place of the first term where inverses[i] = 0
    (τ = x_i: there factor is 0 too)."""
    n = points.shape[0]
    out = np.empty_like(points)
    one = (np.uint64(1), np.uint64(0), np.uint64(0), np.uint64(0))
    for t in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(t * _CHUNK, min(n, (t + 1) * _CHUNK)):
            d = load(inverses, i)
            x = load(points, i)
            y = FR_ONE if is_zero(d) else fr_mul(fr_mul(factor, x), d)
            y = fr_sub(y, fr_mul(correction, x))
            store(out, i, fr_mul(y, one) if to_plain else y)
    return out


def _basis(tau: int, n: int, shift: int, factor: int, *, plain: bool, correction: int = 0) -> np.ndarray:
    """factor·x_i/(τ - x_i) - correction·x_i at x_i = shift·ω_n^i (1 for the first term where τ = x_i),
    Montgomery or plain."""
    points = ntt.powers(ntt.montgomery(ntt.root_of_unity(n)), n, ntt.montgomery(shift))
    inverses = ntt.batch_inverse(_differences(ntt.montgomery(tau), points))
    out: np.ndarray = _lagrange_finish(
        points, inverses, ntt.montgomery(factor), ntt.montgomery(correction), plain
    )
    return out


def _lagrange(tau: int, n: int, plain: bool) -> np.ndarray:
    tau %= R
    ntt.log2_size(n)
    return _basis(tau, n, 1, (pow(tau, n, R) - 1) * pow(n, -1, R), plain=plain)


def lagrange_basis(tau: int, domain_size: int) -> np.ndarray:
    """L_k(τ) = (τⁿ - 1)/n · ω^k/(τ - ω^k) for k < n, the Lagrange basis of the domain at τ (plain int):
    a (domain_size, 4) PLAIN array."""
    return _lagrange(tau, domain_size, True)


def h_lagrange(
    tau: int, domain_size: int, *, shift: int | None = None, truncated: bool = False
) -> np.ndarray:
    """The scalars of the H points before the division by δ, as a (domain_size, 4) PLAIN array (τ a
    plain int): at the coset points x_i = g·ω_n^i, the Lagrange basis of the 2n points of the domain
    and the coset, at τ. For snarkjs's g = ω_{2n} (the default, `coset_shift`) that is L^{2n}_{2i+1}(τ);
    the module docstring has the formula for other shifts.

    `truncated=True` gives the H points snarkjs's `groth16 setup` makes from a .ptau whose power equals
    log2(domain_size): such a file holds τ^0..τ^(2n-2) in G1 only, and `powersoftau prepare phase2`
    builds the size-2n Lagrange points with a zero in place of [τ^(2n-1)]₁, i.e. L^{2n}_j(τ) minus
    τ^(2n-1)·ω_{2n}^j/(2n). Both bases give the same Σ hᵢ·Hᵢ, since A·B - C has degree at most 2n - 2;
    only the points differ. Only for snarkjs's coset."""
    n = domain_size
    ntt.log2_size(n)
    tau %= R
    g = coset_shift(n) if shift is None else shift % R
    gn = pow(g, n, R)
    if gn == 1:
        raise QAPError(f"the shift {g} gives no coset: it lies in the domain of {n} points")
    correction = 0
    if truncated:
        if shift is not None or n == MAX_DOMAIN_SIZE:
            raise QAPError("the truncated H basis is snarkjs's, on its odd coset, for domains below 2^28")
        correction = pow(tau, 2 * n - 1, R) * pow(2 * n, -1, R) % R
    tn = pow(tau, n, R)
    factor = (tn - 1) * (tn - gn) * pow((gn - 1) * n * gn, -1, R)
    return _basis(tau, n, g, factor % R, plain=True, correction=correction)


def evaluate_at(r1cs: R1CS, tau: int) -> QAPEvaluation:
    """Aᵢ(τ), Bᵢ(τ), Cᵢ(τ) for every wire (τ a plain int), with the extra public rows in A: the values a
    setup turns into the A, B and C/IC points (PLAIN (n_wires, 4) arrays)."""
    n = domain_size(r1cs)
    matrix, constraint, signal, values = _entries(r1cs, 3)
    basis = _lagrange(tau, n, False)
    out = np.zeros((3, r1cs.n_wires, 4), dtype=np.uint64)
    if matrix.shape[0] and int(signal.max()) >= r1cs.n_wires:
        raise QAPError(f"a constraint uses wire {int(signal.max())} of an R1CS with {r1cs.n_wires} wires")
    table, ids = _distinct_montgomery(values)
    _accumulate(
        matrix.astype(np.uint8), signal, constraint, table, ids, basis, out, _bounds(signal, r1cs.n_wires)
    )
    a, b, c = (from_montgomery(out[m], R) for m in range(3))
    return QAPEvaluation(a=a, b=b, c=c, domain_size=n)
