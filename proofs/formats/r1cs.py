"""snarkjs/circom .r1cs files: write an R1CS for snarkjs, read one that circom or snarkjs wrote.

Layout (iden3 r1csfile, https://github.com/iden3/r1csfile, doc/r1cs_bin_format.md and src/r1csfile.js:
readR1csHeader, readConstraints, readMap), in the binfileutils container (proofs.formats) with magic
"r1cs", version 1:

    section 1, header:      n8 u32 (32), prime (n8 bytes), nWires u32, nPubOut u32, nPubIn u32,
                            nPrvIn u32, nLabels u64, nConstraints u32
    section 2, constraints: per constraint, A then B then C, each: nTerms u32, then per term
                            wire u32 and coefficient (n8 bytes, little-endian, standard form)
    section 3, wire→label:  nWires label ids, u64 each
    sections 4 and 5 hold PLONK custom gates, which a Groth16 R1CS does not have (refused on read).

Wire 0 is the constant one, then public outputs, public inputs, private inputs, internal wires.
We write no public outputs (nPubOut = 0: all our public values are inputs) and the identity label map.
A file with outputs reads as an R1CS whose public values are its outputs followed by its inputs, the
order in which snarkjs lists public signals.
"""

from __future__ import annotations

import struct
from pathlib import Path

from proofs.field import R
from proofs.formats import FormatError, pack_sections, unique_section, unpack_sections
from proofs.r1cs.builder import R1CS, Constraint, Row

MAGIC = b"r1cs"
VERSION = 1
N8 = 32
HEADER, CONSTRAINTS, WIRE_TO_LABEL, CUSTOM_GATES_LIST, CUSTOM_GATES_USES = 1, 2, 3, 4, 5

_HEADER_COUNTS = struct.Struct("<IIIIQI")  # nWires, nPubOut, nPubIn, nPrvIn, nLabels, nConstraints


def to_bytes(r1cs: R1CS) -> bytes:
    header = (
        struct.pack("<I", N8)
        + R.to_bytes(N8, "little")
        + _HEADER_COUNTS.pack(
            r1cs.n_wires, 0, r1cs.n_public, r1cs.n_private, r1cs.n_wires, r1cs.n_constraints
        )
    )
    body = bytearray()
    u32 = struct.Struct("<I").pack
    for constraint in r1cs.constraints:
        for row in constraint:
            body += u32(len(row.wires))
            for wire, coeff in zip(row.wires, row.coeffs, strict=True):
                body += u32(wire)
                body += coeff.to_bytes(N8, "little")
    labels = struct.pack(f"<{r1cs.n_wires}Q", *range(r1cs.n_wires))
    return pack_sections(
        MAGIC, VERSION, [(HEADER, header), (CONSTRAINTS, bytes(body)), (WIRE_TO_LABEL, labels)]
    )


def write(r1cs: R1CS, path: Path | str) -> None:
    Path(path).write_bytes(to_bytes(r1cs))


def from_bytes(data: bytes, source: str = "<bytes>") -> R1CS:
    """The R1CS a .r1cs file holds (its constraints and counts; a file holds no witness steps)."""
    _, sections = unpack_sections(data, MAGIC, VERSION, source)
    if CUSTOM_GATES_LIST in sections or CUSTOM_GATES_USES in sections:
        raise FormatError(f"{source}: the file uses PLONK custom gates, which Groth16 does not support")
    header = unique_section(sections, HEADER, source)
    if len(header) != 4 + N8 + _HEADER_COUNTS.size or struct.unpack_from("<I", header)[0] != N8:
        raise FormatError(f"{source}: the header is not that of a 32-byte field ({len(header)} bytes)")
    prime = int.from_bytes(header[4 : 4 + N8], "little")
    if prime != R:
        raise FormatError(f"{source}: the field's prime is {prime}, not BN254's scalar field {R}")
    n_wires, n_outputs, n_public_in, n_private, _, n_constraints = _HEADER_COUNTS.unpack_from(header, 4 + N8)
    constraints = _read_constraints(
        unique_section(sections, CONSTRAINTS, source), n_wires, n_constraints, source
    )
    if WIRE_TO_LABEL in sections and len(unique_section(sections, WIRE_TO_LABEL, source)) != 8 * n_wires:
        raise FormatError(f"{source}: the wire→label map does not have {n_wires} entries")
    try:
        return R1CS(n_wires, n_outputs + n_public_in, n_private, constraints)
    except ValueError as e:
        raise FormatError(f"{source}: {e}") from e


def _read_constraints(data: bytes, n_wires: int, n_constraints: int, source: str) -> list[Constraint]:
    pos = 0
    u32 = struct.Struct("<I").unpack_from

    def read_row(index: int) -> Row:
        nonlocal pos
        (n,) = u32(data, pos)
        end = pos + 4 + n * (4 + N8)
        if end > len(data):
            raise FormatError(f"{source}: constraint {index} runs past the end of the constraints section")
        terms: dict[int, int] = {}
        for p in range(pos + 4, end, 4 + N8):
            (wire,) = u32(data, p)
            coeff = int.from_bytes(data[p + 4 : p + 4 + N8], "little")
            if wire >= n_wires or coeff >= R or wire in terms:
                raise FormatError(
                    f"{source}: constraint {index} has a bad term (wire {wire} of {n_wires}, "
                    f"coefficient {coeff}, repeated: {wire in terms})"
                )
            if coeff:
                terms[wire] = coeff
        pos = end
        wires = tuple(sorted(terms))
        return Row(wires, tuple(terms[w] for w in wires))

    constraints = []
    for i in range(n_constraints):
        if pos + 4 > len(data):
            raise FormatError(
                f"{source}: the constraints section ends before constraint {i} of {n_constraints}"
            )
        constraints.append(Constraint(read_row(i), read_row(i), read_row(i)))
    if pos != len(data):
        raise FormatError(f"{source}: {len(data) - pos} bytes after the last constraint")
    return constraints


def read(path: Path | str) -> R1CS:
    return from_bytes(Path(path).read_bytes(), str(path))
