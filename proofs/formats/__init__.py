"""snarkjs's binary files (.r1cs, .wtns, and the .zkey that shares their container), read and written.

They share iden3's "binfileutils" container (https://github.com/iden3/binfileutils, src/binfileutils.js:
readBinFile, createBinFile, startWriteSection/endWriteSection), all integers little-endian:

    magic    4 bytes, the file type ("r1cs", "wtns", "zkey")
    version  u32
    nSections u32
    then nSections times: section type u32, section size u64, the section's bytes

A type may in principle repeat; readers take the sections in any order. Field elements are written as
n8-byte little-endian integers (n8 = 32 for BN254), in standard (not Montgomery) form in .r1cs and .wtns.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence


class FormatError(ValueError):
    """A file is not a valid snarkjs file of the expected type; the message names the file and the fault."""


def pack_sections(magic: bytes, version: int, sections: Sequence[tuple[int, bytes]]) -> bytes:
    """A binfileutils container holding the given (type, content) sections in order."""
    if len(magic) != 4:
        raise ValueError(f"a file type is 4 bytes, not {magic!r}")
    parts = [magic, struct.pack("<II", version, len(sections))]
    for kind, content in sections:
        parts.append(struct.pack("<IQ", kind, len(content)))
        parts.append(content)
    return b"".join(parts)


def unpack_sections(
    data: bytes, magic: bytes, max_version: int, source: str
) -> tuple[int, dict[int, list[bytes]]]:
    """(version, sections by type) of a binfileutils container; `source` names it in errors."""
    if len(data) < 12 or data[:4] != magic:
        raise FormatError(f"{source}: not a {magic.decode()} file (it starts with {data[:4]!r})")
    version, n_sections = struct.unpack_from("<II", data, 4)
    if not 1 <= version <= max_version:
        raise FormatError(
            f"{source}: {magic.decode()} version {version} is not supported (at most {max_version})"
        )
    sections: dict[int, list[bytes]] = {}
    pos = 12
    for i in range(n_sections):
        if pos + 12 > len(data):
            raise FormatError(f"{source}: the file ends inside the header of section {i}")
        kind, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if pos + size > len(data):
            raise FormatError(
                f"{source}: section {i} (type {kind}) claims {size} bytes; the file ends before"
            )
        sections.setdefault(kind, []).append(data[pos : pos + size])
        pos += size
    if pos != len(data):
        raise FormatError(f"{source}: {len(data) - pos} bytes after the last section")
    return version, sections


def unique_section(sections: dict[int, list[bytes]], kind: int, source: str) -> bytes:
    """The one section of a type, as binfileutils' startReadUniqueSection requires."""
    found = sections.get(kind, [])
    if len(found) != 1:
        raise FormatError(
            f"{source}: {'no' if not found else len(found)} sections of type {kind}, expected one"
        )
    return found[0]
