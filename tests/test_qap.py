"""The QAP: the prover's H values and the setup's evaluations at τ against a slow reference in Python
integers (Lagrange interpolation over snarkjs's domain with its extra public rows), and against each other:
Σ hᵢ·L^{2n}_{2i+1}(τ) = A(τ)·B(τ) - C(τ), which is what makes a proof verify."""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from py_ecc import optimized_bn128 as bn

from bridge_contracts import toolchain
from proofs.bn254 import ntt
from proofs.bn254.field import P, from_montgomery, ints, limbs, to_montgomery
from proofs.circuits.batch import Batch, BatchCircuit
from proofs.field import R
from proofs.formats import r1cs as r1cs_file
from proofs.groth16 import qap
from proofs.groth16.keys import Coefficients
from proofs.message import LeafPreimage
from proofs.r1cs import R1CS, Builder

# --- a small circuit and the reference --------------------------------------------------------------


def small_circuit(extra: int) -> R1CS:
    """4 + extra multiplications over public x, y and private p[0], p[1]."""
    b = Builder("qap")
    x, y = b.public("x"), b.public("y")
    p, q = b.private_array("p", 2)
    t = b.mul(p, q)
    u = b.mul(t * 2 + 3, x + p)
    v = b.mul(u - y, q * 5 + 1)
    acc = b.mul(v + t, p - y)
    for i in range(extra):
        acc = b.mul(acc + i, x * (i + 1) + q)
    return b.build()


SMALL = small_circuit(2)  # 6 constraints, 2 public inputs: 9 rows, a domain of 16
TINY = small_circuit(0)  # 4 constraints: 7 rows, a domain of 8
BIG = small_circuit(12)  # 16 constraints: 19 rows, a domain of 32


def witness_of(r1cs: R1CS, seed: int) -> list[int]:
    rng = random.Random(seed)
    return r1cs.witness({"x": rng.randrange(R), "y": rng.randrange(R), "p": [rng.randrange(R), 7]})


def mont(values: Sequence[int]) -> np.ndarray:
    return to_montgomery(limbs(list(values)), R)


