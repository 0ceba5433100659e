"""The NTT over BN254's Fr: against the definition in Python integers, its own inverse, and snarkjs's roots
of unity (the values ffjavascript 0.3.1 computes for Fr.w[k])."""

from __future__ import annotations

import random

import numpy as np
import pytest

from proofs.bn254 import ntt
from proofs.bn254.field import from_montgomery, ints, limbs, to_montgomery
from proofs.field import R

# ffjavascript 0.3.1, buildBn128(): Fr.toString(Fr.w[k]).
FFJAVASCRIPT_W = {
    1: R - 1,
    2: 21888242871839275217838484774961031246007050428528088939761107053157389710902,
    3: 19540430494807482326159819597004422086093766032135589407132600596362845576832,
    16: 421743594562400382753388642386256516545992082196004333756405989743524594615,
    28: 19103219067921713944291392827692070036145651957329286315305642004821462161904,
}


def mont(values: list[int]) -> np.ndarray:
    return to_montgomery(limbs(values), R)


def plain(array: np.ndarray) -> list[int]:
    return ints(from_montgomery(array, R))


def horner(coeffs: list[int], x: int) -> int:
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % R
    return acc


def random_values(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(R) for _ in range(n)]


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32, 64])
def test_ntt_is_the_dft(n: int) -> None:
    values = random_values(n, n)
    w = ntt.root_of_unity(n)
    forward = [sum(v * pow(w, i * j, R) for j, v in enumerate(values)) % R for i in range(n)]
    assert plain(ntt.ntt(mont(values))) == forward
    w_inv, n_inv = pow(w, -1, R), pow(n, -1, R)
    inverse = [n_inv * sum(v * pow(w_inv, i * j, R) for j, v in enumerate(values)) % R for i in range(n)]
    assert plain(ntt.ntt(mont(values), inverse=True)) == inverse


@pytest.mark.parametrize("log_n", [13, 14])
def test_ntt_beyond_one_cache_block(log_n: int) -> None:
    """Sizes above 2^12 also run the stages that span blocks: spot-check outputs by Horner."""
    n = 1 << log_n
    coeffs = random_values(n, log_n)
    out = plain(ntt.ntt(mont(coeffs)))
    w = ntt.root_of_unity(n)
    for i in (0, 1, 5, n // 2 + 3, n - 1):
        assert out[i] == horner(coeffs, pow(w, i, R))


@pytest.mark.parametrize("log_n", [0, 1, 3, 7, 10, 12])
def test_inverse_undoes_forward(log_n: int) -> None:
    values = mont(random_values(1 << log_n, 100 + log_n))
    assert np.array_equal(ntt.ntt(ntt.ntt(values), inverse=True), values)
    assert np.array_equal(ntt.ntt(ntt.ntt(values, inverse=True)), values)


def test_ntt_leaves_its_input_alone() -> None:
    values = mont(random_values(16, 7))
    copy = values.copy()
    ntt.ntt(values)
    ntt.coset_values(values, 3)
    assert np.array_equal(values, copy)


@pytest.mark.parametrize(("log_n", "shift"), [(0, 9), (1, 7), (4, 5), (6, 25), (13, 12345)])
def test_coset_values(log_n: int, shift: int) -> None:
    """coset_values maps the values of a polynomial on the domain to its values on shift·domain."""
    n = 1 << log_n
    coeffs = random_values(n, 200 + log_n)
    on_domain = ntt.ntt(mont(coeffs))
    out = plain(ntt.coset_values(on_domain, shift))
    w = ntt.root_of_unity(n)
    for i in sorted({0, 1 % n, n // 2, n - 1}):
        assert out[i] == horner(coeffs, shift * pow(w, i, R) % R)


@pytest.mark.parametrize("log_n", range(1, 29))
def test_roots_are_primitive(log_n: int) -> None:
    n = 1 << log_n
    w = ntt.root_of_unity(n)
    assert pow(w, n // 2, R) == R - 1
    assert ntt.root_of_unity(n // 2) == w * w % R


def test_roots_are_snarkjs_roots() -> None:
    # ffjavascript's nqr: the first of 2, 3, ... whose Legendre symbol is -1.
    assert [pow(q, (R - 1) // 2, R) == R - 1 for q in (2, 3, 4, 5)] == [False, False, False, True]
    assert (R - 1) % (1 << 28) == 0 and ((R - 1) >> 28) % 2 == 1
    assert ntt.root_of_unity(1 << 28) == pow(5, (R - 1) >> 28, R)
    for k, w in FFJAVASCRIPT_W.items():
        assert ntt.root_of_unity(1 << k) == w
    assert ntt.root_of_unity(1) == 1


@pytest.mark.parametrize("n", [0, 3, 12, 1 << 29])
def test_bad_sizes(n: int) -> None:
    with pytest.raises(ntt.NTTError, match="power-of-two size"):
        ntt.root_of_unity(n)


def test_bad_arrays() -> None:
    with pytest.raises(ntt.NTTError, match="power-of-two size"):
        ntt.ntt(mont([1, 2, 3]))
    with pytest.raises(ntt.NTTError, match=r"\(n, 4\) uint64 array"):
        ntt.ntt(np.zeros((4, 3), dtype=np.uint64))
    with pytest.raises(ntt.NTTError, match="not a int64 array"):
        ntt.ntt(np.zeros((4, 4), dtype=np.int64))


def test_batch_inverse_and_powers() -> None:
    values = [*random_values(5000, 9), 0, 1, R - 1, 0]
    out = plain(ntt.batch_inverse(mont(values)))
    assert out == [pow(v, -1, R) if v else 0 for v in values]
    base, first = 123456789, 987654321
    table = plain(ntt.powers(ntt.montgomery(base), 5000, ntt.montgomery(first)))
    assert table[:3] == [first, first * base % R, first * base * base % R]
    assert table[4099] == first * pow(base, 4099, R) % R
