"""Montgomery arithmetic on four 64-bit limbs for BN254's base field Fp, scalar field Fr, and Fp2.

An element is a tuple of four uint64 limbs, least significant first, holding x·2^256 mod q (Montgomery
form, the same bytes snarkjs writes in a .zkey). Arrays of elements are uint64 arrays of shape (n, 4).

numba has no 128-bit integer type (numba issue #2600), so `mac` and `adc` are LLVM intrinsics that widen
to i128; LLVM lowers them to one `mul` and `adc` each. Multiplication is the CIOS method with the
"no-carry" shortcut, valid because both moduli's top limbs are below 2^63 - 1 (gnark-crypto's note on
modular multiplication, https://hackmd.io/@gnark/modular_multiplication).

Every function here is a scalar kernel for use inside other kernels; `limbs`, `ints`, `to_montgomery` and
`from_montgomery` convert arrays at the Python boundary.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from proofs.field import R

P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
"""The base field's modulus (EIP-196)."""

U64 = np.uint64
ZERO = U64(0)
ONE = U64(1)
_MASK = (1 << 64) - 1


def _limb_tuple(x: int) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64]:
    return (U64(x & _MASK), U64((x >> 64) & _MASK), U64((x >> 128) & _MASK), U64(x >> 192))


# --- 128-bit building blocks -------------------------------------------------------------------------


