"""snarkjs Groth16 .zkey files (proving keys): read one from a ceremony, write one snarkjs proves with.

Layout (snarkjs src/zkey_utils.js: writeHeader, readHeaderGroth16, readMPCParams; src/zkey_new.js;
https://github.com/iden3/snarkjs), in the binfileutils container (proofs.formats) with magic "zkey",
version 1:

    section 1, header:          protocol u32 (1 = Groth16; 2 is PLONK, 10 FFLONK)
    section 2, Groth16 header:  n8q u32 (32), q (n8q bytes), n8r u32 (32), r (n8r bytes), nVars u32,
                                nPublic u32, domainSize u32, then [α]₁, [β]₁, [β]₂, [γ]₂, [δ]₁, [δ]₂
    section 3, IC:              nPublic + 1 G1 points
    section 4, coefficients:    nCoefs u32, then per coefficient matrix u32 (0 = A, 1 = B), constraint
                                u32, signal u32, value (n8r bytes)
    sections 5, 6, 7:           A, B1 (G1) and B2 (G2) queries, nVars points each
    section 8, C:               nVars - nPublic - 1 G1 points (the private wires)
    section 9, H:               domainSize G1 points
    section 10, contributions:  the circuit hash (64 bytes, BLAKE2b-512), nContributions u32, then the
                                contributions (each: [δ]₁ after it, its proof of knowledge, transcript)

Points are affine, uncompressed, each coordinate in Montgomery form (x·2^256 mod q) as 32 little-endian
bytes; a G2 coordinate is c0 then c1; the point at infinity is all zeros.

A coefficient's value is stored as the plain integer coef·2^512 mod r (zkey_new.js writeCoef: the
coefficient times R2r = (2^256)² mod r; zkey_utils.js writeFr2/readFr2 do the same in both directions).
snarkjs's prover (groth16_prove.js buildABC1) Montgomery-multiplies those bytes by the plain witness:
coef·2^512 · w · 2^-256 = coef·w in Montgomery form. `Coefficients.value` holds coef·2^256 mod r (the
coefficient in Montgomery form), so reading is one Montgomery reduction (`from_montgomery`) of the stored
bytes and writing is `to_montgomery` of the value.

Two additions of ours: a development key (`VerifyingKey.development`) carries one more section, of type
DEVELOPMENT_SECTION (0x796c7278, whose bytes on disk spell "xrly"; snarkjs's own types go up to 17),
holding the UTF-8 text DEVELOPMENT_LABEL; a file is read as a development key exactly when it has that
section. snarkjs ignores section types it does not know: it exports, proves and verifies with such a key.
And the contributions section is kept as read (`ProvingKey.contributions`), so that a key read from a
ceremony's file is written back byte for byte (sections in order 1 to 10, as `zkey contribute` and
`zkey beacon` write them); a key made here gets the section `groth16 setup` writes before any
contribution, with an all-zero circuit hash (it was not derived from a powers-of-tau file, so it has no
circuit hash that `zkey verify` could check).

Validation on reading, each fault a FormatError naming the file: the container, the protocol, the curve
(q and r must be BN254's), every section's size against nVars, nPublic and domainSize, the header and IC
points (coordinates canonical, on their curves: G2 points are NOT checked for the subgroup here, the
verifier does that), the coefficients (matrix, constraint below domainSize, signal below nVars, value
below r). The point tables (A, B1, B2, C, H: about 10^6 points for 2^18 constraints) are only checked
cheaply, in bulk: every coordinate below q. They are not checked to lie on the curve; a corrupt table
gives proofs that do not verify.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from proofs.bn254.field import P, from_montgomery, to_montgomery
from proofs.field import R
from proofs.formats import FormatError, pack_sections, unique_section, unpack_sections
from proofs.groth16.keys import (
    DEVELOPMENT_LABEL,
    Coefficients,
    G1Point,
    G2Point,
    ProvingKey,
    VerifyingKey,
    g1_on_curve,
    g2_on_curve,
)

MAGIC = b"zkey"
VERSION = 1
N8 = 32
G1_BYTES = 2 * N8
G2_BYTES = 4 * N8
GROTH16_PROTOCOL = 1
_PROTOCOLS = {1: "Groth16", 2: "PLONK", 10: "FFLONK"}

HEADER, GROTH16_HEADER, IC, COEFFICIENTS, POINTS_A, POINTS_B1, POINTS_B2, POINTS_C, POINTS_H = range(1, 10)
CONTRIBUTIONS = 10
DEVELOPMENT_SECTION = 0x796C7278

_COUNTS = struct.Struct("<III")  # nVars, nPublic, domainSize
_HEADER_SIZE = 4 + N8 + 4 + N8 + _COUNTS.size + 3 * G1_BYTES + 3 * G2_BYTES  # 660
_COEFFICIENT = np.dtype([("matrix", "<u4"), ("constraint", "<u4"), ("signal", "<u4"), ("value", "<u8", (4,))])
_MAX_DOMAIN = 1 << 28  # BN254's Fr has 2-adicity 28: no larger FFT domain exists

_MONT = (1 << 256) % P
_MONT_INV = pow(_MONT, -1, P)

# The section snarkjs's `groth16 setup` writes before any contribution, with no circuit hash.
_NO_CONTRIBUTIONS = bytes(64) + struct.pack("<I", 0)


# --- points -------------------------------------------------------------------------------------------


def _fp_bytes(x: int) -> bytes:
    return (x * _MONT % P).to_bytes(N8, "little")


def _g1_bytes(point: G1Point) -> bytes:
    return b"".join(map(_fp_bytes, point))


def _g2_bytes(point: G2Point) -> bytes:
    (x0, x1), (y0, y1) = point
    return b"".join(map(_fp_bytes, (x0, x1, y0, y1)))


def _fp_values(data: bytes, count: int, source: str, what: str) -> list[int]:
    raw = [int.from_bytes(data[i * N8 : (i + 1) * N8], "little") for i in range(count)]
    if any(v >= P for v in raw):
        raise FormatError(f"{source}: {what} has a coordinate that is not below the base field's prime")
    return [v * _MONT_INV % P for v in raw]


def _read_g1(data: bytes, source: str, what: str) -> G1Point:
    x, y = _fp_values(data, 2, source, what)
    point = (x, y)
    if not g1_on_curve(point):
        raise FormatError(f"{source}: {what} ({x}, {y}) is not on BN254's G1 curve")
    return point


def _read_g2(data: bytes, source: str, what: str) -> G2Point:
    x0, x1, y0, y1 = _fp_values(data, 4, source, what)
    point = ((x0, x1), (y0, y1))
    if not g2_on_curve(point):
        raise FormatError(f"{source}: {what} {point} is not on BN254's G2 twist curve")
    return point


def _below(values: np.ndarray, modulus: int) -> np.ndarray:
    """For an (..., 4) uint64 array of little-endian limbs, whether each number is below `modulus`."""
    m = [np.uint64((modulus >> (64 * k)) & ((1 << 64) - 1)) for k in range(4)]
    below = values[..., 0] < m[0]
    for k in range(1, 4):
        below = (values[..., k] < m[k]) | ((values[..., k] == m[k]) & below)
    return np.asarray(below)


def _table(data: bytes, count: int, shape: tuple[int, ...], source: str, what: str) -> np.ndarray:
    """A point table as a writable (count, *shape) uint64 array, its coordinates checked below q."""
    size = count * int(np.prod(shape)) * 8
    if len(data) != size:
        raise FormatError(f"{source}: the {what} section has {len(data)} bytes; {count} points take {size}")
    table = np.frombuffer(data, dtype="<u8").reshape((count, *shape)).astype(np.uint64)
    if not _below(table, P).all():
        bad = int(np.argmin(_below(table, P).reshape(count, -1).all(axis=1)))
        raise FormatError(f"{source}: point {bad} of the {what} section has a coordinate not below q")
    return table


# --- reading ------------------------------------------------------------------------------------------


def groth16_header(g16: bytes, source: str) -> tuple[int, int, int, dict[str, G1Point | G2Point]]:
    """The Groth16 header section's (n_vars, n_public, domain_size, points by name), checked: BN254's
    fields, counts that fit, a power-of-two domain, points on their curves."""
    n8q = struct.unpack_from("<I", g16)[0] if len(g16) >= 4 else None
    if n8q != N8:
        raise FormatError(f"{source}: the base field takes {n8q} bytes, not BN254's {N8}")
    if len(g16) != _HEADER_SIZE:
        raise FormatError(f"{source}: the Groth16 header has {len(g16)} bytes, not {_HEADER_SIZE}")
    q = int.from_bytes(g16[4 : 4 + N8], "little")
    (n8r,) = struct.unpack_from("<I", g16, 4 + N8)
    r = int.from_bytes(g16[8 + N8 : 8 + 2 * N8], "little")
    if q != P or n8r != N8 or r != R:
        raise FormatError(
            f"{source}: the curve is not BN254 (base field prime {q}, scalar field prime {r} "
            f"of {n8r} bytes; BN254 has {P} and {R})"
        )
    pos = 8 + 2 * N8
    n_vars, n_public, domain_size = _COUNTS.unpack_from(g16, pos)
    pos += _COUNTS.size
    if not n_public + 1 <= n_vars:
        raise FormatError(f"{source}: {n_public} public inputs need more than {n_vars} wires")
    if domain_size < 2 or domain_size & (domain_size - 1) or domain_size > _MAX_DOMAIN:
        raise FormatError(f"{source}: the domain size {domain_size} is not a power of two in [2, 2^28]")

    points: dict[str, G1Point | G2Point] = {}
    for name, size in (
        ("alpha_1", G1_BYTES),
        ("beta_1", G1_BYTES),
        ("beta_2", G2_BYTES),
        ("gamma_2", G2_BYTES),
        ("delta_1", G1_BYTES),
        ("delta_2", G2_BYTES),
    ):
        chunk = g16[pos : pos + size]
        what = f"the header's {name}"
        points[name] = _read_g1(chunk, source, what) if size == G1_BYTES else _read_g2(chunk, source, what)
        pos += size
    return n_vars, n_public, domain_size, points


def check_contributions(contributions: bytes, source: str) -> bytes:
    """The contributions section, checked to hold at least its circuit hash and count."""
    if len(contributions) < len(_NO_CONTRIBUTIONS):
        raise FormatError(
            f"{source}: the contributions section has {len(contributions)} bytes, less than the "
            f"{len(_NO_CONTRIBUTIONS)} of its circuit hash and count"
        )
    return contributions


def ic_points(ic_data: bytes, n_public: int, source: str) -> tuple[G1Point, ...]:
    """The IC section's n_public + 1 points, checked."""
    if len(ic_data) != (n_public + 1) * G1_BYTES:
        raise FormatError(
            f"{source}: the IC section has {len(ic_data)} bytes; {n_public + 1} points take "
            f"{(n_public + 1) * G1_BYTES}"
        )
    return tuple(
        _read_g1(ic_data[i * G1_BYTES : (i + 1) * G1_BYTES], source, f"IC point {i}")
        for i in range(n_public + 1)
    )


