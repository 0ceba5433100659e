"""snarkjs .wtns files: a witness, i.e. the value of every wire, wire 0 (the constant one) first.

Layout (snarkjs src/wtns_utils.js: write, readHeader, read; https://github.com/iden3/snarkjs), in the
binfileutils container (proofs.formats) with magic "wtns", version 2:

    section 1, header: n8 u32 (32), prime (n8 bytes), nWitness u32
    section 2, values: nWitness field elements, n8 bytes each, little-endian, standard form
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from proofs.field import R
from proofs.formats import FormatError, pack_sections, unique_section, unpack_sections

MAGIC = b"wtns"
VERSION = 2
N8 = 32
HEADER, VALUES = 1, 2


def to_bytes(witness: Sequence[int]) -> bytes:
    bad = next((i for i, v in enumerate(witness) if not 0 <= v < R), None)
    if bad is not None:
        raise ValueError(f"witness value {bad} ({witness[bad]}) is not a field element in [0, R)")
    header = struct.pack("<I", N8) + R.to_bytes(N8, "little") + struct.pack("<I", len(witness))
    values = b"".join(v.to_bytes(N8, "little") for v in witness)
    return pack_sections(MAGIC, VERSION, [(HEADER, header), (VALUES, values)])


def write(witness: Sequence[int], path: Path | str) -> None:
    Path(path).write_bytes(to_bytes(witness))


def from_bytes(data: bytes, source: str = "<bytes>") -> list[int]:
    _, sections = unpack_sections(data, MAGIC, VERSION, source)
    header = unique_section(sections, HEADER, source)
    if len(header) != 4 + N8 + 4 or struct.unpack_from("<I", header)[0] != N8:
        raise FormatError(f"{source}: the header is not that of a 32-byte field ({len(header)} bytes)")
    prime = int.from_bytes(header[4 : 4 + N8], "little")
    if prime != R:
        raise FormatError(f"{source}: the field's prime is {prime}, not BN254's scalar field {R}")
    (count,) = struct.unpack_from("<I", header, 4 + N8)
    values = unique_section(sections, VALUES, source)
    if len(values) != count * N8:
        raise FormatError(f"{source}: {len(values)} bytes of values for {count} values of {N8} bytes")
    witness = [int.from_bytes(values[i : i + N8], "little") for i in range(0, len(values), N8)]
    bad = next((i for i, v in enumerate(witness) if v >= R), None)
    if bad is not None:
        raise FormatError(f"{source}: value {bad} is not below the field's prime")
    return witness


def read(path: Path | str) -> list[int]:
    return from_bytes(Path(path).read_bytes(), str(path))
