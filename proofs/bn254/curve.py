"""BN254's groups G1 (over Fp) and G2 (over Fp2, the sextic twist) as numba kernels.

G1 is y² = x³ + 3 over Fp; G2 is y² = x³ + 3/(9 + u) over Fp2 (py_ecc's `b2`). Both have a = 0, so one
set of formulas serves both: the kernels below are written once against generic field operations
(`f_mul`, `f_add`, ...) that numba resolves at compile time to Fp or Fp2 arithmetic from the type of
their arguments (an Fp element is a tuple of four uint64, an Fp2 element a pair of them). They are
field.py's arithmetic (`fp_mul`, `fp2_mul`, ..., `fp_inv`, `fp2_inv`): this module does no field
arithmetic of its own.

Kernel-side representations:

- a Jacobian point is a tuple (X, Y, Z) of field elements standing for (X/Z², Y/Z³); Z = 0 is infinity;
- an affine point is a pair (x, y); (0, 0) is infinity (it is on neither curve, as b ≠ 0);
- arrays: affine tables (n, 2, 4) for G1 and (n, 2, 2, 4) for G2 ([i, 0] = x, [i, 1] = y, an Fp2
  coordinate as [c0, c1]); Jacobian tables (n, 3, 4) and (n, 3, 2, 4); all in Montgomery form. `ld`,
  `st`, `ld1` and `st1` read and write such rows generically.

Formulas: dbl-2009-l, add-2007-bl and madd-2007-bl from the Explicit-Formulas Database
(https://hyperelliptic.org/EFD/g1p/auto-shortw-jacobian-0.html), with the exceptional cases (either
operand infinite, P = Q, P = -Q) handled explicitly.

At the Python boundary points are affine tuples of plain integers, (x, y) for G1 and
((x.c0, x.c1), (y.c0, y.c1)) for G2, infinity as zeros (see proofs/groth16/keys.py); `g1_table`,
`g1_points`, `g2_table` and `g2_points` convert.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from proofs.bn254.field import (
    FP2_ONE,
    FP2_ZERO,
    FP_ONE,
    FP_ZERO,
    P,
    equal,
    fp2_add,
    fp2_equal,
    fp2_inv,
    fp2_is_zero,
    fp2_mul,
    fp2_neg,
    fp2_sqr,
    fp2_sub,
    fp_add,
    fp_inv,
    fp_mul,
    fp_neg,
    fp_sqr,
    fp_sub,
    from_montgomery,
    ints,
    is_zero,
    limbs,
    montgomery_limbs,
    to_montgomery,
)
from proofs.groth16.keys import G1Point, G2Point

_INV82 = pow(82, -1, P)
G1_B = montgomery_limbs(3, P)
"""b = 3 of G1, Montgomery form."""
G2_B = (montgomery_limbs(27 * _INV82, P), montgomery_limbs(-3 * _INV82, P))
"""b' = 3/(9 + u) = (27 - 3u)/82 of G2, Montgomery form."""
_G1_B_ROW = np.array([G1_B], dtype=np.uint64)
_G2_B_ROW = np.array([G2_B], dtype=np.uint64)


# --- generic field operations: Fp or Fp2 chosen from the argument's type ----------------------------------


def _is_fp2(t: types.Type) -> bool:
    return isinstance(t, types.BaseTuple) and isinstance(t[0], types.BaseTuple)


