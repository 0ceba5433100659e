"""proofs.groth16.verifier and proofs.formats.snarkjs_json against real snarkjs proofs: our verifier accepts
what snarkjs proves (read through our JSON readers) and rejects every alteration; verify_batch accepts a
batch of valid proofs and rejects one with any bad member; our JSON round-trips snarkjs's and refuses
malformed documents naming the field."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
from py_ecc import optimized_bn128 as bn

from proofs.bn254.field import P
from proofs.field import R
from proofs.formats import snarkjs_json as sj
from proofs.formats import wtns as wtns_file
from proofs.groth16 import verifier
from proofs.groth16.keys import (
    DEVELOPMENT_LABEL,
    G1_INFINITY,
    G2_INFINITY,
    G1Point,
    G2Point,
    VerifyingKey,
    g1_from_py_ecc,
    g1_to_py_ecc,
    g2_on_curve,
)
from proofs.groth16.proof import Proof
from tests import snarkjs

Item = tuple[list[int], Proof]

WITNESSES = [(3, 5), (4, 9), (10, 2), (7, 7), (1, 1), (12, 30)]


@dataclasses.dataclass(frozen=True)
class Proven:
    vk_path: Path
    vk_json: dict[str, Any]
    proofs_json: list[dict[str, Any]]
    publics_json: list[list[str]]
    paths: list[tuple[Path, Path]]  # (public.json, proof.json)

    @property
    def vk(self) -> VerifyingKey:
        return sj.verifying_key_from_json(self.vk_json, str(self.vk_path))

    def item(self, i: int) -> Item:
        return sj.public_from_json(self.publics_json[i]), sj.proof_from_json(self.proofs_json[i])


@pytest.fixture(scope="module")
def proven(tmp_path_factory: pytest.TempPathFactory) -> Proven:
    """snarkjs's verification key and its proofs of the small circuit for several witnesses."""
    zkey_path = snarkjs.small_ceremony(tmp_path_factory)
    work = tmp_path_factory.mktemp("proofs")
    vk_json = snarkjs.export_verification_key(zkey_path, work / "vk.json")
    proofs, publics, paths = [], [], []
    for i, (a, c) in enumerate(WITNESSES):
        wtns_file.write(snarkjs.small_witness(a, c), work / f"{i}.wtns")
        proof, public = snarkjs.prove(
            zkey_path, work / f"{i}.wtns", work / f"{i}.proof.json", work / f"{i}.public.json"
        )
        proofs.append(proof)
        publics.append(public)
        paths.append((work / f"{i}.public.json", work / f"{i}.proof.json"))
    return Proven(work / "vk.json", vk_json, proofs, publics, paths)


def _doubled(point: G1Point) -> G1Point:
    return g1_from_py_ecc(bn.double(g1_to_py_ecc(point)))


