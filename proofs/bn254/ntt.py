"""The number-theoretic transform over BN254's scalar field Fr, on (n, 4) Montgomery arrays (field.py).

Roots of unity are snarkjs's: ffjavascript (src/wasm_field1.js) and wasmcurves (src/build_fft.js) take the
smallest quadratic non-residue of Fr, which is 5, and set w[28] = 5^((r - 1) / 2^28) (Fr's 2-adicity is
28), w[k - 1] = w[k]²; the FFT of size 2^k uses w[k]. So the primitive n-th root here is
5^((r - 1) / n), the same element; `root_of_unity` gives it. The prover's H values and a .zkey's H points
(Lagrange bases over these roots, made by snarkjs's `powersoftau prepare phase2`) only agree with this
choice of root.

`ntt(values)` maps the coefficients c_j of a polynomial to its values at ω^i, i = 0..n-1, both in natural
order; `ntt(values, inverse=True)` is the inverse map, 1/n included. `coset_values` maps values on the
domain to values on the coset g·⟨ω⟩ (inverse NTT, scale coefficient j by g^j, NTT), the prover's step.

Internally the forward transform is decimation in time (Cooley-Tukey: bit-reversed input, natural output)
and the inverse decimation in frequency (Gentleman-Sande: natural input, bit-reversed output), so that
`coset_values` needs no permutation at all; `ntt` permutes once. Both are radix 2 and cache-blocked: the
stages whose butterflies stay inside a block of 2^12 elements (128 KiB) run block by block, one block per
thread, and the others run stage by stage over the whole array, the butterflies split between threads.
Twiddles are one table per size: tw[h + j] = ω_{2h}^j for the stage of half-size h, so each stage reads
a contiguous run.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from proofs.bn254.field import (
    FR_ONE,
    FR_ZERO,
    LimbTuple,
    fr_add,
    fr_inv,
    fr_mul,
    fr_pow,
    fr_sub,
    is_zero,
    load,
    montgomery_limbs,
    store,
)
from proofs.field import R

TWO_ADICITY = 28
"""The largest k with 2^k dividing r - 1: NTTs have at most 2^28 points."""

GENERATOR = 5
"""The smallest quadratic non-residue of Fr, ffjavascript's `nqr`: its powers give the roots of unity."""

MAX_SIZE = 1 << TWO_ADICITY

_BLOCK_LOG = 12
_CHUNK = 1 << 12  # elements per task in the element-wise kernels


class NTTError(ValueError):
    """An NTT of a size or shape that the field does not support."""


def log2_size(n: int) -> int:
    """k for n = 2^k with 1 ≤ n ≤ 2^28, or NTTError."""
    if n < 1 or n & (n - 1) or n > MAX_SIZE:
        raise NTTError(f"an NTT over BN254's Fr has a power-of-two size from 1 to 2^28, not {n}")
    return n.bit_length() - 1