def f_mul(a: Any, b: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_sqr(a: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_add(a: Any, b: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_sub(a: Any, b: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_neg(a: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_inv(a: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_is_zero(a: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_eq(a: Any, b: Any) -> Any:
    raise NotImplementedError("numba kernels only")


def f_one(a: Any) -> Any:
    """One of a's field (a's value is ignored)."""
    raise NotImplementedError("numba kernels only")


def f_zero(a: Any) -> Any:
    """Zero of a's field (a's value is ignored)."""
    raise NotImplementedError("numba kernels only")


# The overloads' implementations are distinct module-level functions on purpose: numba names compiled
# code after the function's qualified name and argument types (plus a per-process counter), so two
# implementations sharing a name and a signature (closures from one factory) could be confused when
# cached code from another process is linked in.


def _fp_mul_impl(a, b):  # type: ignore[no-untyped-def]
    return fp_mul(a, b)


def _fp2_mul_impl(a, b):  # type: ignore[no-untyped-def]
    return fp2_mul(a, b)


@overload(f_mul)
def _ov_mul(a, b):  # type: ignore[no-untyped-def]
    return _fp2_mul_impl if _is_fp2(a) else _fp_mul_impl


def _fp_sqr_impl(a):  # type: ignore[no-untyped-def]
    return fp_sqr(a)


def _fp2_sqr_impl(a):  # type: ignore[no-untyped-def]
    return fp2_sqr(a)


@overload(f_sqr)
def _ov_sqr(a):  # type: ignore[no-untyped-def]
    return _fp2_sqr_impl if _is_fp2(a) else _fp_sqr_impl


def _fp_add_impl(a, b):  # type: ignore[no-untyped-def]
    return fp_add(a, b)


def _fp2_add_impl(a, b):  # type: ignore[no-untyped-def]
    return fp2_add(a, b)


@overload(f_add)
def _ov_add(a, b):  # type: ignore[no-untyped-def]
    return _fp2_add_impl if _is_fp2(a) else _fp_add_impl


def _fp_sub_impl(a, b):  # type: ignore[no-untyped-def]
    return fp_sub(a, b)


def _fp2_sub_impl(a, b):  # type: ignore[no-untyped-def]
    return fp2_sub(a, b)


@overload(f_sub)
def _ov_sub(a, b):  # type: ignore[no-untyped-def]
    return _fp2_sub_impl if _is_fp2(a) else _fp_sub_impl


def _fp_neg_impl(a):  # type: ignore[no-untyped-def]
    return fp_neg(a)


def _fp2_neg_impl(a):  # type: ignore[no-untyped-def]
    return fp2_neg(a)


@overload(f_neg)
def _ov_neg(a):  # type: ignore[no-untyped-def]
    return _fp2_neg_impl if _is_fp2(a) else _fp_neg_impl


def _fp_inv_impl(a):  # type: ignore[no-untyped-def]
    return fp_inv(a)


def _fp2_inv_impl(a):  # type: ignore[no-untyped-def]
    return fp2_inv(a)


@overload(f_inv)
def _ov_inv(a):  # type: ignore[no-untyped-def]
    return _fp2_inv_impl if _is_fp2(a) else _fp_inv_impl


def _fp_is_zero_impl(a):  # type: ignore[no-untyped-def]
    return is_zero(a)


def _fp2_is_zero_impl(a):  # type: ignore[no-untyped-def]
    return fp2_is_zero(a)


@overload(f_is_zero)
def _ov_is_zero(a):  # type: ignore[no-untyped-def]
    return _fp2_is_zero_impl if _is_fp2(a) else _fp_is_zero_impl


def _fp_eq_impl(a, b):  # type: ignore[no-untyped-def]
    return equal(a, b)


def _fp2_eq_impl(a, b):  # type: ignore[no-untyped-def]
    return fp2_equal(a, b)


@overload(f_eq)
def _ov_eq(a, b):  # type: ignore[no-untyped-def]
    return _fp2_eq_impl if _is_fp2(a) else _fp_eq_impl


def _fp_one_impl(a):  # type: ignore[no-untyped-def]
    return FP_ONE


def _fp2_one_impl(a):  # type: ignore[no-untyped-def]
    return FP2_ONE


@overload(f_one)
def _ov_one(a):  # type: ignore[no-untyped-def]
    return _fp2_one_impl if _is_fp2(a) else _fp_one_impl


def _fp_zero_impl(a):  # type: ignore[no-untyped-def]
    return FP_ZERO


def _fp2_zero_impl(a):  # type: ignore[no-untyped-def]
    return FP2_ZERO


@overload(f_zero)
def _ov_zero(a):  # type: ignore[no-untyped-def]
    return _fp2_zero_impl if _is_fp2(a) else _fp_zero_impl


# --- generic array access: a field element at [i, j] of a point table, or at [i] of a coordinate array ---


def ld(arr: Any, i: Any, j: Any) -> Any:
    """The field element arr[i, j] of a (n, k, 4) (Fp) or (n, k, 2, 4) (Fp2) array."""
    raise NotImplementedError("numba kernels only")


def st(arr: Any, i: Any, j: Any, v: Any) -> Any:
    """arr[i, j] = v for a (n, k, 4) or (n, k, 2, 4) array."""
    raise NotImplementedError("numba kernels only")


def ld1(arr: Any, i: Any) -> Any:
    """The field element arr[i] of a (n, 4) (Fp) or (n, 2, 4) (Fp2) array."""
    raise NotImplementedError("numba kernels only")


def st1(arr: Any, i: Any, v: Any) -> Any:
    """arr[i] = v for a (n, 4) or (n, 2, 4) array."""
    raise NotImplementedError("numba kernels only")


@overload(ld)
def _ov_ld(arr, i, j):  # type: ignore[no-untyped-def]
    if arr.ndim == 3:

        def impl_fp(arr, i, j):  # type: ignore[no-untyped-def]
            return (arr[i, j, 0], arr[i, j, 1], arr[i, j, 2], arr[i, j, 3])

        return impl_fp

    def impl_fp2(arr, i, j):  # type: ignore[no-untyped-def]
        return (
            (arr[i, j, 0, 0], arr[i, j, 0, 1], arr[i, j, 0, 2], arr[i, j, 0, 3]),
            (arr[i, j, 1, 0], arr[i, j, 1, 1], arr[i, j, 1, 2], arr[i, j, 1, 3]),
        )

    return impl_fp2


@overload(st)
def _ov_st(arr, i, j, v):  # type: ignore[no-untyped-def]
    if arr.ndim == 3:

        def impl_fp(arr, i, j, v):  # type: ignore[no-untyped-def]
            arr[i, j, 0], arr[i, j, 1], arr[i, j, 2], arr[i, j, 3] = v

        return impl_fp

    def impl_fp2(arr, i, j, v):  # type: ignore[no-untyped-def]
        arr[i, j, 0, 0], arr[i, j, 0, 1], arr[i, j, 0, 2], arr[i, j, 0, 3] = v[0]
        arr[i, j, 1, 0], arr[i, j, 1, 1], arr[i, j, 1, 2], arr[i, j, 1, 3] = v[1]

    return impl_fp2


@overload(ld1)
def _ov_ld1(arr, i):  # type: ignore[no-untyped-def]
    if arr.ndim == 2:

        def impl_fp(arr, i):  # type: ignore[no-untyped-def]
            return (arr[i, 0], arr[i, 1], arr[i, 2], arr[i, 3])

        return impl_fp

    def impl_fp2(arr, i):  # type: ignore[no-untyped-def]
        return (
            (arr[i, 0, 0], arr[i, 0, 1], arr[i, 0, 2], arr[i, 0, 3]),
            (arr[i, 1, 0], arr[i, 1, 1], arr[i, 1, 2], arr[i, 1, 3]),
        )

    return impl_fp2


@overload(st1)
def _ov_st1(arr, i, v):  # type: ignore[no-untyped-def]
    if arr.ndim == 2:

        def impl_fp(arr, i, v):  # type: ignore[no-untyped-def]
            arr[i, 0], arr[i, 1], arr[i, 2], arr[i, 3] = v

        return impl_fp

    def impl_fp2(arr, i, v):  # type: ignore[no-untyped-def]
        arr[i, 0, 0], arr[i, 0, 1], arr[i, 0, 2], arr[i, 0, 3] = v[0]
        arr[i, 1, 0], arr[i, 1, 1], arr[i, 1, 2], arr[i, 1, 3] = v[1]

    return impl_fp2


# --- point kernels (both groups) -------------------------------------------------------------------------


@njit(cache=True)
def jac_infinity(x):  # type: ignore[no-untyped-def]
    """The point at infinity in Jacobian form, in the field of the element x."""
    return (f_one(x), f_one(x), f_zero(x))


@njit(cache=True)
def jac_is_infinity(p):  # type: ignore[no-untyped-def]
    return f_is_zero(p[2])


@njit(cache=True)
def aff_is_infinity(x, y):  # type: ignore[no-untyped-def]
    return f_is_zero(x) and f_is_zero(y)


@njit(cache=True)
def jac_from_affine(x, y):  # type: ignore[no-untyped-def]
    if aff_is_infinity(x, y):
        return jac_infinity(x)
    return (x, y, f_one(x))


@njit(cache=True)
def jac_double(p):  # type: ignore[no-untyped-def]
    """2P (dbl-2009-l, 2M + 5S). Neither group has a point of order 2, so Y = 0 only at infinity."""
    x1, y1, z1 = p
    if f_is_zero(z1):
        return p
    a = f_sqr(x1)
    b = f_sqr(y1)
    c = f_sqr(b)
    d = f_sub(f_sub(f_sqr(f_add(x1, b)), a), c)
    d = f_add(d, d)
    e = f_add(f_add(a, a), a)
    f = f_sqr(e)
    x3 = f_sub(f_sub(f, d), d)
    c8 = f_add(c, c)
    c8 = f_add(c8, c8)
    c8 = f_add(c8, c8)
    y3 = f_sub(f_mul(e, f_sub(d, x3)), c8)
    z3 = f_mul(y1, z1)
    z3 = f_add(z3, z3)
    return (x3, y3, z3)


@njit(cache=True)
def jac_add(p, q):  # type: ignore[no-untyped-def]
    """P + Q for Jacobian P and Q (add-2007-bl, 11M + 5S), any of them infinite, P = ±Q included."""
    x1, y1, z1 = p
    x2, y2, z2 = q
    if f_is_zero(z1):
        return q
    if f_is_zero(z2):
        return p
    z1z1 = f_sqr(z1)
    z2z2 = f_sqr(z2)
    u1 = f_mul(x1, z2z2)
    u2 = f_mul(x2, z1z1)
    s1 = f_mul(f_mul(y1, z2), z2z2)
    s2 = f_mul(f_mul(y2, z1), z1z1)
    h = f_sub(u2, u1)
    r = f_sub(s2, s1)
    if f_is_zero(h):
        if f_is_zero(r):
            return jac_double(p)
        return jac_infinity(x1)
    r = f_add(r, r)
    i = f_add(h, h)
    i = f_sqr(i)
    j = f_mul(h, i)
    v = f_mul(u1, i)
    x3 = f_sub(f_sub(f_sub(f_sqr(r), j), v), v)
    s1j = f_mul(s1, j)
    y3 = f_sub(f_sub(f_mul(r, f_sub(v, x3)), s1j), s1j)
    z3 = f_mul(f_sub(f_sub(f_sqr(f_add(z1, z2)), z1z1), z2z2), h)
    return (x3, y3, z3)


@njit(cache=True)
def jac_madd(p, x2, y2):  # type: ignore[no-untyped-def]
    """P + (x2, y2) for Jacobian P and an affine point ((0, 0) = infinity) (madd-2007-bl, 7M + 4S)."""
    if aff_is_infinity(x2, y2):
        return p
    x1, y1, z1 = p
    if f_is_zero(z1):
        return (x2, y2, f_one(x2))
    z1z1 = f_sqr(z1)
    u2 = f_mul(x2, z1z1)
    s2 = f_mul(f_mul(y2, z1), z1z1)
    h = f_sub(u2, x1)
    r = f_sub(s2, y1)
    if f_is_zero(h):
        if f_is_zero(r):
            return jac_double(p)
        return jac_infinity(x1)
    r = f_add(r, r)
    hh = f_sqr(h)
    i = f_add(hh, hh)
    i = f_add(i, i)
    j = f_mul(h, i)
    v = f_mul(x1, i)
    x3 = f_sub(f_sub(f_sub(f_sqr(r), j), v), v)
    y1j = f_mul(y1, j)
    y3 = f_sub(f_sub(f_mul(r, f_sub(v, x3)), y1j), y1j)
    z3 = f_sub(f_sub(f_sqr(f_add(z1, h)), z1z1), hh)
    return (x3, y3, z3)


@njit(cache=True)
def jac_neg(p):  # type: ignore[no-untyped-def]
    return (p[0], f_neg(p[1]), p[2])


@njit(cache=True)
def jac_to_affine(p):  # type: ignore[no-untyped-def]
    """(x, y) of a Jacobian point; (0, 0) for infinity. One inversion: batch where there are many."""
    x, y, z = p
    if f_is_zero(z):
        return (f_zero(x), f_zero(x))
    zi = f_inv(z)
    zi2 = f_sqr(zi)
    return (f_mul(x, zi2), f_mul(f_mul(y, zi2), zi))


@njit(cache=True)
def on_curve(x, y, b):  # type: ignore[no-untyped-def]
    """y² = x³ + b for an affine point; (0, 0), infinity, counts as on the curve."""
    if aff_is_infinity(x, y):
        return True
    return f_eq(f_sqr(y), f_add(f_mul(f_sqr(x), x), b))


# --- batch kernels ----------------------------------------------------------------------------------------


@njit(cache=True)
def normalize_into(jac, aff, lo, hi, scratch):  # type: ignore[no-untyped-def]
    """aff[i] = jac[i] in affine form for lo ≤ i < hi, with one inversion (Montgomery's trick); scratch
    is a coordinate array ((n, 4) or (n, 2, 4)) of at least hi rows for the prefix products."""
    if hi <= lo:
        return
    acc = f_one(ld(jac, lo, 2))
    for i in range(lo, hi):
        z = ld(jac, i, 2)
        st1(scratch, i, acc)
        if not f_is_zero(z):
            acc = f_mul(acc, z)
    inv = f_inv(acc)
    for i in range(hi - 1, lo - 1, -1):
        z = ld(jac, i, 2)
        if f_is_zero(z):
            zero = f_zero(z)
            st(aff, i, 0, zero)
            st(aff, i, 1, zero)
            continue
        zi = f_mul(inv, ld1(scratch, i))
        inv = f_mul(inv, z)
        zi2 = f_sqr(zi)
        st(aff, i, 0, f_mul(ld(jac, i, 0), zi2))
        st(aff, i, 1, f_mul(f_mul(ld(jac, i, 1), zi2), zi))


@njit(cache=True, parallel=True)
def _to_affine_kernel(jac, aff, scratch, nchunks):  # type: ignore[no-untyped-def]
    n = jac.shape[0]
    for t in prange(nchunks):
        normalize_into(jac, aff, n * t // nchunks, n * (t + 1) // nchunks, scratch)


@njit(cache=True, parallel=True)
def _on_curve_kernel(table, b, out):  # type: ignore[no-untyped-def]
    # b is a one-row coordinate array: numba's parallel loops take no nested tuples (an Fp2 element)
    for i in prange(table.shape[0]):
        out[i] = on_curve(ld(table, i, 0), ld(table, i, 1), ld1(b, 0))


# --- Python boundary ----------------------------------------------------------------------------------------


def _check_table(table: np.ndarray, coord_shape: tuple[int, ...], points: int, what: str) -> np.ndarray:
    table = np.ascontiguousarray(table, dtype=np.uint64)
    if table.ndim != 1 + len(coord_shape) + 1 or table.shape[1] != points or table.shape[2:] != coord_shape:
        raise ValueError(f"{what} must be an array (n, {points}, {', '.join(map(str, coord_shape))})")
    return table


def jacobian_to_affine(jac: np.ndarray) -> np.ndarray:
    """A Jacobian table, (n, 3, 4) for G1 or (n, 3, 2, 4) for G2, as an affine table (n, 2, 4) or
    (n, 2, 2, 4) (infinity as zeros); one field inversion per thread."""
    jac = np.ascontiguousarray(jac, dtype=np.uint64)
    if jac.ndim not in (3, 4) or jac.shape[1] != 3 or jac.shape[-1] != 4:
        raise ValueError("a Jacobian table is (n, 3, 4) for G1 or (n, 3, 2, 4) for G2")
    n = jac.shape[0]
    aff = np.zeros((n, 2, *jac.shape[2:]), dtype=np.uint64)
    scratch = np.empty((n, *jac.shape[2:]), dtype=np.uint64)
    if n:
        chunks = max(1, min(numba.get_num_threads(), n // 64))
        _to_affine_kernel(jac, aff, scratch, chunks)
    return aff


def g1_table(points: list[G1Point] | tuple[G1Point, ...]) -> np.ndarray:
    """Affine G1 points as plain integers → an (n, 2, 4) Montgomery table."""
    flat = [int(c) for point in points for c in point]
    if any(not 0 <= c < P for c in flat):
        raise ValueError("G1 coordinates must be integers in [0, P)")
    return to_montgomery(limbs(flat), P).reshape(len(points), 2, 4)


def g1_points(table: np.ndarray) -> list[G1Point]:
    """The inverse of `g1_table`."""
    table = _check_table(table, (4,), 2, "a G1 table")
    values = ints(from_montgomery(table.reshape(-1, 4), P))
    return [(values[2 * i], values[2 * i + 1]) for i in range(table.shape[0])]


def g2_table(points: list[G2Point] | tuple[G2Point, ...]) -> np.ndarray:
    """Affine G2 points ((x.c0, x.c1), (y.c0, y.c1)) as plain integers → an (n, 2, 2, 4) table."""
    flat = [int(c) for point in points for coordinate in point for c in coordinate]
    if any(not 0 <= c < P for c in flat):
        raise ValueError("G2 coordinates must be integers in [0, P)")
    return to_montgomery(limbs(flat), P).reshape(len(points), 2, 2, 4)


def g2_points(table: np.ndarray) -> list[G2Point]:
    """The inverse of `g2_table`."""
    table = _check_table(table, (2, 4), 2, "a G2 table")
    v = ints(from_montgomery(table.reshape(-1, 4), P))
    return [((v[4 * i], v[4 * i + 1]), (v[4 * i + 2], v[4 * i + 3])) for i in range(table.shape[0])]


def on_curve_g1(table: np.ndarray) -> np.ndarray:
    """Whether each point of an (n, 2, 4) table is on G1's curve (infinity, all zeros, is)."""
    table = _check_table(table, (4,), 2, "a G1 table")
    out = np.empty(table.shape[0], dtype=np.bool_)
    if table.shape[0]:
        _on_curve_kernel(table, _G1_B_ROW, out)
    return out


def on_curve_g2(table: np.ndarray) -> np.ndarray:
    """Whether each point of an (n, 2, 2, 4) table is on the twist y² = x³ + 3/(9 + u) (infinity is).
    This is not a subgroup check: the twist has points outside the order-r subgroup."""
    table = _check_table(table, (2, 4), 2, "a G2 table")
    out = np.empty(table.shape[0], dtype=np.bool_)
    if table.shape[0]:
        _on_curve_kernel(table, _G2_B_ROW, out)
    return out


# Named kernels per group (the generic kernels above serve both; these names say which group is meant).
g1_double = g2_double = jac_double
g1_add = g2_add = jac_add
g1_madd = g2_madd = jac_madd
g1_to_affine = g2_to_affine = jac_to_affine
