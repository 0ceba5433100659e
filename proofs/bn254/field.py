"""Montgomery arithmetic on four 64-bit limbs for BN254's base field Fp, scalar field Fr, and Fp2: the one
implementation of field arithmetic for the numba kernels (curve.py, msm.py, ntt.py and qap.py use it).

An element is a tuple of four uint64 limbs, least significant first, holding x·2^256 mod q (Montgomery
form, the same bytes snarkjs writes in a .zkey). An Fp2 = Fp[u]/(u² + 1) element is a pair (c0, c1) =
c0 + c1·u of Fp elements. Arrays of elements are uint64 arrays of shape (n, 4) (or (n, 2, 4) for Fp2).

numba has no 128-bit integer type (numba issue #2600), so the arithmetic is written as LLVM IR: products
widen to i128 (one `mulx` each), and the additions, subtractions and comparisons of whole elements are
i256 operations, which LLVM lowers to add/adc, sub/sbb and cmov chains. `fp_mul`, `fp_sqr`, `fp_add`,
`fp_sub`, `fp_neg`, the same for Fr (`fr_*`) and for Fp2 (`fp2_*`) are numba intrinsics, made by one
factory (`_field_op`) from one set of IR emitters (`_Emitter`) that take the modulus as compile-time
constants. Their IR lands where they are called, and numba sees one call per operation, so they cost no
numba inlining time at compile.

Multiplication is the CIOS method with the "no-carry" shortcut, valid because both moduli's top limbs are
below 2^63 - 1 (gnark-crypto's note on modular multiplication,
https://hackmd.io/@gnark/modular_multiplication), its final subtraction a select; additions reduce by a
select, subtractions add back q under a mask: no branches on the data, which random data would
mispredict. Fp2 multiplication is Karatsuba (three Fp multiplications), squaring
(a0 + a1)(a0 - a1) + 2·a0·a1·u (two). Inversions (`fp_inv`, `fr_inv`, `fp2_inv`) are Fermat's, as
ordinary numba functions; use batch inversion where many are needed.

These are scalar kernels for use inside other kernels: the intrinsics cannot be called from Python.
`limbs`, `ints`, `to_montgomery` and `from_montgomery` convert arrays at the Python boundary,
`montgomery_limbs` single values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

LimbTuple = tuple[np.uint64, np.uint64, np.uint64, np.uint64]


def _limb_tuple(x: int) -> LimbTuple:
    return (U64(x & _MASK), U64((x >> 64) & _MASK), U64((x >> 128) & _MASK), U64(x >> 192))


def montgomery_limbs(x: int, modulus: int) -> LimbTuple:
    """A plain integer (reduced mod q here) as a Montgomery limb tuple, for passing to kernels."""
    return _limb_tuple(((x % modulus) << 256) % modulus)


def _constants(q: int) -> tuple[LimbTuple, np.uint64, LimbTuple, LimbTuple]:
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
FP2_ZERO = (FP_ZERO, FP_ZERO)
FP2_ONE = (FP_ONE, FP_ZERO)
_FP_EXP_INV = _limb_tuple(P - 2)
_FR_EXP_INV = _limb_tuple(R - 2)


@intrinsic
def adc(typingctx, a, b, carry):  # type: ignore[no-untyped-def]
    """(carry out, a + b + carry mod 2^64), for limb arithmetic outside the fields (msm.py's digits)."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        wide = ir.IntType(128)
        x, y, c = (builder.zext(arg, wide) for arg in args)
        s = builder.add(builder.add(x, y), c)
        lo = builder.trunc(s, ir.IntType(64))
        hi = builder.trunc(builder.lshr(s, ir.Constant(wide, 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, (hi, lo))

    return sig, codegen


# --- the arithmetic as LLVM IR ------------------------------------------------------------------------------

_I64 = ir.IntType(64)
_I128 = ir.IntType(128)
_I256 = ir.IntType(256)
Emitted = list[Any]
"""An element in IR: four i64 values, least significant first."""
Emitted2 = list[Emitted]
"""An Fp2 element in IR: [c0, c1]."""


def _mac(builder: Any, a: Any, b: Any, c: Any, d: Any) -> tuple[Any, Any]:
    """(hi, lo) of a·b + c + d, which always fits in 128 bits."""
    s = builder.mul(builder.zext(a, _I128), builder.zext(b, _I128))
    s = builder.add(builder.add(s, builder.zext(c, _I128)), builder.zext(d, _I128))
    return builder.trunc(builder.lshr(s, ir.Constant(_I128, 64)), _I64), builder.trunc(s, _I64)


def _join(builder: Any, x: Emitted) -> Any:
    """Four i64 limbs as one i256 (which LLVM keeps in four registers)."""
    v = builder.zext(x[0], _I256)
    for k in range(1, 4):
        v = builder.or_(v, builder.shl(builder.zext(x[k], _I256), ir.Constant(_I256, 64 * k)))
    return v


def _split(builder: Any, v: Any) -> Emitted:
    return [builder.trunc(builder.lshr(v, ir.Constant(_I256, 64 * k)), _I64) for k in range(4)]


class _Emitter:
    """IR for the arithmetic of the prime field of modulus q (all operands reduced, below q), and of
    Fp[u]/(u² + 1) over it (used for q = p)."""

    def __init__(self, q: int) -> None:
        limbs_, qinv, _, _ = _constants(q)
        self.q = [ir.Constant(_I64, int(v)) for v in limbs_]
        self.q256 = ir.Constant(_I256, q)
        self.qinv = ir.Constant(_I64, int(qinv))

    def reduce(self, builder: Any, t: Any) -> Emitted:
        """t - q if t ≥ q, else t, for an i256 t < 2q (sub/sbb, then cmov on the borrow)."""
        d = builder.usub_with_overflow(t, self.q256)
        return _split(builder, builder.select(builder.extract_value(d, 1), t, builder.extract_value(d, 0)))

    def mul(self, builder: Any, x: Emitted, y: Emitted) -> Emitted:
        """x·y·2^-256 mod q: CIOS with the no-carry shortcut, then one conditional subtraction."""
        zero = ir.Constant(_I64, 0)
        q = self.q
        t = [zero, zero, zero, zero]
        for i in range(4):
            hi, t0 = _mac(builder, x[0], y[i], t[0], zero)
            m = builder.mul(t0, self.qinv)
            c, _ = _mac(builder, m, q[0], t0, zero)
            for k in range(1, 4):
                hi, tk = _mac(builder, x[k], y[i], t[k], hi)
                c, t[k - 1] = _mac(builder, m, q[k], tk, c)
            t[3] = builder.add(c, hi)
        return self.reduce(builder, _join(builder, t))  # t < 2q

    def sqr(self, builder: Any, x: Emitted) -> Emitted:
        return self.mul(builder, x, x)

    def add(self, builder: Any, x: Emitted, y: Emitted) -> Emitted:
        s = builder.add(_join(builder, x), _join(builder, y))  # x + y < 2q < 2^256: no carry out
        return self.reduce(builder, s)

    def sub(self, builder: Any, x: Emitted, y: Emitted) -> Emitted:
        d = builder.usub_with_overflow(_join(builder, x), _join(builder, y))
        mask = builder.sext(builder.extract_value(d, 1), _I256)  # all ones when x < y: add q back
        return _split(builder, builder.add(builder.extract_value(d, 0), builder.and_(self.q256, mask)))

    def neg(self, builder: Any, x: Emitted) -> Emitted:
        return self.sub(builder, [ir.Constant(_I64, 0)] * 4, x)

    def mul2(self, builder: Any, a: Emitted2, b: Emitted2) -> Emitted2:
        v0 = self.mul(builder, a[0], b[0])
        v1 = self.mul(builder, a[1], b[1])
        s = self.mul(builder, self.add(builder, a[0], a[1]), self.add(builder, b[0], b[1]))
        return [self.sub(builder, v0, v1), self.sub(builder, self.sub(builder, s, v0), v1)]

    def sqr2(self, builder: Any, a: Emitted2) -> Emitted2:
        t = self.mul(builder, a[0], a[1])
        c0 = self.mul(builder, self.add(builder, a[0], a[1]), self.sub(builder, a[0], a[1]))
        return [c0, self.add(builder, t, t)]

    def add2(self, builder: Any, a: Emitted2, b: Emitted2) -> Emitted2:
        return [self.add(builder, a[0], b[0]), self.add(builder, a[1], b[1])]

    def sub2(self, builder: Any, a: Emitted2, b: Emitted2) -> Emitted2:
        return [self.sub(builder, a[0], b[0]), self.sub(builder, a[1], b[1])]

    def neg2(self, builder: Any, a: Emitted2) -> Emitted2:
        return [self.neg(builder, a[0]), self.neg(builder, a[1])]


_FP = _Emitter(P)
_FR = _Emitter(R)


# --- the intrinsics ---------------------------------------------------------------------------------------

_FP_TYPE = types.UniTuple(types.uint64, 4)
_FP2_TYPE = types.UniTuple(_FP_TYPE, 2)


def _is_fp_type(t: Any) -> bool:
    return isinstance(t, types.BaseTuple) and len(t) == 4 and all(isinstance(e, types.Integer) for e in t)


def _is_fp2_type(t: Any) -> bool:
    return isinstance(t, types.BaseTuple) and len(t) == 2 and all(_is_fp_type(e) for e in t)


def _unpack(context: Any, builder: Any, ty: Any, value: Any, pair: bool) -> Any:
    """An element's IR value as Emitted (Emitted2 for a pair), its limbs cast to uint64."""
    if pair:
        return [_unpack(context, builder, ty[j], builder.extract_value(value, j), False) for j in range(2)]
    return [context.cast(builder, builder.extract_value(value, k), ty[k], types.uint64) for k in range(4)]


def _pack(context: Any, builder: Any, value: Any, pair: bool) -> Any:
    if pair:
        halves = [context.make_tuple(builder, _FP_TYPE, half) for half in value]
        return context.make_tuple(builder, _FP2_TYPE, halves)
    return context.make_tuple(builder, _FP_TYPE, value)


def _field_op(name: str, arity: int, pair: bool, emit: Callable[..., Any], doc: str) -> Any:
    """The intrinsic `name`: `arity` elements of a prime field (a tuple of four integers) or, when pair,
    of Fp2 (a pair of those) to one (tuple of uint64), its code emit(builder, *operands). Each gets its
    own name (numba keys compiled code by qualified name, so implementations must never share one)."""
    accepts = _is_fp2_type if pair else _is_fp_type
    result = _FP2_TYPE if pair else _FP_TYPE

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        operands = [_unpack(context, builder, t, v, pair) for t, v in zip(signature.args, args, strict=True)]
        return _pack(context, builder, emit(builder, *operands), pair)

    def typer(*args: Any) -> Any:
        if not all(accepts(a) for a in args):
            return None
        return result(*args), codegen

    def unary(typingctx, a):  # type: ignore[no-untyped-def]
        return typer(a)

    def binary(typingctx, a, b):  # type: ignore[no-untyped-def]
        return typer(a, b)

    definition = unary if arity == 1 else binary
    definition.__name__ = definition.__qualname__ = name
    definition.__doc__ = doc
    codegen.__name__ = codegen.__qualname__ = f"{name}_codegen"
    return intrinsic(definition)


# --- Fp ------------------------------------------------------------------------------------------------

fp_mul = _field_op("fp_mul", 2, False, _FP.mul, "a·b in Fp (Montgomery product a·b·2^-256 mod p).")
fp_sqr = _field_op("fp_sqr", 1, False, _FP.sqr, "a² in Fp.")
fp_add = _field_op("fp_add", 2, False, _FP.add, "a + b in Fp.")
fp_sub = _field_op("fp_sub", 2, False, _FP.sub, "a - b in Fp.")
fp_neg = _field_op("fp_neg", 1, False, _FP.neg, "-a in Fp.")


@njit(cache=True, inline="always")
def is_zero(a):  # type: ignore[no-untyped-def]
    return (a[0] | a[1] | a[2] | a[3]) == ZERO


@njit(cache=True, inline="always")
def equal(a, b):  # type: ignore[no-untyped-def]
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]


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

fr_mul = _field_op("fr_mul", 2, False, _FR.mul, "a·b in Fr (Montgomery product a·b·2^-256 mod r).")
fr_sqr = _field_op("fr_sqr", 1, False, _FR.sqr, "a² in Fr.")
fr_add = _field_op("fr_add", 2, False, _FR.add, "a + b in Fr.")
fr_sub = _field_op("fr_sub", 2, False, _FR.sub, "a - b in Fr.")
fr_neg = _field_op("fr_neg", 1, False, _FR.neg, "-a in Fr.")


@njit(cache=True)
def fr_pow(a, e):  # type: ignore[no-untyped-def]
    r = FR_ONE
    for k in range(3, -1, -1):
        for i in range(63, -1, -1):
            r = fr_sqr(r)
            if (e[k] >> U64(i)) & ONE:
                r = fr_mul(r, a)
    return r


@njit(cache=True)
def fr_inv(a):  # type: ignore[no-untyped-def]
    return fr_pow(a, _FR_EXP_INV)


# --- Fp2 = Fp[u]/(u² + 1); an element is a pair (c0, c1) = c0 + c1·u of Fp tuples ----------------------

fp2_mul = _field_op("fp2_mul", 2, True, _FP.mul2, "a·b in Fp2 (Karatsuba: three Fp multiplications).")
fp2_sqr = _field_op("fp2_sqr", 1, True, _FP.sqr2, "a² = (a0 + a1)(a0 - a1) + 2·a0·a1·u in Fp2.")
fp2_add = _field_op("fp2_add", 2, True, _FP.add2, "a + b in Fp2.")
fp2_sub = _field_op("fp2_sub", 2, True, _FP.sub2, "a - b in Fp2.")
fp2_neg = _field_op("fp2_neg", 1, True, _FP.neg2, "-a in Fp2.")


@njit(cache=True)
def fp2_inv(a):  # type: ignore[no-untyped-def]
    """(a0 - a1·u) / (a0² + a1²)."""
    d = fp_inv(fp_add(fp_sqr(a[0]), fp_sqr(a[1])))
    return (fp_mul(a[0], d), fp_neg(fp_mul(a[1], d)))


@njit(cache=True)
def fp2_is_zero(a):  # type: ignore[no-untyped-def]
    return is_zero(a[0]) and is_zero(a[1])


@njit(cache=True, inline="always")
def fp2_equal(a, b):  # type: ignore[no-untyped-def]
    return equal(a[0], b[0]) and equal(a[1], b[1])


# --- rows of (n, 4) arrays ---------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def load(a, i):  # type: ignore[no-untyped-def]
    """Row i of an (n, 4) array as an element tuple."""
    return (a[i, 0], a[i, 1], a[i, 2], a[i, 3])


@njit(cache=True, inline="always")
def store(a, i, x):  # type: ignore[no-untyped-def]
    """Row i of an (n, 4) array = the element tuple x."""
    a[i, 0] = x[0]
    a[i, 1] = x[1]
    a[i, 2] = x[2]
    a[i, 3] = x[3]


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
def _mul_rows(array, k, fr):  # type: ignore[no-untyped-def]
    """array[i]·k for each row, in Fr when fr is true, else in Fp."""
    out = np.empty_like(array)
    for i in prange(array.shape[0]):
        x = (array[i, 0], array[i, 1], array[i, 2], array[i, 3])
        r = fr_mul(x, k) if fr else fp_mul(x, k)
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = r
    return out


def _is_fr(modulus: int) -> bool:
    if modulus not in (P, R):
        raise ValueError(f"no Montgomery kernels for modulus {modulus}: only BN254's P and R")
    return modulus == R


def to_montgomery(array: np.ndarray, modulus: int) -> np.ndarray:
    """x·2^256 mod q for each row of a plain (n, 4) array of values already below q."""
    fr = _is_fr(modulus)
    r2 = FR_R2 if fr else FP_R2
    return _mul_rows(np.ascontiguousarray(array, dtype=np.uint64), r2, fr)  # type: ignore[no-any-return]


def from_montgomery(array: np.ndarray, modulus: int) -> np.ndarray:
    """The plain values of a Montgomery (n, 4) array."""
    fr = _is_fr(modulus)
    one = (ONE, ZERO, ZERO, ZERO)
    return _mul_rows(np.ascontiguousarray(array, dtype=np.uint64), one, fr)  # type: ignore[no-any-return]