def from_bytes(data: bytes, source: str = "<bytes>") -> ProvingKey:
    """The proving key in a Groth16 .zkey file's bytes; `source` names it in errors."""
    _, sections = unpack_sections(data, MAGIC, VERSION, source)

    header = unique_section(sections, HEADER, source)
    if len(header) != 4:
        raise FormatError(f"{source}: the header section has {len(header)} bytes, not 4")
    (protocol,) = struct.unpack("<I", header)
    if protocol != GROTH16_PROTOCOL:
        name = _PROTOCOLS.get(protocol, "unknown")
        raise FormatError(f"{source}: the key is for protocol {protocol} ({name}), not Groth16 (1)")

    g16 = unique_section(sections, GROTH16_HEADER, source)
    n_vars, n_public, domain_size, points = groth16_header(g16, source)
    ic = ic_points(unique_section(sections, IC, source), n_public, source)

    vk = VerifyingKey(
        alpha_1=points["alpha_1"],  # type: ignore[arg-type]
        beta_2=points["beta_2"],  # type: ignore[arg-type]
        gamma_2=points["gamma_2"],  # type: ignore[arg-type]
        delta_2=points["delta_2"],  # type: ignore[arg-type]
        ic=ic,
        development=DEVELOPMENT_SECTION in sections,
    )
    if vk.development:
        unique_section(sections, DEVELOPMENT_SECTION, source)

    contributions = check_contributions(unique_section(sections, CONTRIBUTIONS, source), source)

    return ProvingKey(
        vk=vk,
        n_vars=n_vars,
        domain_size=domain_size,
        beta_1=points["beta_1"],  # type: ignore[arg-type]
        delta_1=points["delta_1"],  # type: ignore[arg-type]
        a_query=_table(unique_section(sections, POINTS_A, source), n_vars, (2, 4), source, "A"),
        b1_query=_table(unique_section(sections, POINTS_B1, source), n_vars, (2, 4), source, "B1"),
        b2_query=_table(unique_section(sections, POINTS_B2, source), n_vars, (2, 2, 4), source, "B2"),
        c_query=_table(
            unique_section(sections, POINTS_C, source), n_vars - n_public - 1, (2, 4), source, "C"
        ),
        h_query=_table(unique_section(sections, POINTS_H, source), domain_size, (2, 4), source, "H"),
        coefficients=_read_coefficients(
            unique_section(sections, COEFFICIENTS, source), n_vars, domain_size, source
        ),
        contributions=contributions,
    )


