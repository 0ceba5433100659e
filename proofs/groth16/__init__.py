"""Groth16 over BN254 (Groth, "On the Size of Pairing-based Non-interactive Arguments", EUROCRYPT 2016),
in snarkjs's flavour so that its keys, proofs and ceremonies interoperate.

One module per object of the paper, as in arkworks' groth16 crate: `keys` (the proving and verifying
keys), `proof` (the proof), `qap` (the R1CS to QAP reduction), `setup` (key generation), `prover` and
`verifier`.
"""
