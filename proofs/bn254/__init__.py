"""BN254 arithmetic for the prover: numba kernels for the base field, the scalar field, Fp2, the curve
groups G1 and G2, the NTT and multi-scalar multiplication.

py_ecc is the reference that every kernel is tested against; these kernels are only the fast path.
"""