def _read_coefficients(data: bytes, n_vars: int, domain_size: int, source: str) -> Coefficients:
    if len(data) < 4:
        raise FormatError(f"{source}: the coefficients section has {len(data)} bytes, no count")
    (count,) = struct.unpack_from("<I", data)
    if len(data) != 4 + count * _COEFFICIENT.itemsize:
        raise FormatError(
            f"{source}: the coefficients section has {len(data)} bytes; {count} coefficients take "
            f"{4 + count * _COEFFICIENT.itemsize}"
        )
    records = np.frombuffer(data, dtype=_COEFFICIENT, count=count, offset=4)
    matrix = records["matrix"].astype(np.uint32)
    constraint = records["constraint"].astype(np.uint32)
    signal = records["signal"].astype(np.uint32)
    stored = records["value"].astype(np.uint64)
    faults = (
        (matrix > 1, "its matrix is neither 0 (A) nor 1 (B)"),
        (constraint >= domain_size, f"its constraint is not below the domain size {domain_size}"),
        (signal >= n_vars, f"its signal is not below the number of wires {n_vars}"),
        (~_below(stored, R), "its value is not below r"),
    )
    for bad, fault in faults:
        if bad.any():
            raise FormatError(f"{source}: coefficient {int(np.argmax(bad))} is invalid: {fault}")
    value = from_montgomery(stored, R) if count else stored
    return Coefficients(matrix=matrix, constraint=constraint, signal=signal, value=value)


