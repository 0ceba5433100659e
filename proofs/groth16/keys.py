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

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from proofs.bn254.field import P
from proofs.field import R as _R

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
    input (and the constant wire) in A. C is not stored: the prover computes it as A·B row by row.

    Compact form (`value_index` set, as `read_proving_key` keeps a key for proving): `value` holds each
    distinct value once, (k, 4), and entry e's value is value[value_index[e]] (uint32); `matrix` is then
    uint8. Circuits repeat a few values over and over (batch-64: 1,335 distinct in 1.4 million entries),
    so an entry takes 13 bytes instead of 44. `expanded()` gives the one-value-per-entry form, which the
    .zkey writer takes."""

    matrix: np.ndarray
    constraint: np.ndarray
    signal: np.ndarray
    value: np.ndarray
    value_index: np.ndarray | None = None

    def expanded(self) -> Coefficients:
        """These coefficients with one value per entry (themselves when they are already)."""
        if self.value_index is None:
            return self
        return Coefficients(self.matrix, self.constraint, self.signal, self.value[self.value_index])


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
    """The proving key of a .zkey file: the key `proofs.formats.zkey.read` gives, with the same checks
    and the same errors, read lean. `zkey.read` holds the file's bytes, a copy of every section and the
    key's arrays at once (three times the key: a 2^16 key of 87 MiB, most of it coefficients, peaks at
    about 260 MiB); here the file is mapped read-only, each part is copied (coefficients converted) out of
    the mapping a slice at a time into its final array, and the slice's pages are dropped from this
    process as soon as it is done (madvise; they stay in the page cache for the next reader), so the peak
    is the key's arrays and a few MiB. zkey's own helpers check each part."""
    from proofs.formats import unpack_sections  # noqa: PLC0415  (proofs.formats.zkey imports this module)

    source = str(path)
    with open(path, "rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            unpack_sections(b"", b"zkey", 1, source)  # raises: not a zkey file
            raise
    # The mapping is unmapped when its last view goes: on return, or with the error raised (whose
    # traceback holds views of it; closing it here would fail on those).
    return _KeyReader(mapped, memoryview(mapped), source).read()


class _KeyReader:
    """read_proving_key's work: the sections of a mapped .zkey as views, read one by one (zkey.from_bytes's
    order and checks, zkey's helpers), each section's pages dropped once it is read."""

    _SLICE = 1 << 16  # coefficients converted per step: 2.8 MiB of the file

    def __init__(self, mapped: mmap.mmap, view: memoryview, source: str) -> None:
        from proofs.formats import unpack_sections, zkey  # noqa: PLC0415

        self.mapped, self.view, self.source, self.zkey = mapped, view, source, zkey
        _, self.sections = unpack_sections(cast(bytes, view), zkey.MAGIC, zkey.VERSION, source)
        self.offsets: dict[int, int] = {}  # where each section's content starts in the file
        pos = 12
        while pos < len(view):
            kind, size = struct.unpack_from("<IQ", view, pos)
            self.offsets.setdefault(kind, pos + 12)
            pos += 12 + size

    def section(self, kind: int) -> memoryview:
        from proofs.formats import unique_section  # noqa: PLC0415

        return cast(memoryview, unique_section(self.sections, kind, self.source))

    def drop(self, kind: int, start: int = 0, length: int | None = None) -> None:
        """Drop the pages of bytes [start, start + length) of section `kind` from this process."""
        if not hasattr(self.mapped, "madvise"):
            return
        size = len(self.section(kind))
        first = self.offsets[kind] + start
        end = self.offsets[kind] + (size if length is None else min(size, start + length))
        aligned = first - first % mmap.PAGESIZE
        if end > aligned:
            self.mapped.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)

    def read(self) -> ProvingKey:
        from proofs.formats import FormatError  # noqa: PLC0415

        zkey, source = self.zkey, self.source
        header = self.section(zkey.HEADER)
        if len(header) != 4:
            raise FormatError(f"{source}: the header section has {len(header)} bytes, not 4")
        (protocol,) = struct.unpack("<I", header)
        if protocol != zkey.GROTH16_PROTOCOL:
            name = zkey._PROTOCOLS.get(protocol, "unknown")
            raise FormatError(f"{source}: the key is for protocol {protocol} ({name}), not Groth16 (1)")
        n_vars, n_public, domain_size, points = self._groth16_header()
        ic = self._ic(n_public)
        vk = VerifyingKey(
            alpha_1=points["alpha_1"],  # type: ignore[arg-type]
            beta_2=points["beta_2"],  # type: ignore[arg-type]
            gamma_2=points["gamma_2"],  # type: ignore[arg-type]
            delta_2=points["delta_2"],  # type: ignore[arg-type]
            ic=ic,
            development=zkey.DEVELOPMENT_SECTION in self.sections,
        )
        if vk.development:
            self.section(zkey.DEVELOPMENT_SECTION)
        contributions = zkey.check_contributions(bytes(self.section(zkey.CONTRIBUTIONS)), source)
        return ProvingKey(
            vk=vk,
            n_vars=n_vars,
            domain_size=domain_size,
            beta_1=points["beta_1"],  # type: ignore[arg-type]
            delta_1=points["delta_1"],  # type: ignore[arg-type]
            a_query=self._table(zkey.POINTS_A, n_vars, (2, 4), "A"),
            b1_query=self._table(zkey.POINTS_B1, n_vars, (2, 4), "B1"),
            b2_query=self._table(zkey.POINTS_B2, n_vars, (2, 2, 4), "B2"),
            c_query=self._table(zkey.POINTS_C, n_vars - n_public - 1, (2, 4), "C"),
            h_query=self._table(zkey.POINTS_H, domain_size, (2, 4), "H"),
            coefficients=self._coefficients(n_vars, domain_size),
            contributions=contributions,
        )

    def _groth16_header(self) -> tuple[int, int, int, dict[str, G1Point | G2Point]]:
        return self.zkey.groth16_header(bytes(self.section(self.zkey.GROTH16_HEADER)), self.source)

    def _ic(self, n_public: int) -> tuple[G1Point, ...]:
        return self.zkey.ic_points(bytes(self.section(self.zkey.IC)), n_public, self.source)

    def _table(self, kind: int, count: int, shape: tuple[int, ...], what: str) -> np.ndarray:
        table: np.ndarray = self.zkey._table(cast(bytes, self.section(kind)), count, shape, self.source, what)
        self.drop(kind)
        return table

    def _coefficients(self, n_vars: int, domain_size: int) -> Coefficients:
        """zkey._read_coefficients's checks, a slice of entries at a time, into compact coefficients: each
        distinct value of the file (c·2^512 mod r) is kept once, then converted to `Coefficients.value`
        (c·2^256). Should a circuit's values be mostly distinct, the one-value-per-entry form is kept."""
        from proofs.bn254.field import from_montgomery  # noqa: PLC0415
        from proofs.formats import FormatError  # noqa: PLC0415
        from proofs.groth16.qap import ValueTable  # noqa: PLC0415  (qap imports this module)

        zkey, source = self.zkey, self.source
        data = self.section(zkey.COEFFICIENTS)
        if len(data) < 4:
            raise FormatError(f"{source}: the coefficients section has {len(data)} bytes, no count")
        (count,) = struct.unpack_from("<I", data)
        entry = zkey._COEFFICIENT.itemsize
        if len(data) != 4 + count * entry:
            raise FormatError(
                f"{source}: the coefficients section has {len(data)} bytes; {count} coefficients take "
                f"{4 + count * entry}"
            )
        matrix = np.empty(count, np.uint8)  # 0 or 1: the kernels take it as bytes
        constraint = np.empty(count, np.uint32)
        signal = np.empty(count, np.uint32)
        index = np.empty(count, np.uint32)
        distinct = ValueTable()
        for lo in range(0, count, self._SLICE):
            hi = min(count, lo + self._SLICE)
            records = np.frombuffer(data, dtype=zkey._COEFFICIENT, count=hi - lo, offset=4 + lo * entry)
            matrix[lo:hi] = records["matrix"]
            constraint[lo:hi] = records["constraint"]
            signal[lo:hi] = records["signal"]
            stored = records["value"].astype(np.uint64)
            del records
            faults = (
                (matrix[lo:hi] > 1, "its matrix is neither 0 (A) nor 1 (B)"),
                (
                    constraint[lo:hi] >= domain_size,
                    f"its constraint is not below the domain size {domain_size}",
                ),
                (signal[lo:hi] >= n_vars, f"its signal is not below the number of wires {n_vars}"),
                (~zkey._below(stored, _R), "its value is not below r"),
            )
            for bad, fault in faults:
                if bad.any():
                    raise FormatError(f"{source}: coefficient {lo + int(np.argmax(bad))} is invalid: {fault}")
            index[lo:hi] = distinct.add(stored)
            self.drop(zkey.COEFFICIENTS, 4 + lo * entry, (hi - lo) * entry)
        value = from_montgomery(distinct.values(), _R)
        compact = Coefficients(matrix, constraint, signal, value, index)
        return compact if 2 * len(value) <= count else compact.expanded()
