"""The standard hints: witness steps that gadgets and circuits use, each a module-level function (so a
built R1CS pickles) that takes its inputs' values and returns its outputs' values.

proofs.r1cs.compiled recognises exactly these functions (the n-ary ones through functools.partial) and
computes them in compiled code; any other hint runs in Python, in either witness path.
"""

from __future__ import annotations

from proofs.field import R


def bits(n: int, values: list[int]) -> list[int]:
    """The n low bits of values[0], least significant first."""
    return [values[0] >> i & 1 for i in range(n)]


def inverse_or_zero(values: list[int]) -> list[int]:
    """values[0]⁻¹, or 0 for 0."""
    return [pow(values[0], -1, R) if values[0] else 0]


def less_than(n: int, values: list[int]) -> list[int]:
    """n flags, flag i = 1 when i < values[0], else 0 (as field elements: values[0] ≥ n gives all ones)."""
    return [int(i < values[0]) for i in range(n)]