def root_of_unity(n: int) -> int:
    """The primitive n-th root of unity snarkjs uses (plain int): 5^((r - 1) / n), for n = 2^k ≤ 2^28."""
    log2_size(n)
    return pow(GENERATOR, (R - 1) // n, R)


# --- scalar helpers -------------------------------------------------------------------------------------


@njit(cache=True)
def _bit_reverse(i, bits):  # type: ignore[no-untyped-def]
    r = 0
    x = i
    for _ in range(bits):
        r = (r << 1) | (x & 1)
        x >>= 1
    return r


def montgomery(x: int) -> LimbTuple:
    """A plain integer (reduced mod r here) as a Montgomery limb tuple, for passing to kernels."""
    return montgomery_limbs(x, R)


# --- tables ---------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def powers(base, n, first):  # type: ignore[no-untyped-def]
    """[first·base^j for j < n] as an (n, 4) Montgomery array (base, first: Montgomery tuples)."""
    out = np.empty((n, 4), dtype=np.uint64)
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        x = fr_mul(first, fr_pow(base, (np.uint64(lo), np.uint64(0), np.uint64(0), np.uint64(0))))
        for j in range(lo, hi):
            store(out, j, x)
            x = fr_mul(x, base)
    return out


@njit(cache=True)
def _twiddle_table(root, log_n):  # type: ignore[no-untyped-def]
    """tw[h + j] = root_{2h}^j for h = 2^s < n, j < h, where root is a primitive n-th root; tw[0] unused."""
    n = 1 << log_n
    tw = np.zeros((max(n, 2), 4), dtype=np.uint64)
    if n < 2:
        return tw
    half = n >> 1
    top = powers(root, half, FR_ONE)
    tw[half:n] = top
    h = half >> 1
    while h >= 1:
        for j in range(h):
            tw[h + j] = tw[2 * h + 2 * j]
        h >>= 1
    return tw


@lru_cache(maxsize=4)
def twiddles(n: int, inverse: bool) -> np.ndarray:
    """The (read-only) twiddle table for size n, of ω_n or of ω_n⁻¹."""
    log_n = log2_size(n)
    w = root_of_unity(n)
    table: np.ndarray = _twiddle_table(montgomery(pow(w, -1, R) if inverse else w), log_n)
    table.setflags(write=False)
    return table


# --- butterflies ----------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _dit_block(a, tw, base, log_block):  # type: ignore[no-untyped-def]
    """Stages h = 1 .. 2^(log_block - 1) of a DIT on a[base : base + 2^log_block]."""
    size = 1 << log_block
    if log_block >= 1:
        for i0 in range(base, base + size, 2):  # h = 1: the twiddle is 1
            u = load(a, i0)
            v = load(a, i0 + 1)
            store(a, i0, fr_add(u, v))
            store(a, i0 + 1, fr_sub(u, v))
    for s in range(1, log_block):
        h = 1 << s
        for start in range(base, base + size, 2 * h):
            for j in range(h):
                i0 = start + j
                u = load(a, i0)
                t = fr_mul(load(a, i0 + h), load(tw, h + j))
                store(a, i0, fr_add(u, t))
                store(a, i0 + h, fr_sub(u, t))


@njit(cache=True, inline="always")
def _dif_block(a, tw, base, log_block):  # type: ignore[no-untyped-def]
    """Stages h = 2^(log_block - 1) .. 1 of a DIF on a[base : base + 2^log_block]."""
    size = 1 << log_block
    for s in range(log_block - 1, 0, -1):
        h = 1 << s
        for start in range(base, base + size, 2 * h):
            for j in range(h):
                i0 = start + j
                u = load(a, i0)
                v = load(a, i0 + h)
                store(a, i0, fr_add(u, v))
                store(a, i0 + h, fr_mul(fr_sub(u, v), load(tw, h + j)))
    if log_block >= 1:
        for i0 in range(base, base + size, 2):
            u = load(a, i0)
            v = load(a, i0 + 1)
            store(a, i0, fr_add(u, v))
            store(a, i0 + 1, fr_sub(u, v))


@njit(cache=True, parallel=True)
def _dit(a, tw, log_n, scale):  # type: ignore[no-untyped-def]
    """In place: bit-reversed input to natural output. When `scale` has n rows, a[i] *= scale[i] first."""
    n = a.shape[0]
    log_block = min(log_n, _BLOCK_LOG)
    block = 1 << log_block
    scaled = scale.shape[0] == n
    for c in prange(n >> log_block):
        base = c * block
        if scaled:
            for i in range(base, base + block):
                store(a, i, fr_mul(load(a, i), load(scale, i)))
        _dit_block(a, tw, base, log_block)
    for s in range(log_block, log_n):
        h = 1 << s
        for t in prange(n >> 1):
            j = t & (h - 1)
            i0 = ((t >> s) << (s + 1)) | j
            u = load(a, i0)
            v = fr_mul(load(a, i0 + h), load(tw, h + j))
            store(a, i0, fr_add(u, v))
            store(a, i0 + h, fr_sub(u, v))


@njit(cache=True, parallel=True)
def _dif(a, tw, log_n):  # type: ignore[no-untyped-def]
    """In place: natural input to bit-reversed output."""
    n = a.shape[0]
    log_block = min(log_n, _BLOCK_LOG)
    block = 1 << log_block
    for s in range(log_n - 1, log_block - 1, -1):
        h = 1 << s
        for t in prange(n >> 1):
            j = t & (h - 1)
            i0 = ((t >> s) << (s + 1)) | j
            u = load(a, i0)
            v = load(a, i0 + h)
            store(a, i0, fr_add(u, v))
            store(a, i0 + h, fr_mul(fr_sub(u, v), load(tw, h + j)))
    for c in prange(n >> log_block):
        _dif_block(a, tw, c * block, log_block)


@njit(cache=True, parallel=True)
def _bit_reverse_permute(a, log_n):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    for i in prange(n):
        j = _bit_reverse(i, log_n)
        if i < j:
            x = load(a, i)
            store(a, i, load(a, j))
            store(a, j, x)


@njit(cache=True, parallel=True)
def _scale_all(a, k):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            store(a, i, fr_mul(load(a, i), k))


@njit(cache=True, parallel=True)
def bit_reversed(a, log_n):  # type: ignore[no-untyped-def]
    """A copy of a with row i moved to row bitreverse(i)."""
    out = np.empty_like(a)
    for i in prange(a.shape[0]):
        out[_bit_reverse(i, log_n)] = a[i]
    return out


def _checked(values: np.ndarray) -> tuple[np.ndarray, int]:
    if values.ndim != 2 or values.shape[1] != 4 or values.dtype != np.uint64:
        raise NTTError(
            "an NTT takes an (n, 4) uint64 array of Montgomery limbs, "
            f"not a {values.dtype} array of shape {values.shape}"
        )
    return np.array(values, order="C"), log2_size(values.shape[0])


_NO_SCALE = np.zeros((0, 4), dtype=np.uint64)
_NO_SCALE.setflags(write=False)  # read-only like the tables, so that _dit compiles once


def ntt(values: np.ndarray, inverse: bool = False) -> np.ndarray:
    """The NTT of size n = len(values) (a power of two ≤ 2^28) of an (n, 4) Montgomery array, natural
    order in and out: out[i] = Σ_j values[j]·ω^(ij), or with inverse=True (1/n)·Σ_j values[j]·ω^(-ij).
    Returns a new array."""
    a, log_n = _checked(values)
    n = a.shape[0]
    if n == 1:
        return a
    _bit_reverse_permute(a, log_n)
    _dit(a, twiddles(n, inverse), log_n, _NO_SCALE)
    if inverse:
        _scale_all(a, montgomery(pow(n, -1, R)))
    return a


@lru_cache(maxsize=2)
def coset_scale(n: int, shift: int) -> np.ndarray:
    """shift^j / n at row bitreverse(j) (Montgomery, read-only): the factors between an inverse DIF and
    a forward DIT that move a polynomial's values from the domain of size n to the coset shift·⟨ω_n⟩."""
    log_n = log2_size(n)
    natural = powers(montgomery(shift), n, montgomery(pow(n, -1, R)))
    table: np.ndarray = bit_reversed(natural, log_n)
    table.setflags(write=False)
    return table


def coset_values_inplace(a: np.ndarray, shift: int) -> None:
    """`coset_values` overwriting a (C-contiguous (n, 4) uint64), without the checks."""
    n = a.shape[0]
    log_n = log2_size(n)
    if n == 1:
        return  # a constant: the same value everywhere
    _dif(a, twiddles(n, True), log_n)
    _dit(a, twiddles(n, False), log_n, coset_scale(n, shift % R))


def coset_values(values: np.ndarray, shift: int) -> np.ndarray:
    """The values of a polynomial of degree < n at shift·ω^i, i < n, from its values at ω^i (Montgomery
    (n, 4) arrays, natural order; shift a plain int). Returns a new array."""
    a, _ = _checked(values)
    coset_values_inplace(a, shift)
    return a


# --- batch inversion ------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def batch_inverse(a):  # type: ignore[no-untyped-def]
    """x⁻¹ for each row of a Montgomery (n, 4) array, with 0 ↦ 0 (Montgomery's trick, one inversion per
    chunk of 4096)."""
    n = a.shape[0]
    out = np.empty_like(a)
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        acc = FR_ONE
        for i in range(lo, hi):  # out[i] = product of the nonzero a[lo..i-1]
            store(out, i, acc)
            x = load(a, i)
            if not is_zero(x):
                acc = fr_mul(acc, x)
        inv = fr_inv(acc)
        for i in range(hi - 1, lo - 1, -1):
            x = load(a, i)
            if is_zero(x):
                store(out, i, FR_ZERO)
            else:
                store(out, i, fr_mul(inv, load(out, i)))
                inv = fr_mul(inv, x)
    return out