def read(path: Path | str) -> ProvingKey:
    return from_bytes(Path(path).read_bytes(), str(path))


# --- writing ------------------------------------------------------------------------------------------


def _table_bytes(table: np.ndarray, shape: tuple[int, ...], what: str) -> bytes:
    if table.shape != shape:
        raise ValueError(f"the key's {what} table has shape {table.shape}, not {shape}")
    return np.ascontiguousarray(table, dtype="<u8").tobytes()


def _coefficients_bytes(coefficients: Coefficients) -> bytes:
    count = len(coefficients.matrix)
    records = np.empty(count, dtype=_COEFFICIENT)
    records["matrix"] = coefficients.matrix
    records["constraint"] = coefficients.constraint
    records["signal"] = coefficients.signal
    value = np.ascontiguousarray(coefficients.value, dtype=np.uint64).reshape(count, 4)
    records["value"] = to_montgomery(value, R) if count else value
    return struct.pack("<I", count) + records.tobytes()


def to_bytes(pk: ProvingKey) -> bytes:
    """The .zkey file of a proving key (with the development section for a development key)."""
    vk = pk.vk
    n_private = pk.n_vars - pk.n_public - 1
    if n_private < 0:
        raise ValueError(f"{pk.n_public} public inputs need more than {pk.n_vars} wires")
    g16 = b"".join(
        (
            struct.pack("<I", N8),
            P.to_bytes(N8, "little"),
            struct.pack("<I", N8),
            R.to_bytes(N8, "little"),
            _COUNTS.pack(pk.n_vars, pk.n_public, pk.domain_size),
            _g1_bytes(vk.alpha_1),
            _g1_bytes(pk.beta_1),
            _g2_bytes(vk.beta_2),
            _g2_bytes(vk.gamma_2),
            _g1_bytes(pk.delta_1),
            _g2_bytes(vk.delta_2),
        )
    )
    sections = [
        (HEADER, struct.pack("<I", GROTH16_PROTOCOL)),
        (GROTH16_HEADER, g16),
        (IC, b"".join(map(_g1_bytes, vk.ic))),
        (COEFFICIENTS, _coefficients_bytes(pk.coefficients)),
        (POINTS_A, _table_bytes(pk.a_query, (pk.n_vars, 2, 4), "A")),
        (POINTS_B1, _table_bytes(pk.b1_query, (pk.n_vars, 2, 4), "B1")),
        (POINTS_B2, _table_bytes(pk.b2_query, (pk.n_vars, 2, 2, 4), "B2")),
        (POINTS_C, _table_bytes(pk.c_query, (n_private, 2, 4), "C")),
        (POINTS_H, _table_bytes(pk.h_query, (pk.domain_size, 2, 4), "H")),
        (CONTRIBUTIONS, _NO_CONTRIBUTIONS if pk.contributions is None else pk.contributions),
    ]
    if vk.development:
        sections.append((DEVELOPMENT_SECTION, DEVELOPMENT_LABEL.encode()))
    return pack_sections(MAGIC, VERSION, sections)


def write(pk: ProvingKey, path: Path | str) -> None:
    Path(path).write_bytes(to_bytes(pk))
