"""A Groth16 proof: the three points A ∈ G1, B ∈ G2, C ∈ G1 (affine integers, as in keys.py)."""

from __future__ import annotations

from dataclasses import dataclass

from proofs.groth16.keys import G1Point, G2Point


@dataclass(frozen=True)
class Proof:
    a: G1Point
    b: G2Point
    c: G1Point
