"""The Groth16 prover, snarkjs's way (src/groth16_prove.js), on the numba kernels.

For a witness w (w₀ = 1) and fresh random r, s:

    A  = [α]₁ + Σ wᵢ·[Aᵢ(τ)]₁ + r·[δ]₁
    B  = [β]₂ + Σ wᵢ·[Bᵢ(τ)]₂ + s·[δ]₂          (and B₁, the same in G1, for C)
    C  = Σ_{i>l} wᵢ·[Kᵢ/δ]₁ + Σ hⱼ·[Hⱼ]₁ + s·A + r·B₁ - r·s·[δ]₁

where l = n_public and hⱼ are the values of A·B - C on the odd coset (qap.h_values). Each Σ is one
multi-scalar multiplication; the few extra terms are folded into small ones.

The prover is CPU-bound for seconds: the daemon runs it in a worker process (`ProverWorker`), never on its
event loop. Within `record_phases()`, each proof adds the seconds of its phases (H, each MSM, the small
combinations) to a dict, for benchmarks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from proofs.bn254 import field
from proofs.bn254.curve import g1_table, g2_table
from proofs.bn254.msm import msm_g1, msm_g2
from proofs.field import R
from proofs.groth16 import qap
from proofs.groth16.keys import G1Point, G2Point, ProvingKey
from proofs.groth16.proof import Proof


class ProverError(ValueError):
    """A witness that cannot be proven with this key."""


_recording: list[dict[str, float]] = []


@contextmanager
def record_phases() -> Iterator[dict[str, float]]:
    """Within the block, every proof adds the seconds of its phases to the dict yielded: "h" (the H
    values: NTTs), "msm_a", "msm_b1", "msm_b2", "msm_c", "msm_h" and "combine" (the small MSMs that
    fold in α, β, δ, r and s). The witness's conversion is what `prove` takes beyond their sum."""
    phases: dict[str, float] = {}
    _recording.append(phases)
    try:
        yield phases
    finally:
        _recording.remove(phases)


class _Clock:
    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        for phases in _recording:
            phases[phase] = phases.get(phase, 0.0) + now - self.last
        self.last = now


def _combine_g1(points: list[G1Point], scalars: list[int]) -> G1Point:
    return msm_g1(g1_table(points), field.limbs([k % R for k in scalars]))


def _combine_g2(points: list[G2Point], scalars: list[int]) -> G2Point:
    return msm_g2(g2_table(points), field.limbs([k % R for k in scalars]))


def prove(pk: ProvingKey, witness: Sequence[int] | np.ndarray) -> Proof:
    """A proof that `witness` satisfies the circuit of `pk`, with fresh random r and s. The witness must
    satisfy it (as R1CS.witness guarantees): for one that does not, the proof is simply invalid. It is
    a sequence of ints, or the same as an (n, 4) uint64 array of plain limbs (R1CS.witness_limbs)."""
    if len(witness) != pk.n_vars:
        raise ProverError(f"the witness has {len(witness)} wires; this key's circuit has {pk.n_vars}")
    if isinstance(witness, np.ndarray):
        if witness.dtype != np.uint64 or witness.shape != (pk.n_vars, 4):
            raise ProverError(
                f"a witness array holds (wires, 4) uint64 limbs, not {witness.dtype} {witness.shape}"
            )
        plain = np.ascontiguousarray(witness)
        if plain[0].tolist() != [1, 0, 0, 0]:
            raise ProverError(f"wire 0 of a witness is the constant 1, not {field.ints(plain[:1])[0]}")
        top = R >> 192  # below r: a top limb below r's, or equal to it and the whole value below r
        if (plain[:, 3] > top).any() or any(v >= R for v in field.ints(plain[plain[:, 3] == top])):
            raise ProverError("every wire of a witness is a field element in [0, r)")
    else:
        if witness[0] != 1:
            raise ProverError(f"wire 0 of a witness is the constant 1, not {witness[0]}")
        if any(not 0 <= v < R for v in witness):
            raise ProverError("every wire of a witness is a field element in [0, r)")
        plain = field.limbs(list(witness))
    r, s = secrets.randbelow(R), secrets.randbelow(R)

    clock = _Clock()
    h = qap.h_values(pk.coefficients, field.to_montgomery(plain, R), pk.domain_size)
    clock.lap("h")
    sum_h = msm_g1(pk.h_query, h)
    del h
    clock.lap("msm_h")
    sum_a = msm_g1(pk.a_query, plain)
    clock.lap("msm_a")
    sum_b1 = msm_g1(pk.b1_query, plain)
    clock.lap("msm_b1")
    sum_b2 = msm_g2(pk.b2_query, plain)
    clock.lap("msm_b2")
    sum_c = msm_g1(pk.c_query, np.ascontiguousarray(plain[pk.n_public + 1 :]))  # rows: a view, no copy
    clock.lap("msm_c")

    vk = pk.vk
    a = _combine_g1([vk.alpha_1, sum_a, pk.delta_1], [1, 1, r])
    b1 = _combine_g1([pk.beta_1, sum_b1, pk.delta_1], [1, 1, s])
    b = _combine_g2([vk.beta_2, sum_b2, vk.delta_2], [1, 1, s])
    c = _combine_g1([sum_c, sum_h, a, b1, pk.delta_1], [1, 1, s, r, -r * s])
    clock.lap("combine")
    return Proof(a=a, b=b, c=c)
