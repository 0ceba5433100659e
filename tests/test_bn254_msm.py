"""The G1/G2 kernels (curve.py) and the MSM and fixed-base kernels (msm.py), against py_ecc.

py_ecc is slow (a G1 multiplication ~14 ms, G2 ~50 ms), so reference points are built by repeated
addition (Pᵢ = (a + i·d)·G) and an MSM's reference is a single multiplication (Σ kᵢ·sᵢ)·G.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numba import njit
from py_ecc import optimized_bn128 as bn

from proofs.bn254 import curve, msm
from proofs.bn254.curve import (
    f_add,
    f_mul,
    f_neg,
    f_sqr,
    f_sub,
    g1_points,
    g1_table,
    g2_points,
    g2_table,
    jac_add,
    jac_double,
    jac_from_affine,
    jac_madd,
    jac_to_affine,
    jacobian_to_affine,
    ld,
    ld1,
    on_curve_g1,
    on_curve_g2,
    st,
)
from proofs.bn254.field import P, from_montgomery, ints, limbs, to_montgomery
from proofs.field import R
from proofs.groth16.keys import G1_INFINITY, G2_INFINITY, G1Point, G2Point, g1_from_py_ecc, g2_from_py_ecc


def _neg1(p: G1Point) -> G1Point:
    return G1_INFINITY if p == G1_INFINITY else (p[0], (P - p[1]) % P)


def _neg2(p: G2Point) -> G2Point:
    return G2_INFINITY if p == G2_INFINITY else (p[0], ((P - p[1][0]) % P, (P - p[1][1]) % P))


def _progression(generator: Any, a: int, d: int, n: int) -> list[Any]:
    """[(a + i·d)·G for i < n] as py_ecc points, by repeated addition."""
    point, step, out = bn.multiply(generator, a), bn.multiply(generator, d), []
    for _ in range(n):
        out.append(point)
        point = bn.add(point, step)
    return out


def _random_mont(rng: random.Random, n: int, fp2: bool) -> np.ndarray:
    """Random nonzero Montgomery Fp (n, 4) or Fp2 (n, 2, 4) elements."""
    values = [rng.randrange(1, P) for _ in range(2 * n if fp2 else n)]
    return to_montgomery(limbs(values), P).reshape((n, 2, 4) if fp2 else (n, 4))


# --- kernels under test, driven from arrays ---------------------------------------------------------------


@njit(cache=True)
def _scaled(p, lam):  # type: ignore[no-untyped-def]
    """The same point with Jacobian coordinates (λ²X, λ³Y, λZ)."""
    l2 = f_mul(lam, lam)
    return (f_mul(p[0], l2), f_mul(p[1], f_mul(l2, lam)), f_mul(p[2], lam))


@njit(cache=True)
def _store_affine(out, i, p):  # type: ignore[no-untyped-def]
    x, y = jac_to_affine(p)
    st(out, i, 0, x)
    st(out, i, 1, y)


@njit(cache=True)
def _point_ops(a, b, lam_a, lam_b, dbl, add, madd):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """Row by row: 2A, A + B (Jacobian + Jacobian) and A + B (Jacobian + affine), A and B rescaled."""
    for i in range(a.shape[0]):
        pa = _scaled(jac_from_affine(ld(a, i, 0), ld(a, i, 1)), ld1(lam_a, i))
        pb = _scaled(jac_from_affine(ld(b, i, 0), ld(b, i, 1)), ld1(lam_b, i))
        _store_affine(dbl, i, jac_double(pa))
        _store_affine(add, i, jac_add(pa, pb))
        _store_affine(madd, i, jac_madd(pa, ld(b, i, 0), ld(b, i, 1)))


@njit(cache=True)
def _to_jacobian(a, lam, out):  # type: ignore[no-untyped-def]
    for i in range(a.shape[0]):
        p = _scaled(jac_from_affine(ld(a, i, 0), ld(a, i, 1)), ld1(lam, i))
        st(out, i, 0, p[0])
        st(out, i, 1, p[1])
        st(out, i, 2, p[2])


@dataclass(frozen=True)
class _Group:
    generator: Any
    zero: Any
    to_int: Callable[[Any], Any]
    table: Callable[[Any], np.ndarray]
    points: Callable[[np.ndarray], list[Any]]
    fp2: bool


_GROUPS = {
    "G1": _Group(bn.G1, bn.Z1, g1_from_py_ecc, g1_table, g1_points, fp2=False),
    "G2": _Group(bn.G2, bn.Z2, g2_from_py_ecc, g2_table, g2_points, fp2=True),
}


@njit(cache=True)
def _field_ops(a, b, out):  # type: ignore[no-untyped-def]
    """out[i] = (a·b, a + b, a - b, -a, a²) for Fp (a, b: (n, 4)) or Fp2 (a, b: (n, 2, 4)) rows."""
    for i in range(a.shape[0]):
        x, y = ld1(a, i), ld1(b, i)
        st(out, i, 0, f_mul(x, y))
        st(out, i, 1, f_add(x, y))
        st(out, i, 2, f_sub(x, y))
        st(out, i, 3, f_neg(x))
        st(out, i, 4, f_sqr(x))


def test_generic_field_ops_match_python_integers_on_edge_values() -> None:
    rng = random.Random(4)
    edges = [0, 1, 2, P - 1, P - 2, (1 << 255) % P, (1 << 192) - 1, P >> 1]
    xs = edges + [rng.randrange(P) for _ in range(40)]
    ys = list(reversed(xs))
    mont = [to_montgomery(limbs(v), P) for v in (xs, ys)]
    out = np.empty((len(xs), 5, 4), dtype=np.uint64)
    _field_ops(mont[0], mont[1], out)
    got = [ints(from_montgomery(out[:, k], P)) for k in range(5)]
    assert got[0] == [x * y % P for x, y in zip(xs, ys, strict=True)]
    assert got[1] == [(x + y) % P for x, y in zip(xs, ys, strict=True)]
    assert got[2] == [(x - y) % P for x, y in zip(xs, ys, strict=True)]
    assert got[3] == [-x % P for x in xs]
    assert got[4] == [x * x % P for x in xs]
    # Fp2: (x0 + x1·u)(y0 + y1·u) with u² = -1, on pairs of the same values
    n = len(xs) // 2
    a2, b2 = mont[0][: 2 * n].reshape(n, 2, 4), mont[1][: 2 * n].reshape(n, 2, 4)
    out2 = np.empty((n, 5, 2, 4), dtype=np.uint64)
    _field_ops(a2, b2, out2)
    got2 = ints(from_montgomery(out2.reshape(-1, 4), P))
    for i in range(n):
        x0, x1, y0, y1 = xs[2 * i], xs[2 * i + 1], ys[2 * i], ys[2 * i + 1]
        expected = [
            ((x0 * y0 - x1 * y1) % P, (x0 * y1 + x1 * y0) % P),
            ((x0 + y0) % P, (x1 + y1) % P),
            ((x0 - y0) % P, (x1 - y1) % P),
            (-x0 % P, -x1 % P),
            ((x0 * x0 - x1 * x1) % P, 2 * x0 * x1 % P),
        ]
        assert [tuple(got2[10 * i + 2 * k : 10 * i + 2 * k + 2]) for k in range(5)] == expected


def _op_cases(group: _Group, rng: random.Random) -> tuple[list[Any], list[Any]]:
    """Pairs (A, B): random, A = B, B = -A, either or both infinite."""
    a = [bn.multiply(group.generator, rng.randrange(1, R)) for _ in range(3)]
    z = group.zero
    lhs = [a[0], a[1], a[2], a[0], z, z]
    rhs = [a[1], a[1], bn.neg(a[2]), z, a[0], z]
    return lhs, rhs


@pytest.mark.parametrize("name", ["G1", "G2"])
def test_double_add_mixed_add_and_to_affine_match_py_ecc(name: str) -> None:
    group, rng = _GROUPS[name], random.Random(name)
    lhs, rhs = _op_cases(group, rng)
    a = group.table([group.to_int(p) for p in lhs])
    b = group.table([group.to_int(p) for p in rhs])
    n = len(lhs)
    dbl, add, madd = (np.zeros_like(a) for _ in range(3))
    _point_ops(a, b, _random_mont(rng, n, group.fp2), _random_mont(rng, n, group.fp2), dbl, add, madd)
    assert group.points(dbl) == [group.to_int(bn.double(p)) for p in lhs]
    assert group.points(add) == [group.to_int(bn.add(p, q)) for p, q in zip(lhs, rhs, strict=True)]
    assert group.points(madd) == group.points(add)


@pytest.mark.parametrize("name", ["G1", "G2"])
def test_batch_jacobian_to_affine_restores_points_and_infinity(name: str) -> None:
    group, rng = _GROUPS[name], random.Random(3)
    pts = [group.to_int(p) for p in _progression(group.generator, rng.randrange(R), rng.randrange(R), 150)]
    for i in (0, 77, 149):
        pts[i] = group.to_int(group.zero)
    aff = group.table(pts)
    jac = np.empty((len(pts), 3, *aff.shape[2:]), dtype=np.uint64)
    _to_jacobian(aff, _random_mont(rng, len(pts), group.fp2), jac)
    assert np.array_equal(jacobian_to_affine(jac), aff)


def test_tables_round_trip_plain_integers_with_infinity_as_zeros() -> None:
    g1 = [g1_from_py_ecc(bn.G1), G1_INFINITY, g1_from_py_ecc(bn.multiply(bn.G1, 5))]
    g2 = [g2_from_py_ecc(bn.G2), G2_INFINITY, g2_from_py_ecc(bn.multiply(bn.G2, 5))]
    t1, t2 = g1_table(g1), g2_table(g2)
    assert t1.shape == (3, 2, 4) and t2.shape == (3, 2, 2, 4)
    assert not t1[1].any() and not t2[1].any()
    assert g1_points(t1) == g1 and g2_points(t2) == g2
    assert g1_points(np.zeros((0, 2, 4), dtype=np.uint64)) == []
    with pytest.raises(ValueError):
        g1_table([(P, 1)])
    with pytest.raises(ValueError):
        g1_points(t2)


def test_on_curve_accepts_points_and_infinity_and_rejects_off_curve() -> None:
    t1 = g1_table([g1_from_py_ecc(bn.G1), G1_INFINITY, (1, 3)])
    t2 = g2_table([g2_from_py_ecc(bn.G2), G2_INFINITY, ((1, 0), (2, 0))])
    assert on_curve_g1(t1).tolist() == [True, True, False]
    assert on_curve_g2(t2).tolist() == [True, True, False]


# --- MSM ----------------------------------------------------------------------------------------------------


def _msm_case(n: int, rng: random.Random, g2: bool) -> tuple[list[Any], list[int], list[int]]:
    """Points (py_ecc), their discrete logs k and scalars s for an MSM of n terms, with the awkward cases
    mixed in: scalars 0, 1 and r - 1, points at infinity, repeated points and a point with its negative."""
    a, d = rng.randrange(1, R), rng.randrange(1, R)
    generator = bn.G2 if g2 else bn.G1
    points = _progression(generator, a, d, n)
    ks = [(a + i * d) % R for i in range(n)]
    scalars = [rng.randrange(R) for _ in range(n)]
    specials = [0, 1, R - 1, 1, 2]
    for i in range(min(n, len(specials))):
        scalars[-1 - i] = specials[i]
    if n >= 12:
        zero = bn.Z2 if g2 else bn.Z1
        points[3], ks[3] = zero, 0  # infinity with a nonzero scalar
        points[4], ks[4], scalars[4] = points[5], ks[5], scalars[5]  # the same point twice (P + P in buckets)
        points[6], ks[6], scalars[6] = bn.neg(points[7]), (-ks[7]) % R, scalars[7]  # P and -P
        points[8], ks[8], scalars[8] = points[9], ks[9], (R - scalars[9]) % R  # s·P + (r - s)·P
    return points, ks, scalars


def _expected(generator: Any, ks: list[int], scalars: list[int]) -> Any:
    return bn.multiply(generator, sum(k * s for k, s in zip(ks, scalars, strict=True)) % R)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 300])
def test_msm_g1_matches_py_ecc(n: int) -> None:
    rng = random.Random(10 + n)
    points, ks, scalars = _msm_case(n, rng, g2=False)
    got = msm.msm_g1(g1_table([g1_from_py_ecc(p) for p in points]), limbs(scalars))
    assert got == g1_from_py_ecc(_expected(bn.G1, ks, scalars))


@pytest.mark.parametrize("n", [0, 1, 2, 7, 60])
def test_msm_g2_matches_py_ecc(n: int) -> None:
    rng = random.Random(20 + n)
    points, ks, scalars = _msm_case(n, rng, g2=True)
    got = msm.msm_g2(g2_table([g2_from_py_ecc(p) for p in points]), limbs(scalars))
    assert got == g2_from_py_ecc(_expected(bn.G2, ks, scalars))


def test_msm_of_cancelling_terms_is_infinity() -> None:
    table = g1_table([g1_from_py_ecc(bn.G1), g1_from_py_ecc(bn.neg(bn.G1))])
    assert msm.msm_g1(table, limbs([5, 5])) == G1_INFINITY
    assert msm.msm_g1(table, limbs([0, 0])) == G1_INFINITY
    table2 = g2_table([g2_from_py_ecc(bn.G2), g2_from_py_ecc(bn.G2)])
    assert msm.msm_g2(table2, limbs([1, R - 1])) == G2_INFINITY


def test_msm_with_one_scalar_everywhere_takes_every_bucket_collision_path() -> None:
    """Equal scalars put every point into the same bucket of every window (queue and side buckets), and
    1-scalars go to the rotating accumulators; both against (Σ kᵢ)·s·G."""
    rng = random.Random(5)
    a, d, n = rng.randrange(R), rng.randrange(R), 400
    table = msm.batch_mul_g1(g1_from_py_ecc(bn.G1), limbs([(a + i * d) % R for i in range(n)]))
    total = sum((a + i * d) % R for i in range(n))
    s = rng.randrange(R)
    assert msm.msm_g1(table, limbs([s] * n)) == g1_from_py_ecc(bn.multiply(bn.G1, total * s % R))
    assert msm.msm_g1(table, limbs([1] * n)) == g1_from_py_ecc(bn.multiply(bn.G1, total % R))
    table2 = msm.batch_mul_g2(g2_from_py_ecc(bn.G2), limbs([(a + i * d) % R for i in range(60)]))
    total2 = sum((a + i * d) % R for i in range(60))
    assert msm.msm_g2(table2, limbs([s] * 60)) == g2_from_py_ecc(bn.multiply(bn.G2, total2 * s % R))


@pytest.mark.parametrize("min_chunk", [msm._MIN_CHUNK, 64])
def test_msm_g1_on_thousands_of_points_split_into_tasks(
    min_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows split into chunks of points (forced with a small minimum chunk), 1-scalars, zeros."""
    monkeypatch.setattr(msm, "_MIN_CHUNK", min_chunk)
    rng = random.Random(6)
    n = 5000
    ks = [rng.randrange(R) for _ in range(n)]
    scalars = [rng.choice([0, 1, rng.randrange(R), rng.randrange(1 << 20)]) for _ in range(n)]
    table = msm.batch_mul_g1(g1_from_py_ecc(bn.G1), limbs(ks))
    got = msm.msm_g1(table, limbs(scalars))
    assert got == g1_from_py_ecc(_expected(bn.G1, ks, scalars))


