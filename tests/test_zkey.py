"""proofs.formats.zkey against a real snarkjs ceremony: our reader loads the ceremony's key (verifying key
as snarkjs exports it, coefficients as the R1CS says), writes it back byte for byte, labels development
keys in a way snarkjs ignores, and refuses every kind of malformed file with a message naming the fault."""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from proofs.bn254 import field
from proofs.bn254.field import P
from proofs.field import R
from proofs.formats import FormatError, pack_sections, unpack_sections, zkey
from proofs.formats import snarkjs_json as sj
from proofs.formats import wtns as wtns_file
from proofs.groth16.keys import DEVELOPMENT_LABEL, ProvingKey
from tests import snarkjs


@pytest.fixture(scope="module")
def zkey_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snarkjs.small_ceremony(tmp_path_factory)


@pytest.fixture(scope="module")
def pk(zkey_path: Path) -> ProvingKey:
    return zkey.read(zkey_path)


def _development(pk: ProvingKey) -> ProvingKey:
    return dataclasses.replace(pk, vk=dataclasses.replace(pk.vk, development=True))


def test_reads_the_counts_and_table_shapes_of_a_ceremony_key(pk: ProvingKey) -> None:
    r1cs = snarkjs.small_circuit()
    assert (pk.n_vars, pk.n_public, pk.domain_size) == (r1cs.n_wires, 3, 8)
    assert pk.a_query.shape == pk.b1_query.shape == (8, 2, 4)
    assert pk.b2_query.shape == (8, 2, 2, 4)
    assert pk.c_query.shape == (8 - 4, 2, 4)
    assert pk.h_query.shape == (8, 2, 4)
    assert all(t.dtype == np.uint64 and t.flags.writeable for t in (pk.a_query, pk.b2_query, pk.h_query))
    assert not pk.development


def test_verifying_key_json_equals_snarkjs_export(pk: ProvingKey, zkey_path: Path, tmp_path: Path) -> None:
    exported = snarkjs.export_verification_key(zkey_path, tmp_path / "vk.json")
    del exported["vk_alphabeta_12"]  # not written by us: snarkjs's verifier does not read it
    assert sj.verifying_key_to_json(pk.vk) == exported


def test_rewriting_a_ceremony_key_is_byte_identical(pk: ProvingKey, zkey_path: Path) -> None:
    assert zkey.to_bytes(pk) == zkey_path.read_bytes()


def test_coefficients_are_the_r1cs_rows_and_public_rows_in_montgomery_form(pk: ProvingKey) -> None:
    r1cs = snarkjs.small_circuit()
    expected = []
    for i, constraint in enumerate(r1cs.constraints):
        for matrix, row in ((0, constraint.a), (1, constraint.b)):
            expected += [(matrix, i, wire, coeff) for wire, coeff in zip(row.wires, row.coeffs, strict=True)]
    # snarkjs's extra rows: wire s (the constant and each public input) with coefficient 1 in A.
    expected += [(0, r1cs.n_constraints + s, s, 1) for s in range(r1cs.n_public + 1)]
    coefficients = pk.coefficients
    values = field.ints(coefficients.value)
    read = list(
        zip(
            coefficients.matrix.tolist(),
            coefficients.constraint.tolist(),
            coefficients.signal.tolist(),
            values,
            strict=True,
        )
    )
    assert read == [(m, c, s, v * 2**256 % R) for m, c, s, v in expected]
    assert coefficients.value.dtype == np.uint64 and coefficients.value.shape == (len(expected), 4)


def test_snarkjs_proves_with_our_development_key_and_ignores_the_label(
    pk: ProvingKey, tmp_path: Path
) -> None:
    dev = tmp_path / "dev.zkey"
    zkey.write(_development(pk), dev)
    back = zkey.read(dev)
    assert back.development and back.vk == _development(pk).vk
    assert zkey.to_bytes(back) == dev.read_bytes()
    _, sections = unpack_sections(dev.read_bytes(), b"zkey", 1, "dev.zkey")
    assert sections[zkey.DEVELOPMENT_SECTION] == [DEVELOPMENT_LABEL.encode()]
    assert "NOT FOR PRODUCTION" in DEVELOPMENT_LABEL

    exported = snarkjs.export_verification_key(dev, tmp_path / "vk.json")
    del exported["vk_alphabeta_12"]
    ours = sj.verifying_key_to_json(back.vk)
    assert ours.pop(sj.DEVELOPMENT_FIELD) == DEVELOPMENT_LABEL
    assert ours == exported

    wtns_file.write(snarkjs.small_witness(4, 9), tmp_path / "w.wtns")
    snarkjs.prove(dev, tmp_path / "w.wtns", tmp_path / "proof.json", tmp_path / "public.json")
    assert snarkjs.verify(tmp_path / "vk.json", tmp_path / "public.json", tmp_path / "proof.json")


