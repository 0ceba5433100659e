"""Field and curve arithmetic, Poseidon, Merkle trees, the R1CS builder, Groth16 and circuits.

Empty until the proof-system issues build it; see docs/architecture.md.
"""
