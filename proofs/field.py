"""The BN254 scalar field, in which Poseidon, the circuits and Groth16 work.

R is the order of BN254's G1 group (EIP-196/EIP-197; circom's and snarkjs's "bn128" Fr):
21888242871839275222246405745257275088548364400416034343698204186575808495617.
"""

from __future__ import annotations

R = 21888242871839275222246405745257275088548364400416034343698204186575808495617

_MASK_128 = (1 << 128) - 1


def split128(x: int) -> tuple[int, int]:
    """(hi, lo): the high and low 128 bits of a 256-bit integer, e.g. a keccak256 hash, each below R."""
    if not 0 <= x < 1 << 256:
        raise ValueError(f"split128 takes a 256-bit unsigned integer, not {x}")
    return x >> 128, x & _MASK_128


def join128(hi: int, lo: int) -> int:
    """The 256-bit integer whose high and low 128 bits are `hi` and `lo`: the inverse of split128."""
    if not (0 <= hi <= _MASK_128 and 0 <= lo <= _MASK_128):
        raise ValueError(f"join128 takes two 128-bit unsigned halves, not hi={hi}, lo={lo}")
    return hi << 128 | lo
