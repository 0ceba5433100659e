"""snarkjs's Groth16 JSON: verification keys, proofs and public signals, both ways.

As snarkjs 0.7 writes them (src/zkey_export_verificationkey.js groth16Vk, src/groth16_prove.js; the
point encodings are ffjavascript's G1.toObject/G2.toObject, src/wasm_curve.js), every number a decimal
string:

    verification key  {"protocol": "groth16", "curve": "bn128", "nPublic": n,
                       "vk_alpha_1": G1, "vk_beta_2": G2, "vk_gamma_2": G2, "vk_delta_2": G2,
                       "vk_alphabeta_12": e(α, β) (a GT element), "IC": [G1, ... n + 1 points]}
    proof             {"pi_a": G1, "pi_b": G2, "pi_c": G1, "protocol": "groth16", "curve": "bn128"}
    public signals    ["123", ...], in wire order

    G1 = [x, y, "1"], infinity ["0", "1", "0"]
    G2 = [[x.c0, x.c1], [y.c0, y.c1], ["1", "0"]], infinity [["0", "0"], ["1", "0"], ["0", "0"]]

(real part c0 first, as in keys.py; EIP-197 and so Solidity put the imaginary part first.)

vk_alphabeta_12 is not written: snarkjs's `groth16 verify` (src/groth16_verify.js) never reads it (it
pairs vk_alpha_1 with vk_beta_2 itself), and neither do our verifier and Solidity verifier. It is
accepted and ignored on reading. A development key's JSON carries one more field, DEVELOPMENT_FIELD,
whose value says "NOT FOR PRODUCTION"; a key is read as a development key exactly when it has it.

Reading is strict: the protocol and curve (when present in a proof; required in a key), lengths,
numbers as decimal strings (JSON integers are accepted too) below their field's modulus, a third
projective coordinate of 1 or 0 (the point at infinity; snarkjs writes no other), points on their
curves. Points are NOT checked for the G2 subgroup here: the verifier does. Every fault raises
SnarkjsJsonError naming the source and the field, e.g. "proof.json: pi_b[1][0]: ...".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from proofs.bn254.field import P
from proofs.field import R
from proofs.groth16.keys import (
    DEVELOPMENT_LABEL,
    G1_INFINITY,
    G2_INFINITY,
    G1Point,
    G2Point,
    VerifyingKey,
    g1_on_curve,
    g2_on_curve,
)
from proofs.groth16.proof import Proof

PROTOCOL = "groth16"
CURVE = "bn128"
_CURVE_NAMES = {"BN128", "BN254", "ALTBN128"}  # the names snarkjs's getCurveFromName accepts for BN254
DEVELOPMENT_FIELD = "xrelay_development"

_DECIMAL = re.compile(r"[0-9]+")


class SnarkjsJsonError(ValueError):
    """A snarkjs JSON document is not what it should be; the message names the source and the field."""


# --- writing ------------------------------------------------------------------------------------------


def _g1_json(point: G1Point) -> list[str]:
    if point == G1_INFINITY:
        return ["0", "1", "0"]
    return [str(point[0]), str(point[1]), "1"]


def _g2_json(point: G2Point) -> list[list[str]]:
    if point == G2_INFINITY:
        return [["0", "0"], ["1", "0"], ["0", "0"]]
    (x0, x1), (y0, y1) = point
    return [[str(x0), str(x1)], [str(y0), str(y1)], ["1", "0"]]


def verifying_key_to_json(vk: VerifyingKey) -> dict[str, Any]:
    """The key as `snarkjs zkey export verificationkey` writes it, without vk_alphabeta_12."""
    obj: dict[str, Any] = {
        "protocol": PROTOCOL,
        "curve": CURVE,
        "nPublic": vk.n_public,
        "vk_alpha_1": _g1_json(vk.alpha_1),
        "vk_beta_2": _g2_json(vk.beta_2),
        "vk_gamma_2": _g2_json(vk.gamma_2),
        "vk_delta_2": _g2_json(vk.delta_2),
        "IC": [_g1_json(p) for p in vk.ic],
    }
    if vk.development:
        obj[DEVELOPMENT_FIELD] = DEVELOPMENT_LABEL
    return obj


def proof_to_json(proof: Proof) -> dict[str, Any]:
    """The proof as `snarkjs groth16 prove` writes it."""
    return {
        "pi_a": _g1_json(proof.a),
        "pi_b": _g2_json(proof.b),
        "pi_c": _g1_json(proof.c),
        "protocol": PROTOCOL,
        "curve": CURVE,
    }


def public_to_json(public_inputs: Sequence[int]) -> list[str]:
    """The public signals as snarkjs writes them: decimal strings."""
    bad = next((i for i, v in enumerate(public_inputs) if not 0 <= v < R), None)
    if bad is not None:
        raise ValueError(f"public input {bad} ({public_inputs[bad]}) is not a field element in [0, r)")
    return [str(v) for v in public_inputs]


# --- reading ------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, fault: str) -> SnarkjsJsonError:
        return SnarkjsJsonError(f"{self.source}: {where}: {fault}")

    def number(self, value: object, where: str, modulus: int) -> int:
        if isinstance(value, str) and _DECIMAL.fullmatch(value):
            n = int(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            n = value
        else:
            raise self.fail(where, f"{value!r} is not a decimal number")
        if n >= modulus:
            name = "base field's prime q" if modulus == P else "scalar field's prime r"
            raise self.fail(where, f"{n} is not below the {name}")
        return n

    def items(self, value: object, where: str, lengths: tuple[int, ...]) -> list[Any]:
        if not isinstance(value, list) or len(value) not in lengths:
            expected = " or ".join(map(str, lengths))
            raise self.fail(where, f"expected a list of {expected} items, not {value!r}")
        return value

    def z(self, value: object, where: str, one: object, zero: object) -> bool:
        """Whether a projective third coordinate says the point is at infinity (0) or affine (1)."""
        if value == one:
            return False
        if value == zero:
            return True
        raise self.fail(where, f"the third coordinate must be {one!r} (a point) or {zero!r} (infinity)")

    def g1(self, value: object, where: str) -> G1Point:
        coords = self.items(value, where, (2, 3))
        if len(coords) == 3:
            z = self.number(coords[2], f"{where}[2]", P)
            if self.z(z, f"{where}[2]", 1, 0):
                return G1_INFINITY
        point = (self.number(coords[0], f"{where}[0]", P), self.number(coords[1], f"{where}[1]", P))
        if not g1_on_curve(point) or point == G1_INFINITY:
            raise self.fail(where, f"{point} is not on BN254's G1 curve")
        return point

    def fp2(self, value: object, where: str) -> tuple[int, int]:
        c0, c1 = self.items(value, where, (2,))
        return (self.number(c0, f"{where}[0]", P), self.number(c1, f"{where}[1]", P))

    def g2(self, value: object, where: str) -> G2Point:
        coords = self.items(value, where, (2, 3))
        if len(coords) == 3 and self.z(self.fp2(coords[2], f"{where}[2]"), f"{where}[2]", (1, 0), (0, 0)):
            return G2_INFINITY
        point = (self.fp2(coords[0], f"{where}[0]"), self.fp2(coords[1], f"{where}[1]"))
        if not g2_on_curve(point) or point == G2_INFINITY:
            raise self.fail(where, f"{point} is not on BN254's G2 twist curve")
        return point

    def obj(self, value: object, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise SnarkjsJsonError(f"{self.source}: a {what} is a JSON object, not {type(value).__name__}")
        return value

    def field(self, obj: dict[str, Any], name: str) -> Any:
        if name not in obj:
            raise self.fail(name, "missing")
        return obj[name]

    def protocol_and_curve(self, obj: dict[str, Any], required: bool) -> None:
        for name, check in (
            ("protocol", lambda v: v == PROTOCOL),
            (
                "curve",
                lambda v: isinstance(v, str) and re.sub(r"[^A-Za-z0-9]", "", v).upper() in _CURVE_NAMES,
            ),
        ):
            if name not in obj and not required:
                continue
            value = self.field(obj, name)
            if not check(value):
                expected = PROTOCOL if name == "protocol" else CURVE
                raise self.fail(name, f"{value!r} is not {expected!r}")


def verifying_key_from_json(obj: object, source: str = "<json>") -> VerifyingKey:
    """A verifying key from snarkjs's JSON (`snarkjs zkey export verificationkey`, or ours)."""
    read = _Reader(source)
    doc = read.obj(obj, "verification key")
    read.protocol_and_curve(doc, required=True)
    ic_json = read.field(doc, "IC")
    if not isinstance(ic_json, list) or not ic_json:
        raise read.fail("IC", "expected a non-empty list of G1 points")
    n_public = read.field(doc, "nPublic")
    if not isinstance(n_public, int) or isinstance(n_public, bool) or n_public != len(ic_json) - 1:
        raise read.fail("nPublic", f"{n_public!r} does not match the {len(ic_json)} IC points (nPublic + 1)")
    development = DEVELOPMENT_FIELD in doc
    if development and not isinstance(doc[DEVELOPMENT_FIELD], str):
        raise read.fail(DEVELOPMENT_FIELD, "expected a string")
    return VerifyingKey(
        alpha_1=read.g1(read.field(doc, "vk_alpha_1"), "vk_alpha_1"),
        beta_2=read.g2(read.field(doc, "vk_beta_2"), "vk_beta_2"),
        gamma_2=read.g2(read.field(doc, "vk_gamma_2"), "vk_gamma_2"),
        delta_2=read.g2(read.field(doc, "vk_delta_2"), "vk_delta_2"),
        ic=tuple(read.g1(p, f"IC[{i}]") for i, p in enumerate(ic_json)),
        development=development,
    )


def proof_from_json(obj: object, source: str = "<json>") -> Proof:
    """A proof from snarkjs's JSON (`snarkjs groth16 prove`, or ours). Points at infinity are read as
    such; the verifier rejects them."""
    read = _Reader(source)
    doc = read.obj(obj, "proof")
    read.protocol_and_curve(doc, required=False)
    return Proof(
        a=read.g1(read.field(doc, "pi_a"), "pi_a"),
        b=read.g2(read.field(doc, "pi_b"), "pi_b"),
        c=read.g1(read.field(doc, "pi_c"), "pi_c"),
    )


def public_from_json(obj: object, source: str = "<json>") -> list[int]:
    """Public signals from snarkjs's JSON: a list of decimal strings, each below r."""
    read = _Reader(source)
    if not isinstance(obj, list):
        raise SnarkjsJsonError(f"{source}: public signals are a JSON list, not {type(obj).__name__}")
    return [read.number(v, f"[{i}]", R) for i, v in enumerate(obj)]
