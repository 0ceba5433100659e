"""The numba Montgomery kernels for Fp, Fr and Fp2, against Python integers on random and edge values."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest
from numba import njit

from proofs.bn254 import field as F
from proofs.field import R

EDGES = [0, 1, 2, 3, (1 << 64) - 1, 1 << 64, (1 << 192) + 5]


def _values(modulus: int, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    edges = [*EDGES, modulus - 1, modulus - 2, modulus >> 1]
    return edges + [rng.randrange(modulus) for _ in range(n - len(edges))]


@njit(cache=True)
def _apply_fp(op, a, b, out):  # type: ignore[no-untyped-def]
    for i in range(a.shape[0]):
        x = (a[i, 0], a[i, 1], a[i, 2], a[i, 3])
        y = (b[i, 0], b[i, 1], b[i, 2], b[i, 3])
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = op(x, y)


@njit(cache=True)
def _mul_fp(x, y):  # type: ignore[no-untyped-def]
    return F.fp_mul(x, y)


@njit(cache=True)
def _add_fp(x, y):  # type: ignore[no-untyped-def]
    return F.fp_add(x, y)


@njit(cache=True)
def _sub_fp(x, y):  # type: ignore[no-untyped-def]
    return F.fp_sub(x, y)


@njit(cache=True)
def _sqr_fp(x, y):  # type: ignore[no-untyped-def]
    return F.fp_sqr(x)


@njit(cache=True)
def _neg_fp(x, y):  # type: ignore[no-untyped-def]
    return F.fp_neg(x)


@njit(cache=True)
def _inv_fp(x, y):  # type: ignore[no-untyped-def]
    return F.fp_inv(x)


@njit(cache=True)
def _mul_fr(x, y):  # type: ignore[no-untyped-def]
    return F.fr_mul(x, y)


@njit(cache=True)
def _sqr_fr(x, y):  # type: ignore[no-untyped-def]
    return F.fr_sqr(x)


@njit(cache=True)
def _add_fr(x, y):  # type: ignore[no-untyped-def]
    return F.fr_add(x, y)


@njit(cache=True)
def _sub_fr(x, y):  # type: ignore[no-untyped-def]
    return F.fr_sub(x, y)


@njit(cache=True)
def _neg_fr(x, y):  # type: ignore[no-untyped-def]
    return F.fr_neg(x)


@njit(cache=True)
def _inv_fr(x, y):  # type: ignore[no-untyped-def]
    return F.fr_inv(x)


CASES: list[tuple[str, int, object, Callable[[int, int, int], int]]] = [
    ("fp mul", F.P, _mul_fp, lambda x, y, q: x * y % q),
    ("fp add", F.P, _add_fp, lambda x, y, q: (x + y) % q),
    ("fp sub", F.P, _sub_fp, lambda x, y, q: (x - y) % q),
    ("fp sqr", F.P, _sqr_fp, lambda x, y, q: x * x % q),
    ("fp neg", F.P, _neg_fp, lambda x, y, q: -x % q),
    ("fp inv", F.P, _inv_fp, lambda x, y, q: pow(x, q - 2, q)),
    ("fr mul", R, _mul_fr, lambda x, y, q: x * y % q),
    ("fr sqr", R, _sqr_fr, lambda x, y, q: x * x % q),
    ("fr add", R, _add_fr, lambda x, y, q: (x + y) % q),
    ("fr sub", R, _sub_fr, lambda x, y, q: (x - y) % q),
    ("fr neg", R, _neg_fr, lambda x, y, q: -x % q),
    ("fr inv", R, _inv_fr, lambda x, y, q: pow(x, q - 2, q)),
]


@pytest.mark.parametrize(("name", "modulus", "kernel", "expected"), CASES, ids=[c[0] for c in CASES])
def test_kernel_matches_python_integers(
    name: str, modulus: int, kernel: object, expected: Callable[[int, int, int], int]
) -> None:
    xs = _values(modulus, 300, seed=1)
    ys = _values(modulus, 300, seed=2)[::-1]
    a = F.to_montgomery(F.limbs(xs), modulus)
    b = F.to_montgomery(F.limbs(ys), modulus)
    out = np.empty_like(a)
    _apply_fp(kernel, a, b, out)
    got = F.ints(F.from_montgomery(out, modulus))
    assert got == [expected(x, y, modulus) for x, y in zip(xs, ys, strict=True)]


def test_montgomery_form_is_x_times_2_256() -> None:
    xs = _values(F.P, 50, seed=3)
    assert F.ints(F.to_montgomery(F.limbs(xs), F.P)) == [(x << 256) % F.P for x in xs]
    assert F.ints(F.limbs(xs)) == xs


@njit(cache=True)
def _fp2_ops(a, b):  # type: ignore[no-untyped-def]
    x = ((a[0, 0], a[0, 1], a[0, 2], a[0, 3]), (a[1, 0], a[1, 1], a[1, 2], a[1, 3]))
    y = ((b[0, 0], b[0, 1], b[0, 2], b[0, 3]), (b[1, 0], b[1, 1], b[1, 2], b[1, 3]))
    return F.fp2_mul(x, y), F.fp2_sqr(x), F.fp2_inv(x), F.fp2_sub(F.fp2_add(x, y), F.fp2_neg(y))


def test_fp2_matches_complex_arithmetic_mod_p() -> None:
    rng = random.Random(4)
    p = F.P
    edges = [
        (0, 0, 0, 0),
        (p - 1, p - 1, p - 1, p - 1),
        (0, p - 1, 1, 0),
        (1, 0, p - 1, p - 2),
        (p - 1, 1, 1, p - 1),
    ]
    randoms = [tuple(rng.randrange(p) for _ in range(4)) for _ in range(20)]
    for x0, x1, y0, y1 in edges + randoms:
        a = F.to_montgomery(F.limbs([x0, x1]), p)
        b = F.to_montgomery(F.limbs([y0, y1]), p)
        mul, sqr, inv, lin = _fp2_ops(a, b)

        def back(v: object) -> list[int]:
            return F.ints(F.from_montgomery(np.array(v, dtype=np.uint64), p))

        assert back(mul) == [(x0 * y0 - x1 * y1) % p, (x0 * y1 + x1 * y0) % p]
        assert back(sqr) == [(x0 * x0 - x1 * x1) % p, 2 * x0 * x1 % p]
        n = pow(x0 * x0 + x1 * x1, p - 2, p)
        assert back(inv) == [x0 * n % p, -x1 * n % p]
        assert back(lin) == [(x0 + 2 * y0) % p, (x1 + 2 * y1) % p]


@njit(cache=True)
def _fp2_predicates(a, b):  # type: ignore[no-untyped-def]
    x = ((a[0, 0], a[0, 1], a[0, 2], a[0, 3]), (a[1, 0], a[1, 1], a[1, 2], a[1, 3]))
    y = ((b[0, 0], b[0, 1], b[0, 2], b[0, 3]), (b[1, 0], b[1, 1], b[1, 2], b[1, 3]))
    return F.fp2_equal(x, y), F.fp2_is_zero(x)


def test_fp2_predicates() -> None:
    p = F.P
    for (x0, x1), (y0, y1) in [
        ((0, 0), (0, 0)),
        ((0, 5), (0, 5)),
        ((3, 5), (3, 4)),
        ((p - 1, 0), (0, p - 1)),
    ]:
        a = F.to_montgomery(F.limbs([x0, x1]), p)
        b = F.to_montgomery(F.limbs([y0, y1]), p)
        assert _fp2_predicates(a, b) == ((x0, x1) == (y0, y1), x0 == x1 == 0)


@pytest.mark.parametrize("modulus", [F.P, R], ids=["p", "r"])
def test_montgomery_limbs_matches_the_array_conversion(modulus: int) -> None:
    xs = _values(modulus, 40, seed=5)
    rows = F.to_montgomery(F.limbs(xs), modulus)
    assert [F.montgomery_limbs(x, modulus) for x in xs] == [tuple(row) for row in rows]
    assert F.montgomery_limbs(-1, modulus) == F.montgomery_limbs(modulus - 1, modulus)


def test_montgomery_conversion_refuses_other_moduli() -> None:
    with pytest.raises(ValueError, match="only BN254"):
        F.to_montgomery(F.limbs([1]), 97)