def _fp2_sqrt(a: Any) -> Any:
    """A square root in Fp2 (p ≡ 3 mod 4; Adj and Rodríguez-Henríquez, eprint 2012/685, algorithm 9),
    or None."""
    a1 = a ** ((P - 3) // 4)
    alpha = a1 * a1 * a
    if alpha**P * alpha == bn.FQ2([P - 1, 0]):
        return None
    x0 = a1 * a
    if alpha == bn.FQ2([P - 1, 0]):
        return bn.FQ2([0, 1]) * x0
    return (bn.FQ2.one() + alpha) ** ((P - 1) // 2) * x0


def _twist_point_outside_g2() -> G2Point:
    for k in range(1, 100):
        x = bn.FQ2([k, 1])
        y = _fp2_sqrt(x**3 + bn.b2)
        if y is not None:
            point = ((k, 1), (int(y.coeffs[0]), int(y.coeffs[1])))
            assert g2_on_curve(point) and not verifier.g2_in_subgroup(point)
            return point
    raise AssertionError("no twist point found")


# --- verify -------------------------------------------------------------------------------------------


def test_verify_accepts_snarkjs_proofs(proven: Proven) -> None:
    assert verifier.verify(proven.vk, *proven.item(0))
    assert verifier.verify(proven.vk, *proven.item(1))


def test_verify_rejects_a_flipped_public_input(proven: Proven) -> None:
    public, proof = proven.item(0)
    public[1] = (public[1] + 1) % R
    assert not verifier.verify(proven.vk, public, proof)


def test_verify_rejects_an_input_not_below_r_even_if_equal_mod_r(proven: Proven) -> None:
    public, proof = proven.item(0)
    assert not verifier.verify(proven.vk, [public[0] + R, *public[1:]], proof)
    assert not verifier.verify(proven.vk, [-1, *public[1:]], proof)


def test_verify_raises_on_a_wrong_number_of_inputs(proven: Proven) -> None:
    public, proof = proven.item(0)
    with pytest.raises(verifier.VerifierError, match="2 public inputs given; the key has 3"):
        verifier.verify(proven.vk, public[:2], proof)
    with pytest.raises(verifier.VerifierError, match="4 public inputs given"):
        verifier.verify(proven.vk, [*public, 0], proof)


@pytest.mark.parametrize(
    "alter",
    ["A doubled", "B of another proof", "C doubled", "A and C swapped"],
)
def test_verify_rejects_an_altered_proof(proven: Proven, alter: str) -> None:
    public, proof = proven.item(0)
    _, other = proven.item(1)
    altered = {
        "A doubled": dataclasses.replace(proof, a=_doubled(proof.a)),
        "B of another proof": dataclasses.replace(proof, b=other.b),
        "C doubled": dataclasses.replace(proof, c=_doubled(proof.c)),
        "A and C swapped": dataclasses.replace(proof, a=proof.c, c=proof.a),
    }[alter]
    assert not verifier.verify(proven.vk, public, altered)


def test_verify_rejects_points_off_the_curve_outside_g2_or_at_infinity(proven: Proven) -> None:
    public, proof = proven.item(0)
    (x0, x1), (y0, y1) = proof.b
    for bad in (
        dataclasses.replace(proof, a=(proof.a[0], (proof.a[1] + 1) % P)),
        dataclasses.replace(proof, c=(proof.c[0], proof.c[1] + P)),
        dataclasses.replace(proof, b=((x0, x1), (y0, (y1 + 1) % P))),
        dataclasses.replace(proof, b=_twist_point_outside_g2()),
        dataclasses.replace(proof, a=G1_INFINITY),
        dataclasses.replace(proof, b=G2_INFINITY),
        dataclasses.replace(proof, c=G1_INFINITY),
    ):
        assert not verifier.verify(proven.vk, public, bad)


def test_a_malformed_key_is_an_error(proven: Proven) -> None:
    public, proof = proven.item(0)
    vk = proven.vk
    for bad, name in (
        (dataclasses.replace(vk, delta_2=_twist_point_outside_g2()), "delta_2"),
        (dataclasses.replace(vk, ic=(*vk.ic[:2], G1_INFINITY, vk.ic[3])), r"ic\[2\]"),
        (dataclasses.replace(vk, alpha_1=(1, 3)), "alpha_1"),
    ):
        with pytest.raises(verifier.VerifierError, match=f"the verifying key's {name}"):
            verifier.verify(bad, public, proof)
    verifier.check_verifying_key(vk)


# --- verify_batch -------------------------------------------------------------------------------------


def test_verify_batch_accepts_valid_snarkjs_proofs(proven: Proven) -> None:
    items = [proven.item(i) for i in range(len(WITNESSES))]
    assert verifier.verify_batch(proven.vk, items)
    assert verifier.verify_batch(proven.vk, items[:1], rng=random.Random(1))


@pytest.mark.parametrize("bad_index", [0, 4])
def test_verify_batch_rejects_a_batch_with_one_bad_proof(proven: Proven, bad_index: int) -> None:
    items = [proven.item(i) for i in range(5)]
    public, proof = items[bad_index]
    items[bad_index] = ([public[0], public[1], (public[2] + 1) % R], proof)
    assert not verifier.verify_batch(proven.vk, items, rng=random.Random(bad_index))


def test_verify_batch_rejects_a_proof_that_is_valid_for_another_members_inputs(proven: Proven) -> None:
    # Swapping two proofs between their inputs: each pair is invalid though the set of points is the same.
    (x0, p0), (x1, p1), (x2, p2) = (proven.item(i) for i in range(3))
    assert not verifier.verify_batch(proven.vk, [(x0, p1), (x1, p0), (x2, p2)])


def test_verify_batch_rejects_an_invalid_point_and_errs_on_misuse(proven: Proven) -> None:
    items = [proven.item(i) for i in range(3)]
    public, proof = items[1]
    items[1] = (public, dataclasses.replace(proof, b=_twist_point_outside_g2()))
    assert not verifier.verify_batch(proven.vk, items)
    with pytest.raises(verifier.VerifierError, match="empty batch"):
        verifier.verify_batch(proven.vk, [])
    with pytest.raises(verifier.VerifierError, match="item 2: 1 public inputs given"):
        verifier.verify_batch(proven.vk, [*items[:2], ([1], proof)])


# --- snarkjs JSON -------------------------------------------------------------------------------------


def test_json_round_trips_snarkjs_documents(proven: Proven) -> None:
    vk_json = dict(proven.vk_json)
    del vk_json["vk_alphabeta_12"]
    assert sj.verifying_key_to_json(proven.vk) == vk_json
    for proof_json, public_json in zip(proven.proofs_json, proven.publics_json, strict=True):
        assert sj.proof_to_json(sj.proof_from_json(proof_json)) == proof_json
        assert sj.public_to_json(sj.public_from_json(public_json)) == public_json


def test_snarkjs_verifies_a_proof_written_by_us_with_a_development_key_json(
    proven: Proven, tmp_path: Path
) -> None:
    public, proof = proven.item(2)
    dev = dataclasses.replace(proven.vk, development=True)
    dev_json = sj.verifying_key_to_json(dev)
    assert dev_json[sj.DEVELOPMENT_FIELD] == DEVELOPMENT_LABEL
    assert sj.verifying_key_from_json(json.loads(json.dumps(dev_json))) == dev
    assert not sj.verifying_key_from_json(proven.vk_json).development
    (tmp_path / "vk.json").write_text(json.dumps(dev_json))
    (tmp_path / "public.json").write_text(json.dumps(sj.public_to_json(public)))
    (tmp_path / "proof.json").write_text(json.dumps(sj.proof_to_json(proof)))
    assert snarkjs.verify(tmp_path / "vk.json", tmp_path / "public.json", tmp_path / "proof.json")
    public[0] = (public[0] + 1) % R
    (tmp_path / "public.json").write_text(json.dumps(sj.public_to_json(public)))
    assert not snarkjs.verify(tmp_path / "vk.json", tmp_path / "public.json", tmp_path / "proof.json")


def test_json_points_at_infinity_are_written_as_snarkjs_does() -> None:
    proof = Proof(a=G1_INFINITY, b=G2_INFINITY, c=G1_INFINITY)
    doc = sj.proof_to_json(proof)
    assert doc["pi_a"] == ["0", "1", "0"]
    assert doc["pi_b"] == [["0", "0"], ["1", "0"], ["0", "0"]]
    assert sj.proof_from_json(doc) == proof


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()

BAD_KEYS: list[tuple[tuple[Any, ...], Any, str]] = [
    (("protocol",), "plonk", "protocol: 'plonk' is not 'groth16'"),
    (("curve",), "bls12381", "curve: 'bls12381' is not 'bn128'"),
    (("curve",), _DELETE, "curve: missing"),
    (("nPublic",), 4, "nPublic: 4 does not match the 4 IC points"),
    (("IC",), [], "IC: expected a non-empty list"),
    (("vk_alpha_1", 0), "0x12", "vk_alpha_1[0]: '0x12' is not a decimal number"),
    (("vk_alpha_1", 1), str(P), f"vk_alpha_1[1]: {P} is not below the base field's prime q"),
    (("vk_alpha_1", 1), "5", "vk_alpha_1: "),
    (("vk_alpha_1", 2), "2", "vk_alpha_1[2]: the third coordinate must be"),
    (("vk_beta_2", 0), ["1"], "vk_beta_2[0]: expected a list of 2 items"),
    (("vk_beta_2", 1, 0), "7", "vk_beta_2: "),
    (("vk_gamma_2",), [], "vk_gamma_2: expected a list of 2 or 3 items"),
    (("IC", 2, 0), -3, "IC[2][0]: -3 is not a decimal number"),
    (("vk_delta_2",), _DELETE, "vk_delta_2: missing"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_KEYS)
def test_bad_verifying_key_json_is_refused_naming_the_field(
    proven: Proven, path: tuple[Any, ...], value: Any, message: str
) -> None:
    with pytest.raises(sj.SnarkjsJsonError) as raised:
        sj.verifying_key_from_json(_set(proven.vk_json, path, value), "vk.json")
    assert str(raised.value).startswith(f"vk.json: {message}")


BAD_PROOFS: list[tuple[tuple[Any, ...], Any, str]] = [
    (("protocol",), "plonk", "protocol: 'plonk' is not 'groth16'"),
    (("curve",), "secp256k1", "curve: 'secp256k1' is not 'bn128'"),
    (("pi_a", 0), "1.5", "pi_a[0]: '1.5' is not a decimal number"),
    (("pi_b", 2), ["1", "1"], "pi_b[2]: the third coordinate must be"),
    (("pi_b", 0, 1), str(P + 1), "pi_b[0][1]: "),
    (("pi_c", 1), "1", "pi_c: "),
    (("pi_c",), _DELETE, "pi_c: missing"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_PROOFS)
def test_bad_proof_json_is_refused_naming_the_field(
    proven: Proven, path: tuple[Any, ...], value: Any, message: str
) -> None:
    with pytest.raises(sj.SnarkjsJsonError) as raised:
        sj.proof_from_json(_set(proven.proofs_json[0], path, value), "proof.json")
    assert str(raised.value).startswith(f"proof.json: {message}")


def test_bad_public_json_and_documents_of_the_wrong_type_are_refused(proven: Proven) -> None:
    with pytest.raises(sj.SnarkjsJsonError, match=r"^public.json: \[1\]: .* is not below the scalar field"):
        sj.public_from_json(["1", str(R)], "public.json")
    with pytest.raises(sj.SnarkjsJsonError, match=r"^public.json: \[0\]: ' 1' is not a decimal number"):
        sj.public_from_json([" 1"], "public.json")
    with pytest.raises(sj.SnarkjsJsonError, match="public signals are a JSON list, not dict"):
        sj.public_from_json({}, "public.json")
    with pytest.raises(sj.SnarkjsJsonError, match="a proof is a JSON object, not list"):
        sj.proof_from_json([], "proof.json")
    with pytest.raises(ValueError, match="not a field element"):
        sj.public_to_json([R])
    assert issubclass(sj.SnarkjsJsonError, ValueError)
