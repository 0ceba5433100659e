"""The R1CS builder, its gadgets and witness computation; see proofs.r1cs.builder for the API."""

from proofs.r1cs import gadgets
from proofs.r1cs.builder import (
    LC,
    R1CS,
    Builder,
    CircuitError,
    Constraint,
    ConstraintFailed,
    Row,
    Value,
    WitnessError,
    as_lc,
    weighted_sum,
)

__all__ = [
    "LC",
    "R1CS",
    "Builder",
    "CircuitError",
    "Constraint",
    "ConstraintFailed",
    "Row",
    "Value",
    "WitnessError",
    "as_lc",
    "gadgets",
    "weighted_sum",
]