def test_a_key_made_here_gets_an_empty_contributions_section_snarkjs_reads(
    pk: ProvingKey, tmp_path: Path
) -> None:
    made = dataclasses.replace(pk, contributions=None)
    path = tmp_path / "made.zkey"
    zkey.write(made, path)
    _, sections = unpack_sections(path.read_bytes(), b"zkey", 1, "made.zkey")
    assert sections[zkey.CONTRIBUTIONS] == [bytes(64) + struct.pack("<I", 0)]
    assert sorted(sections) == list(range(1, 11))
    exported = snarkjs.export_verification_key(path, tmp_path / "vk.json")
    assert exported["IC"] == sj.verifying_key_to_json(pk.vk)["IC"]


# --- malformed files ----------------------------------------------------------------------------------


def _sections(data: bytes) -> dict[int, bytes]:
    _, sections = unpack_sections(data, b"zkey", 1, "x")
    return {kind: found[0] for kind, found in sections.items()}


def _repack(sections: dict[int, bytes]) -> bytes:
    return pack_sections(b"zkey", 1, sorted(sections.items()))


def _edit_section(kind: int, edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        sections = _sections(data)
        sections[kind] = edit(sections[kind])
        return _repack(sections)

    return apply


def _patch(offset: int, new: bytes) -> Callable[[bytes], bytes]:
    return lambda content: content[:offset] + new + content[offset + len(new) :]


def _fp_mont(x: int) -> bytes:
    return (x * 2**256 % P).to_bytes(32, "little")


_ALPHA, _BETA1, _BETA2 = 84, 84 + 64, 84 + 128  # offsets in the Groth16 header
_COUNTS = 4 + 32 + 4 + 32


def _drop(kind: int) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        sections = _sections(data)
        del sections[kind]
        return _repack(sections)

    return apply


def _duplicate(kind: int) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        sections = _sections(data)
        return pack_sections(b"zkey", 1, [*sorted(sections.items()), (kind, sections[kind])])

    return apply


MALFORMED: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "not a zkey": (lambda d: b"wtns" + d[4:], "not a zkey file"),
    "truncated file": (lambda d: d[:-10], "the file ends before"),
    "bytes after the last section": (lambda d: d + b"\0", "bytes after the last section"),
    "no H section": (_drop(zkey.POINTS_H), "no sections of type 9"),
    "two IC sections": (_duplicate(zkey.IC), "2 sections of type 3"),
    "PLONK protocol": (_edit_section(zkey.HEADER, lambda c: struct.pack("<I", 2)), "protocol 2 (PLONK)"),
    "unknown protocol": (_edit_section(zkey.HEADER, lambda c: struct.pack("<I", 7)), "not Groth16"),
    "BLS12-381 sized base field": (
        _edit_section(zkey.GROTH16_HEADER, _patch(0, struct.pack("<I", 48))),
        "the base field takes 48 bytes",
    ),
    "another base field prime": (
        _edit_section(zkey.GROTH16_HEADER, _patch(4, (P - 2).to_bytes(32, "little"))),
        "the curve is not BN254",
    ),
    "another scalar field prime": (
        _edit_section(zkey.GROTH16_HEADER, _patch(40, (R + 2).to_bytes(32, "little"))),
        "the curve is not BN254",
    ),
    "truncated Groth16 header": (_edit_section(zkey.GROTH16_HEADER, lambda c: c[:-1]), "not 660"),
    "more public inputs than wires": (
        _edit_section(zkey.GROTH16_HEADER, _patch(_COUNTS + 4, struct.pack("<I", 8))),
        "8 public inputs need more than 8 wires",
    ),
    "domain size not a power of two": (
        _edit_section(zkey.GROTH16_HEADER, _patch(_COUNTS + 8, struct.pack("<I", 12))),
        "domain size 12 is not a power of two",
    ),
    "alpha not on the curve": (
        _edit_section(zkey.GROTH16_HEADER, _patch(_ALPHA + 32, _fp_mont(5))),
        "alpha_1 (",
    ),
    "beta_1 coordinate not below q": (
        _edit_section(zkey.GROTH16_HEADER, _patch(_BETA1, P.to_bytes(32, "little"))),
        "beta_1 has a coordinate that is not below",
    ),
    "beta_2 not on the twist": (
        _edit_section(zkey.GROTH16_HEADER, _patch(_BETA2 + 64, _fp_mont(5))),
        "beta_2 ((",
    ),
    "IC point not on the curve": (
        _edit_section(zkey.IC, _patch(64 + 32, _fp_mont(5))),
        "IC point 1 (",
    ),
    "truncated IC section": (_edit_section(zkey.IC, lambda c: c[:-64]), "the IC section has 192 bytes"),
    "truncated A section": (_edit_section(zkey.POINTS_A, lambda c: c[:-64]), "the A section has 448 bytes"),
    "truncated B2 section": (
        _edit_section(zkey.POINTS_B2, lambda c: c[:-1]),
        "the B2 section has 1023 bytes",
    ),
    "truncated C section": (_edit_section(zkey.POINTS_C, lambda c: c[:-64]), "the C section has 192 bytes"),
    "long H section": (_edit_section(zkey.POINTS_H, lambda c: c + bytes(64)), "the H section has 576 bytes"),
    "table coordinate not below q": (
        _edit_section(zkey.POINTS_B1, _patch(64 * 3, P.to_bytes(32, "little"))),
        "point 3 of the B1 section has a coordinate not below q",
    ),
    "truncated coefficients": (_edit_section(zkey.COEFFICIENTS, lambda c: c[:-1]), "coefficients take"),
    "coefficient of matrix 2": (
        _edit_section(zkey.COEFFICIENTS, _patch(4 + 44, struct.pack("<I", 2))),
        "coefficient 1 is invalid: its matrix is neither",
    ),
    "coefficient beyond the domain": (
        _edit_section(zkey.COEFFICIENTS, _patch(4 + 4, struct.pack("<I", 8))),
        "coefficient 0 is invalid: its constraint is not below the domain size 8",
    ),
    "coefficient of a wire that does not exist": (
        _edit_section(zkey.COEFFICIENTS, _patch(4 + 44 * 2 + 8, struct.pack("<I", 8))),
        "coefficient 2 is invalid: its signal is not below the number of wires 8",
    ),
    "coefficient value not below r": (
        _edit_section(zkey.COEFFICIENTS, _patch(4 + 12, R.to_bytes(32, "little"))),
        "coefficient 0 is invalid: its value is not below r",
    ),
    "short contributions section": (_edit_section(zkey.CONTRIBUTIONS, lambda c: c[:60]), "contributions"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_refused_naming_file_and_fault(case: str, zkey_path: Path) -> None:
    corrupt, message = MALFORMED[case]
    with pytest.raises(FormatError) as raised:
        zkey.from_bytes(corrupt(zkey_path.read_bytes()), "bad.zkey")
    assert str(raised.value).startswith("bad.zkey: ")
    assert message in str(raised.value)


def test_read_names_the_path_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "empty.zkey"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match=f"^{path}: not a zkey file"):
        zkey.read(path)


def test_writing_refuses_a_table_of_the_wrong_shape(pk: ProvingKey) -> None:
    with pytest.raises(ValueError, match="H table has shape"):
        zkey.to_bytes(dataclasses.replace(pk, h_query=pk.h_query[:-1]))


def test_json_of_a_snarkjs_key_round_trips(zkey_path: Path, tmp_path: Path) -> None:
    exported = snarkjs.export_verification_key(zkey_path, tmp_path / "vk.json")
    vk = sj.verifying_key_from_json(json.loads((tmp_path / "vk.json").read_text()), "vk.json")
    del exported["vk_alphabeta_12"]
    assert sj.verifying_key_to_json(vk) == exported