@intrinsic
def mac(typingctx, a, b, c, d):  # type: ignore[no-untyped-def]
    """(hi, lo) of a·b + c + d, which always fits in 128 bits."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        wide = ir.IntType(128)
        x, y, u, v = (builder.zext(arg, wide) for arg in args)
        s = builder.add(builder.add(builder.mul(x, y), u), v)
        lo = builder.trunc(s, ir.IntType(64))
        hi = builder.trunc(builder.lshr(s, ir.Constant(wide, 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, (hi, lo))

    return sig, codegen


@intrinsic
def adc(typingctx, a, b, carry):  # type: ignore[no-untyped-def]
    """(carry out, a + b + carry mod 2^64)."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        wide = ir.IntType(128)
        x, y, c = (builder.zext(arg, wide) for arg in args)
        s = builder.add(builder.add(x, y), c)
        lo = builder.trunc(s, ir.IntType(64))
        hi = builder.trunc(builder.lshr(s, ir.Constant(wide, 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, (hi, lo))

    return sig, codegen


@intrinsic
def sbb(typingctx, a, b, borrow):  # type: ignore[no-untyped-def]
    """(borrow out, a - b - borrow mod 2^64); the borrow out is 0 or 1."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        wide = ir.IntType(128)
        x, y, c = (builder.zext(arg, wide) for arg in args)
        s = builder.sub(builder.sub(x, y), c)
        lo = builder.trunc(s, ir.IntType(64))
        out = builder.trunc(builder.lshr(s, ir.Constant(wide, 127)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, (out, lo))

    return sig, codegen


# --- generic over the modulus q (a limb tuple) ----------------------------------------------------------


@njit(cache=True, inline="always")
def _cios_round(t, a, bi, q, qinv):  # type: ignore[no-untyped-def]
    t0, t1, t2, t3 = t
    A, t0 = mac(a[0], bi, t0, ZERO)
    m = t0 * qinv
    C, _ = mac(m, q[0], t0, ZERO)
    A, t1 = mac(a[1], bi, t1, A)
    C, t0 = mac(m, q[1], t1, C)
    A, t2 = mac(a[2], bi, t2, A)
    C, t1 = mac(m, q[2], t2, C)
    A, t3 = mac(a[3], bi, t3, A)
    C, t2 = mac(m, q[3], t3, C)
    return (t0, t1, t2, C + A)


@njit(cache=True, inline="always")
def _reduce_once(t, q):  # type: ignore[no-untyped-def]
    """t - q if t ≥ q, else t (for t < 2q)."""
    b, d0 = sbb(t[0], q[0], ZERO)
    b, d1 = sbb(t[1], q[1], b)
    b, d2 = sbb(t[2], q[2], b)
    b, d3 = sbb(t[3], q[3], b)
    if b:
        return t
    return (d0, d1, d2, d3)


@njit(cache=True, inline="always")
def _mul(a, b, q, qinv):  # type: ignore[no-untyped-def]
    t = (ZERO, ZERO, ZERO, ZERO)
    t = _cios_round(t, a, b[0], q, qinv)
    t = _cios_round(t, a, b[1], q, qinv)
    t = _cios_round(t, a, b[2], q, qinv)
    t = _cios_round(t, a, b[3], q, qinv)
    return _reduce_once(t, q)


@njit(cache=True, inline="always")
def _add(a, b, q):  # type: ignore[no-untyped-def]
    c, s0 = adc(a[0], b[0], ZERO)
    c, s1 = adc(a[1], b[1], c)
    c, s2 = adc(a[2], b[2], c)
    c, s3 = adc(a[3], b[3], c)
    return _reduce_once((s0, s1, s2, s3), q)  # a + b < 2q < 2^256: no carry out


@njit(cache=True, inline="always")
def _sub(a, b, q):  # type: ignore[no-untyped-def]
    b_, d0 = sbb(a[0], b[0], ZERO)
    b_, d1 = sbb(a[1], b[1], b_)
    b_, d2 = sbb(a[2], b[2], b_)
    b_, d3 = sbb(a[3], b[3], b_)
    if b_:
        c, d0 = adc(d0, q[0], ZERO)
        c, d1 = adc(d1, q[1], c)
        c, d2 = adc(d2, q[2], c)
        _, d3 = adc(d3, q[3], c)
    return (d0, d1, d2, d3)


@njit(cache=True, inline="always")
def is_zero(a):  # type: ignore[no-untyped-def]
    return (a[0] | a[1] | a[2] | a[3]) == ZERO


@njit(cache=True, inline="always")
def equal(a, b):  # type: ignore[no-untyped-def]
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]


def _constants(
    q: int,
) -> tuple[tuple[np.uint64, ...], np.uint64, tuple[np.uint64, ...], tuple[np.uint64, ...]]:
    """(q as limbs, -q⁻¹ mod 2^64, 2^256 mod q = one in Montgomery form, 2^512 mod q)."""
    return (
        _limb_tuple(q),
        U64((-pow(q, -1, 1 << 64)) % (1 << 64)),
        _limb_tuple((1 << 256) % q),
        _limb_tuple((1 << 512) % q),
    )


FP_MODULUS, FP_INV, FP_ONE, FP_R2 = _constants(P)
FR_MODULUS, FR_INV, FR_ONE, FR_R2 = _constants(R)
FP_ZERO = FR_ZERO = (ZERO, ZERO, ZERO, ZERO)
_FP_EXP_INV = _limb_tuple(P - 2)
_FR_EXP_INV = _limb_tuple(R - 2)


# --- Fp ------------------------------------------------------------------------------------------------


@njit(cache=True)
def fp_mul(a, b):  # type: ignore[no-untyped-def]
    return _mul(a, b, FP_MODULUS, FP_INV)


@njit(cache=True)
def fp_sqr(a):  # type: ignore[no-untyped-def]
    return _mul(a, a, FP_MODULUS, FP_INV)


@njit(cache=True)
def fp_add(a, b):  # type: ignore[no-untyped-def]
    return _add(a, b, FP_MODULUS)


@njit(cache=True)
def fp_sub(a, b):  # type: ignore[no-untyped-def]
    return _sub(a, b, FP_MODULUS)


@njit(cache=True)
def fp_neg(a):  # type: ignore[no-untyped-def]
    return _sub(FP_ZERO, a, FP_MODULUS)


@njit(cache=True)
def fp_pow(a, e):  # type: ignore[no-untyped-def]
    """a^e for e a limb tuple (plain, not Montgomery), left to right."""
    r = FP_ONE
    for k in range(3, -1, -1):
        for i in range(63, -1, -1):
            r = fp_sqr(r)
            if (e[k] >> U64(i)) & ONE:
                r = fp_mul(r, a)
    return r


@njit(cache=True)
def fp_inv(a):  # type: ignore[no-untyped-def]
    """a⁻¹ by Fermat (a^(p-2)); 0 maps to 0. Use batch inversion where many are needed."""
    return fp_pow(a, _FP_EXP_INV)


# --- Fr ------------------------------------------------------------------------------------------------


@njit(cache=True)
def fr_mul(a, b):  # type: ignore[no-untyped-def]
    return _mul(a, b, FR_MODULUS, FR_INV)


@njit(cache=True)
def fr_add(a, b):  # type: ignore[no-untyped-def]
    return _add(a, b, FR_MODULUS)


@njit(cache=True)
def fr_sub(a, b):  # type: ignore[no-untyped-def]
    return _sub(a, b, FR_MODULUS)


@njit(cache=True)
def fr_neg(a):  # type: ignore[no-untyped-def]
    return _sub(FR_ZERO, a, FR_MODULUS)


@njit(cache=True)
def fr_pow(a, e):  # type: ignore[no-untyped-def]
    r = FR_ONE
    for k in range(3, -1, -1):
        for i in range(63, -1, -1):
            r = fr_mul(r, r)
            if (e[k] >> U64(i)) & ONE:
                r = fr_mul(r, a)
    return r


@njit(cache=True)
def fr_inv(a):  # type: ignore[no-untyped-def]
    return fr_pow(a, _FR_EXP_INV)


# --- Fp2 = Fp[u]/(u² + 1); an element is a pair (c0, c1) = c0 + c1·u of Fp tuples ----------------------


@njit(cache=True)
def fp2_add(a, b):  # type: ignore[no-untyped-def]
    return (fp_add(a[0], b[0]), fp_add(a[1], b[1]))


@njit(cache=True)
def fp2_sub(a, b):  # type: ignore[no-untyped-def]
    return (fp_sub(a[0], b[0]), fp_sub(a[1], b[1]))


@njit(cache=True)
def fp2_neg(a):  # type: ignore[no-untyped-def]
    return (fp_neg(a[0]), fp_neg(a[1]))


@njit(cache=True)
def fp2_mul(a, b):  # type: ignore[no-untyped-def]
    """Karatsuba: three Fp multiplications."""
    v0 = fp_mul(a[0], b[0])
    v1 = fp_mul(a[1], b[1])
    s = fp_mul(fp_add(a[0], a[1]), fp_add(b[0], b[1]))
    return (fp_sub(v0, v1), fp_sub(fp_sub(s, v0), v1))


@njit(cache=True)
def fp2_sqr(a):  # type: ignore[no-untyped-def]
    """(a0 + a1)(a0 - a1) + 2·a0·a1·u: two Fp multiplications."""
    t = fp_mul(a[0], a[1])
    return (fp_mul(fp_add(a[0], a[1]), fp_sub(a[0], a[1])), fp_add(t, t))


@njit(cache=True)
def fp2_inv(a):  # type: ignore[no-untyped-def]
    """(a0 - a1·u) / (a0² + a1²)."""
    d = fp_inv(fp_add(fp_sqr(a[0]), fp_sqr(a[1])))
    return (fp_mul(a[0], d), fp_neg(fp_mul(a[1], d)))


@njit(cache=True)
def fp2_is_zero(a):  # type: ignore[no-untyped-def]
    return is_zero(a[0]) and is_zero(a[1])


# --- arrays at the Python boundary ------------------------------------------------------------------------


def limbs(values: list[int] | tuple[int, ...]) -> np.ndarray:
    """Plain (not Montgomery) 256-bit integers as an (n, 4) uint64 array."""
    data = b"".join(int(v).to_bytes(32, "little") for v in values)
    return np.frombuffer(data, dtype="<u8").reshape(len(values), 4).copy()


def ints(array: np.ndarray) -> list[int]:
    """The inverse of `limbs`: an (n, 4) uint64 array as Python integers."""
    raw = np.ascontiguousarray(array, dtype="<u8").tobytes()
    return [int.from_bytes(raw[i : i + 32], "little") for i in range(0, len(raw), 32)]


@njit(cache=True, parallel=True)
def _mul_rows(array, k, q, qinv):  # type: ignore[no-untyped-def]
    out = np.empty_like(array)
    for i in prange(array.shape[0]):
        x = (array[i, 0], array[i, 1], array[i, 2], array[i, 3])
        r = _mul(x, k, q, qinv)
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = r
    return out


def _field(modulus: int) -> tuple[tuple[np.uint64, ...], np.uint64, tuple[np.uint64, ...]]:
    if modulus == P:
        return FP_MODULUS, FP_INV, FP_R2
    if modulus == R:
        return FR_MODULUS, FR_INV, FR_R2
    raise ValueError(f"no Montgomery kernels for modulus {modulus}: only BN254's P and R")


def to_montgomery(array: np.ndarray, modulus: int) -> np.ndarray:
    """x·2^256 mod q for each row of a plain (n, 4) array of values already below q."""
    q, qinv, r2 = _field(modulus)
    return _mul_rows(np.ascontiguousarray(array, dtype=np.uint64), r2, q, qinv)  # type: ignore[no-any-return]


def from_montgomery(array: np.ndarray, modulus: int) -> np.ndarray:
    """The plain values of a Montgomery (n, 4) array."""
    q, qinv, _ = _field(modulus)
    one = (ONE, ZERO, ZERO, ZERO)
    return _mul_rows(np.ascontiguousarray(array, dtype=np.uint64), one, q, qinv)  # type: ignore[no-any-return]