def horner(coeffs: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % R
    return acc


def interpolate(values: Sequence[int], w: int) -> list[int]:
    """The coefficients of the polynomial with values[k] at w^k (naive inverse DFT)."""
    n = len(values)
    w_inv, n_inv = pow(w, -1, R), pow(n, -1, R)
    return [n_inv * sum(v * pow(w_inv, j * k, R) for k, v in enumerate(values)) % R for j in range(n)]


def poly_mul(f: Sequence[int], g: Sequence[int]) -> list[int]:
    out = [0] * (len(f) + len(g) - 1)
    for i, a in enumerate(f):
        for j, b in enumerate(g):
            out[i + j] = (out[i + j] + a * b) % R
    return out


def poly_sub(f: Sequence[int], g: Sequence[int]) -> list[int]:
    size = max(len(f), len(g))
    f, g = [*f, *[0] * (size - len(f))], [*g, *[0] * (size - len(g))]
    return [(a - b) % R for a, b in zip(f, g, strict=True)]


@dataclass
class Reference:
    """The QAP of an R1CS for one witness, the slow way: row values, then polynomials by interpolation."""

    n: int
    a: list[int]  # coefficients of A(X) = Σ wᵢ·Aᵢ(X)
    b: list[int]
    c: list[int]
    a_rows: list[int]
    b_rows: list[int]

    @classmethod
    def of(cls, r1cs: R1CS, w: Sequence[int]) -> Reference:
        n = qap.domain_size(r1cs)
        a, b, c = [0] * n, [0] * n, [0] * n
        for k, constraint in enumerate(r1cs.constraints):
            a[k], b[k], c[k] = (row.evaluate(w) for row in constraint)
        for s in range(r1cs.n_public + 1):
            a[r1cs.n_constraints + s] = w[s]
        omega = ntt.root_of_unity(n)
        return cls(n, interpolate(a, omega), interpolate(b, omega), interpolate(c, omega), a, b)

    def p(self) -> list[int]:
        """A·B - C, of degree < 2n."""
        return poly_sub(poly_mul(self.a, self.b), self.c)


def dot(u: Sequence[int], v: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(u, v, strict=True)) % R


def abc_at(w: Sequence[int], at: qap.QAPEvaluation) -> int:
    """A(τ)·B(τ) - C(τ) for the witness w, from the per-wire evaluations."""
    a, b, c = (dot(w, ints(x)) for x in (at.a, at.b, at.c))
    return (a * b - c) % R


def h_of(r1cs: R1CS, w: Sequence[int], shift: int | None = None) -> list[int]:
    n = qap.domain_size(r1cs)
    return ints(qap.h_values(qap.coefficients(r1cs), mont(w), n, n_vars=r1cs.n_wires, shift=shift))


# --- domain and coefficients ------------------------------------------------------------------------


@dataclass
class Counts:
    n_constraints: int
    n_public: int


@pytest.mark.parametrize(
    ("n_constraints", "n_public", "size"),
    [(0, 0, 2), (1, 0, 2), (5, 2, 8), (6, 2, 16), (7441, 22, 8192), (65535 - 22, 22, 65536)],
)
def test_domain_size_is_snarkjs(n_constraints: int, n_public: int, size: int) -> None:
    """zkey_new.js: 2^(floor(log2(nConstraints + nPublic)) + 1)."""
    assert qap.domain_size(cast(R1CS, Counts(n_constraints, n_public))) == size


def test_domain_too_large() -> None:
    assert qap.domain_size(cast(R1CS, Counts((1 << 28) - 3, 2))) == 1 << 28
    with pytest.raises(qap.DomainTooLarge, match="at most 2\\^28"):
        qap.domain_size(cast(R1CS, Counts((1 << 28) - 2, 2)))


def test_coefficients_in_snarkjs_order() -> None:
    coeffs = qap.coefficients(SMALL)
    expected = []
    for k, constraint in enumerate(SMALL.constraints):
        for m in (0, 1):
            row = constraint[m]
            expected += [(m, k, s, v) for s, v in zip(row.wires, row.coeffs, strict=True)]
    expected += [(0, SMALL.n_constraints + s, s, 1) for s in range(SMALL.n_public + 1)]
    got = list(
        zip(
            coeffs.matrix.tolist(),
            coeffs.constraint.tolist(),
            coeffs.signal.tolist(),
            ints(from_montgomery(coeffs.value, R)),
            strict=True,
        )
    )
    assert got == expected
    assert coeffs.matrix.dtype == coeffs.constraint.dtype == coeffs.signal.dtype == np.uint32


def test_evaluate_rows() -> None:
    w = witness_of(SMALL, 1)
    ref = Reference.of(SMALL, w)
    a, b = qap.evaluate_rows(qap.coefficients(SMALL), mont(w), ref.n)
    assert ints(from_montgomery(a, R)) == ref.a_rows
    assert ints(from_montgomery(b, R)) == ref.b_rows


def test_evaluate_rows_on_compact_coefficients() -> None:
    """Each distinct value once and an index per entry (how read_proving_key keeps them): same rows."""
    full = qap.coefficients(SMALL)
    table = qap.ValueTable()
    index = table.add(full.value)
    compact = Coefficients(full.matrix, full.constraint, full.signal, table.values(), index)
    assert len(compact.value) < len(full.value)
    assert np.array_equal(compact.expanded().value, full.value)
    w = mont(witness_of(SMALL, 1))
    for got, want in zip(qap.evaluate_rows(compact, w, 16), qap.evaluate_rows(full, w, 16), strict=True):
        assert np.array_equal(got, want)
    bad = Coefficients(full.matrix, full.constraint, full.signal, table.values()[:1], index)
    with pytest.raises(qap.QAPError, match="value index"):
        qap.evaluate_rows(bad, w, 16)


def test_value_table_keeps_each_distinct_row_once_as_it_grows() -> None:
    rng = np.random.default_rng(5)
    pool = rng.integers(0, 2**63, size=(30_000, 4), dtype=np.uint64)
    table = qap.ValueTable()
    rows, indices = [], []
    for size in (1, 700, 5_000, 20_000, 40_000):  # the table grows past its first sizes
        chunk = pool[rng.integers(0, len(pool), size=size)]
        rows.append(chunk)
        indices.append(table.add(chunk))
    values = table.values()
    assert len(np.unique(values, axis=0)) == len(values) <= len(pool)
    assert np.array_equal(values[np.concatenate(indices)], np.concatenate(rows))


# --- the prover's H ---------------------------------------------------------------------------------


@pytest.mark.parametrize("circuit", [TINY, SMALL], ids=["tiny", "small"])
def test_h_values_are_a_b_minus_c_on_the_odd_coset(circuit: R1CS) -> None:
    w = witness_of(circuit, 2)
    ref = Reference.of(circuit, w)
    p = ref.p()
    n = ref.n
    omega = ntt.root_of_unity(n)
    assert all(horner(p, pow(omega, k, R)) == 0 for k in range(n)), "a valid witness: P vanishes"
    odd = ntt.root_of_unity(2 * n)
    assert h_of(circuit, w) == [horner(p, odd * pow(omega, i, R) % R) for i in range(n)]


def test_invalid_witness_breaks_the_qap() -> None:
    w = witness_of(SMALL, 3)
    w[-1] = (w[-1] + 1) % R
    p = Reference.of(SMALL, w).p()
    omega = ntt.root_of_unity(16)
    assert any(horner(p, pow(omega, k, R)) for k in range(16))
    tau = random.Random(3).randrange(R)
    assert dot(h_of(SMALL, w), ints(qap.h_lagrange(tau, 16))) != abc_at(w, qap.evaluate_at(SMALL, tau))


# --- the setup's evaluations ------------------------------------------------------------------------


def test_evaluate_at_per_wire() -> None:
    """Aᵢ(τ) is the reference A(τ) for the witness that is 1 on wire i and 0 elsewhere."""
    tau = random.Random(4).randrange(R)
    at = qap.evaluate_at(SMALL, tau)
    assert at.domain_size == 16
    a, b, c = ints(at.a), ints(at.b), ints(at.c)
    assert at.a.shape == (SMALL.n_wires, 4)
    for i in range(SMALL.n_wires):
        unit = [int(j == i) for j in range(SMALL.n_wires)]
        ref = Reference.of(SMALL, unit)
        assert (a[i], b[i], c[i]) == (horner(ref.a, tau), horner(ref.b, tau), horner(ref.c, tau))


def direct_lagrange(points: Sequence[int], k: int, x: int) -> int:
    num, den = 1, 1
    for j, p in enumerate(points):
        if j != k:
            num = num * (x - p) % R
            den = den * (points[k] - p) % R
    return num * pow(den, -1, R) % R


def test_lagrange_bases() -> None:
    n, tau = 8, random.Random(5).randrange(R)
    domain = [pow(ntt.root_of_unity(n), k, R) for k in range(n)]
    assert ints(qap.lagrange_basis(tau, n)) == [direct_lagrange(domain, k, tau) for k in range(n)]
    double = [pow(ntt.root_of_unity(2 * n), k, R) for k in range(2 * n)]
    assert ints(qap.h_lagrange(tau, n)) == [direct_lagrange(double, 2 * i + 1, tau) for i in range(n)]
    truncated = [
        pow(2 * n, -1, R) * sum(pow(tau, i, R) * pow(x, -i, R) for i in range(2 * n - 1)) % R
        for x in double[1::2]
    ]
    assert ints(qap.h_lagrange(tau, n, truncated=True)) == truncated
    coset = [25 * x % R for x in domain]
    union = domain + coset
    expected = [direct_lagrange(union, n + i, tau) for i in range(n)]
    assert ints(qap.h_lagrange(tau, n, shift=25)) == expected


def test_bases_at_a_point_of_the_domain() -> None:
    n = 8
    omega = ntt.root_of_unity(n)
    assert ints(qap.lagrange_basis(pow(omega, 3, R), n)) == [int(k == 3) for k in range(n)]
    odd = ntt.root_of_unity(2 * n)
    assert ints(qap.h_lagrange(odd * pow(omega, 5, R), n)) == [int(i == 5) for i in range(n)]
    assert ints(qap.h_lagrange(pow(omega, 5, R), n)) == [0] * n
    at = qap.evaluate_at(TINY, pow(omega, 2, R))
    row = TINY.constraints[2].a
    assert ints(at.a) == [
        dict(zip(row.wires, row.coeffs, strict=True)).get(i, 0) for i in range(TINY.n_wires)
    ]


@pytest.mark.parametrize(("shift", "truncated"), [(None, False), (None, True), (25, False), (7, False)])
def test_setup_and_prover_agree(shift: int | None, truncated: bool) -> None:
    """Σ hᵢ·Hᵢ(τ) = A(τ)·B(τ) - C(τ): the prover's H values against the setup's H scalars and per-wire
    evaluations, for snarkjs's odd coset (either H basis) and for other cosets."""
    w = witness_of(SMALL, 6)
    h = h_of(SMALL, w, shift=shift)
    rng = random.Random(6)
    for tau in (rng.randrange(R) for _ in range(3)):
        h_tau = qap.h_lagrange(tau, 16, shift=shift, truncated=truncated)
        assert dot(h, ints(h_tau)) == abc_at(w, qap.evaluate_at(SMALL, tau))


# --- snarkjs's own setup, from powers of τ with a known τ ------------------------------------------


def _fq(x: object) -> bytes:
    return (int(cast(int, x)) * pow(2, 256, P) % P).to_bytes(32, "little")


def _g1(k: int) -> bytes:
    x, y = bn.normalize(bn.multiply(bn.G1, k % R))
    return _fq(x) + _fq(y)


def _g2(k: int) -> bytes:
    x, y = bn.normalize(bn.multiply(bn.G2, k % R))
    return b"".join(_fq(c) for c in (*x.coeffs, *y.coeffs))


def _sections(body: list[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack("<IQ", kind, len(data)) + data for kind, data in body)


def _read_sections(data: bytes) -> dict[int, bytes]:
    pos, out = 12, {}
    for _ in range(struct.unpack_from("<I", data, 8)[0]):
        kind, size = struct.unpack_from("<IQ", data, pos)
        out[kind] = data[pos + 12 : pos + 12 + size]
        pos += 12 + size
    return out


def test_snarkjs_setup_from_a_known_tau(tmp_path: Path) -> None:
    """A .ptau of power 5 written here for known τ, α, β (phase 1's sections 1-7, no contributions), then
    snarkjs's `powersoftau prepare phase2` and `groth16 setup`: its IC, A, B₁, C and H points (δ = γ = 1
    before any phase-2 contribution) are exactly those of evaluate_at and h_lagrange, for a domain of 16
    and for one of 32 = 2^power, where snarkjs's H basis is the truncated one. This pins the domain, the
    extra public rows, the roots of unity and the H basis to snarkjs's."""
    tau, alpha, beta, power = 0x1234567890ABCDEF1234567890ABCDEF, 3, 5, 5
    n = 1 << power
    powers = [pow(tau, i, R) for i in range(2 * n)]
    ptau = (
        b"ptau"
        + struct.pack("<II", 1, 7)
        + _sections(
            [
                (1, struct.pack("<I", 32) + P.to_bytes(32, "little") + struct.pack("<II", power, power)),
                (2, b"".join(_g1(x) for x in powers[: 2 * n - 1])),
                (3, b"".join(_g2(x) for x in powers[:n])),
                (4, b"".join(_g1(alpha * x) for x in powers[:n])),
                (5, b"".join(_g1(beta * x) for x in powers[:n])),
                (6, _g2(beta)),
                (7, struct.pack("<I", 0)),
            ]
        )
    )
    (tmp_path / "known.ptau").write_bytes(ptau)
    snarkjs = [toolchain.node(), str(toolchain.snarkjs())]
    subprocess.run(
        [*snarkjs, "powersoftau", "prepare", "phase2", "known.ptau", "final.ptau"], cwd=tmp_path, check=True
    )
    for name, circuit, size in (("small", SMALL, 16), ("big", BIG, 32)):
        r1cs_file.write(circuit, tmp_path / f"{name}.r1cs")
        setup = [*snarkjs, "groth16", "setup", f"{name}.r1cs", "final.ptau", f"{name}.zkey"]
        subprocess.run(setup, cwd=tmp_path, check=True)
        zkey = _read_sections((tmp_path / f"{name}.zkey").read_bytes())

        at = qap.evaluate_at(circuit, tau)
        assert at.domain_size == size
        a, b, c = ints(at.a), ints(at.b), ints(at.c)
        k = [(beta * x + alpha * y + z) % R for x, y, z in zip(a, b, c, strict=True)]
        fixed = circuit.n_public + 1
        assert zkey[3] == b"".join(map(_g1, k[:fixed])), "IC"
        assert zkey[5] == b"".join(map(_g1, a)), "A"
        assert zkey[6] == b"".join(map(_g1, b)), "B1"
        assert zkey[8] == b"".join(map(_g1, k[fixed:])), "C"
        h = qap.h_lagrange(tau, size, truncated=size == n)
        assert zkey[9] == b"".join(map(_g1, ints(h))), "H"


# --- errors -----------------------------------------------------------------------------------------


def test_witness_errors() -> None:
    coeffs = qap.coefficients(SMALL)
    w = mont(witness_of(SMALL, 7))
    with pytest.raises(qap.WitnessShapeError, match=f"has {SMALL.n_wires - 1} wires; the circuit has"):
        qap.h_values(coeffs, w[:-1], 16, n_vars=SMALL.n_wires)
    with pytest.raises(qap.WitnessShapeError, match="coefficients use wire"):
        qap.h_values(coeffs, w[:-2], 16)  # the last wire is only in C, which the prover never reads
    with pytest.raises(qap.WitnessShapeError, match=r"\(n_vars, 4\)"):
        qap.evaluate_rows(coeffs, w[:, :3], 16)
    with pytest.raises(qap.WitnessShapeError, match="uint64"):
        qap.evaluate_rows(coeffs, w.astype(np.int64), 16)
    with pytest.raises(qap.QAPError, match="outside the domain"):
        qap.evaluate_rows(coeffs, w, 8)
    assert issubclass(qap.WitnessShapeError, ValueError)


# --- the batch circuit ------------------------------------------------------------------------------


def test_batch_circuit_end_to_end() -> None:
    circuit = BatchCircuit(8)
    r1cs = circuit.r1cs
    messages = tuple(LeafPreimage(902, 5 + i % 2, 10 * i + 1, i) for i in range(6))
    w = circuit.witness(Batch(chain_id=901, batch_number=4, h_start=17, messages=messages))
    n = qap.domain_size(r1cs)
    assert n == 8192
    h = h_of(r1cs, w)
    tau = random.Random(8).randrange(R)
    at = qap.evaluate_at(r1cs, tau)
    h_tau = ints(qap.h_lagrange(tau, n))
    assert dot(h, h_tau) == abc_at(w, at)
    w[-1] = (w[-1] + 1) % R  # no longer a witness
    assert dot(h_of(r1cs, w), h_tau) != abc_at(w, at)
