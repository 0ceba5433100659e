"""proofs.formats: .r1cs and .wtns files round-trip, and the real snarkjs reads them: `r1cs info`
reports our counts, `wtns check` accepts our witness and rejects a tampered one at the same constraint
as our own check."""

from __future__ import annotations

import re
import struct
import subprocess
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge_contracts import toolchain
from proofs.field import R
from proofs.formats import FormatError, pack_sections
from proofs.formats import r1cs as r1cs_file
from proofs.formats import wtns as wtns_file
from proofs.poseidon import poseidon
from proofs.r1cs import R1CS, Builder, ConstraintFailed, gadgets

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _snarkjs(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [toolchain.node(), str(toolchain.snarkjs()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(done.args, done.returncode, _ANSI.sub("", done.stdout), done.stderr)


@cache
def _small_circuit() -> R1CS:
    """A public Poseidon image of two private values, a 16-bit range check, and a bound chain id."""
    b = Builder("small")
    chain_id = b.public("chainId")
    image = b.public("image")
    preimage = b.private_array("preimage", 2)
    amount = b.private("amount")
    gadgets.assert_equal(b, gadgets.poseidon(b, preimage), image)
    gadgets.to_bits(b, amount, 16, name="amount")
    b.bind(chain_id)
    return b.build()


def _witness() -> list[int]:
    return _small_circuit().witness(
        {"chainId": 901, "image": poseidon([3, 4]), "preimage": [3, 4], "amount": 1000}
    )


def test_r1cs_round_trips(tmp_path: Path) -> None:
    r1cs = _small_circuit()
    r1cs_file.write(r1cs, tmp_path / "c.r1cs")
    back = r1cs_file.read(tmp_path / "c.r1cs")
    assert (back.n_wires, back.n_public, back.n_private) == (r1cs.n_wires, r1cs.n_public, r1cs.n_private)
    assert back.constraints == r1cs.constraints
    back.check(_witness())


@given(st.lists(st.integers(min_value=0, max_value=R - 1), max_size=20))
def test_wtns_round_trips(witness: list[int]) -> None:
    assert wtns_file.from_bytes(wtns_file.to_bytes(witness)) == witness


def test_snarkjs_r1cs_info_reports_our_counts(tmp_path: Path) -> None:
    r1cs = _small_circuit()
    r1cs_file.write(r1cs, tmp_path / "c.r1cs")
    info = _snarkjs("r1cs", "info", str(tmp_path / "c.r1cs"))
    assert info.returncode == 0, info.stdout + info.stderr
    reported = dict(re.findall(r"# of ([A-Za-z ]+): (\d+)", info.stdout))
    assert reported == {
        "Wires": str(r1cs.n_wires),
        "Constraints": str(r1cs.n_constraints),
        "Private Inputs": "3",
        "Public Inputs": "2",
        "Labels": str(r1cs.n_wires),
        "Outputs": "0",
    }
    assert "Curve: bn-128" in info.stdout
    assert r1cs.n_constraints == 240 + 1 + 17 + 1


def test_snarkjs_wtns_check_accepts_our_witness_and_rejects_a_tampered_one(tmp_path: Path) -> None:
    r1cs = _small_circuit()
    r1cs_file.write(r1cs, tmp_path / "c.r1cs")
    witness = _witness()
    wtns_file.write(witness, tmp_path / "good.wtns")
    good = _snarkjs("wtns", "check", str(tmp_path / "c.r1cs"), str(tmp_path / "good.wtns"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "WITNESS IS CORRECT" in good.stdout

    tampered = list(witness)
    sbox = r1cs.wire_labels.index("small/poseidon(2)/round 2 lane 1 x^4")
    tampered[sbox] = (tampered[sbox] + 1) % R
    with pytest.raises(ConstraintFailed) as ours:
        r1cs.check(tampered)
    wtns_file.write(tampered, tmp_path / "bad.wtns")
    bad = _snarkjs("wtns", "check", str(tmp_path / "c.r1cs"), str(tmp_path / "bad.wtns"))
    assert bad.returncode == 1
    assert "WITNESS IS NOT CORRECT" in bad.stdout
    assert f"aborting checking process at constraint {ours.value.index}" in bad.stdout
    assert ours.value.label == "small/poseidon(2)/round 2 lane 1 x^4"


def test_unreadable_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    good = r1cs_file.to_bytes(_small_circuit())
    with pytest.raises(FormatError, match="not a r1cs file"):
        r1cs_file.from_bytes(wtns_file.to_bytes([1]), "x.r1cs")
    with pytest.raises(FormatError, match=r"x\.r1cs: section 2 .* claims"):
        r1cs_file.from_bytes(good[:-100], "x.r1cs")
    with pytest.raises(FormatError, match="not BN254's scalar field"):
        header = struct.pack("<I", 32) + (R + 2).to_bytes(32, "little") + bytes(28)
        r1cs_file.from_bytes(pack_sections(b"r1cs", 1, [(1, header), (2, b"")]))
    with pytest.raises(FormatError, match="PLONK custom gates"):
        r1cs_file.from_bytes(pack_sections(b"r1cs", 1, [(4, b"")]))
    with pytest.raises(FormatError, match="no sections of type 1"):
        r1cs_file.from_bytes(pack_sections(b"r1cs", 1, [(2, b"")]))
    with pytest.raises(FormatError, match="wtns version 3 is not supported"):
        wtns_file.from_bytes(pack_sections(b"wtns", 3, []))
    with pytest.raises(FormatError, match="value 1 is not below the field's prime"):
        data = bytearray(wtns_file.to_bytes([1, 2]))
        data[-32:] = R.to_bytes(32, "little")
        wtns_file.from_bytes(bytes(data))
    with pytest.raises(ValueError, match="witness value 0"):
        wtns_file.to_bytes([R])


def test_a_file_with_public_outputs_reads_them_as_public_inputs() -> None:
    """circom puts outputs before public inputs; a verifier takes both as public signals in that order."""
    header = struct.pack("<I", 32) + R.to_bytes(32, "little") + struct.pack("<IIIIQI", 4, 1, 1, 1, 4, 1)
    one_term = struct.pack("<I", 1) + struct.pack("<I", 1) + (1).to_bytes(32, "little")
    constraint = (
        one_term + struct.pack("<I", 1) + struct.pack("<I", 2) + (1).to_bytes(32, "little") + one_term
    )
    r1cs = r1cs_file.from_bytes(pack_sections(b"r1cs", 1, [(2, constraint), (1, header)]))
    assert (r1cs.n_wires, r1cs.n_public, r1cs.n_private, r1cs.n_constraints) == (4, 2, 1, 1)
    r1cs.check([1, 5, 1, 0])