def test_msm_refuses_unreduced_scalars_and_mismatched_shapes() -> None:
    table = g1_table([g1_from_py_ecc(bn.G1)])
    with pytest.raises(ValueError):
        msm.msm_g1(table, limbs([R]))
    with pytest.raises(ValueError):
        msm.msm_g1(table, limbs([1, 2]))
    with pytest.raises(ValueError):
        msm.msm_g2(table, limbs([1]))


def test_signed_digits_recompose_every_scalar() -> None:
    """Σⱼ dⱼ·2^(jc) = s with dⱼ ∈ [-2^(c-1), 2^(c-1)) for each window size, on edge scalars."""

    @njit(cache=False)
    def digits(scalars, n_windows, c, h):  # type: ignore[no-untyped-def]
        out = np.empty((scalars.shape[0], n_windows), np.int64)
        for i in range(scalars.shape[0]):
            for w in range(n_windows):
                out[i, w] = msm._digit(scalars, i, w, c, h)
        return out

    values = [0, 1, 2, R - 1, R - 2, (1 << 253) - 1, R // 2, 12345 << 100]
    for c in range(2, 17):
        n_windows, h = msm._windows(c)
        got = digits(limbs(values), n_windows, c, h)
        assert got.min() >= -(1 << (c - 1)) and got.max() < 1 << (c - 1)
        assert [sum(int(d) << (c * j) for j, d in enumerate(row)) for row in got] == values


# --- fixed base ---------------------------------------------------------------------------------------------


def test_batch_mul_g1_matches_py_ecc_at_edges_and_chunk_boundaries() -> None:
    rng = random.Random(7)
    n = 2100  # chunks of 1024 over two threads
    scalars = [rng.randrange(R) for _ in range(n)]
    scalars[:4] = [0, 1, 2, R - 1]
    table = msm.batch_mul_g1(g1_from_py_ecc(bn.G1), limbs(scalars))
    assert table.shape == (n, 2, 4)
    assert not table[0].any()
    rows = [1, 2, 3, 4, 1023, 1024, 1025, 2047, 2048, n - 1]
    assert [g1_points(table[i : i + 1])[0] for i in rows] == [
        g1_from_py_ecc(bn.multiply(bn.G1, scalars[i])) for i in rows
    ]
    assert on_curve_g1(table).all()


def test_batch_mul_from_another_base_and_from_infinity() -> None:
    base = bn.multiply(bn.G1, 987654321)
    scalars = [0, 3, R - 1, 1 << 200]
    got = g1_points(msm.batch_mul_g1(g1_from_py_ecc(base), limbs(scalars)))
    assert got == [g1_from_py_ecc(bn.multiply(base, s)) for s in scalars]
    assert not msm.batch_mul_g1(G1_INFINITY, limbs(scalars)).any()
    assert not msm.batch_mul_g2(G2_INFINITY, limbs(scalars)).any()
    assert msm.batch_mul_g1(g1_from_py_ecc(bn.G1), np.zeros((0, 4), dtype=np.uint64)).shape == (0, 2, 4)
    with pytest.raises(ValueError):
        msm.batch_mul_g1(g1_from_py_ecc(bn.G1), limbs([R]))


def test_batch_mul_g2_matches_py_ecc() -> None:
    rng = random.Random(8)
    scalars = [0, 1, R - 1, rng.randrange(R), rng.randrange(R)]
    table = msm.batch_mul_g2(g2_from_py_ecc(bn.G2), limbs(scalars))
    assert table.shape == (5, 2, 2, 4)
    assert g2_points(table) == [g2_from_py_ecc(bn.multiply(bn.G2, s)) for s in scalars]
    assert on_curve_g2(table).all()


def test_g2_twist_constant_is_py_ecc_b2() -> None:
    b2 = [int(c) for c in bn.b2.coeffs]
    assert g2_points(np.array([[curve.G2_B, curve.G2_B]], dtype=np.uint64))[0][0] == tuple(b2)
