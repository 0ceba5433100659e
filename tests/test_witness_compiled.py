"""proofs.r1cs.compiled: the compiled witness equals the reference (R1CS.witness over Python ints) on
random batches and small circuits, refuses bad inputs with the same errors, and its kernels load from
numba's disk cache; the prover takes its limbs directly."""

from __future__ import annotations

import os
import pickle
import random
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import cache

import numpy as np
import pytest

from proofs.bn254 import field
from proofs.circuits.batch import Batch, BatchCircuit, BatchError, PublicInputs, ValueSlot
from proofs.field import R
from proofs.groth16.keys import ProvingKey
from proofs.groth16.prover import ProverError, prove
from proofs.groth16.setup import setup
from proofs.groth16.verifier import verify
from proofs.message import LeafPreimage
from proofs.r1cs import R1CS, Builder, CircuitError, ConstraintFailed, Row, WitnessError, gadgets
from proofs.r1cs.builder import Constraint, _Input, _MulStep
from proofs.r1cs.compiled import WitnessProgram
from tests.snarkjs import small_circuit, small_witness
from tests.test_r1cs import _product_circuit

Inputs = Mapping[str, int | Sequence[int]]

ASSETS = (0xA11CE << 200 | 0x1234, 0xB0B << 230 | 0x5678, (1 << 256) - 1)
AMOUNTS = (1, 2, 10**18, 2**64, 2**128 - 2, 2**128 - 1)  # and 0, for the messages without an asset


def _outcome(run: Callable[[], object]) -> object:
    """What a witness computation gives: its value, or its error as (type, message, and for a failed
    constraint its index, label and values)."""
    try:
        return run()
    except ConstraintFailed as e:
        return ConstraintFailed, str(e), e.index, e.label, e.a, e.b, e.c
    except (WitnessError, BatchError, CircuitError) as e:
        return type(e), str(e)


def assert_alike(r1cs: R1CS, inputs: Inputs) -> object:
    """Both paths give the same witness, or fail alike; returns the outcome."""
    reference = _outcome(lambda: r1cs.witness(inputs))
    assert _outcome(lambda: r1cs.witness(inputs, compiled=True)) == reference
    if isinstance(reference, list):
        limbs = r1cs.witness_limbs(inputs)
        assert limbs.dtype == np.uint64 and limbs.shape == (r1cs.n_wires, 4)
        assert field.ints(limbs) == reference
    return reference


# --- batches --------------------------------------------------------------------------------------------


def random_batch(rng: random.Random, capacity: int) -> Batch:
    """count in [1, capacity], amounts from 0 (no asset) to 2^128 - 1, up to 4 (destination, asset) pairs."""
    pairs = [(rng.choice((900, 902, 903)), rng.choice(ASSETS)) for _ in range(rng.randint(1, 4))]
    messages = []
    for _ in range(rng.randint(1, capacity)):
        dest, asset = rng.choice(pairs)
        if rng.random() < 0.25:
            asset, amount = 0, 0
        else:
            amount = rng.choice((*AMOUNTS, rng.randrange(1, 2**128)))
        messages.append(LeafPreimage(dest, asset, amount, rng.randrange(2**248)))
    return Batch(rng.randrange(2**64), rng.randrange(2**32), rng.randrange(R), tuple(messages))


def assert_batch_alike(circuit: BatchCircuit, batch: Batch) -> None:
    reference = circuit.witness(batch, compiled=False)
    public, limbs = circuit.public_and_witness(batch)
    assert field.ints(limbs) == reference
    assert circuit.witness(batch) == reference
    assert public == circuit.public_inputs(batch)
    # The full inputs (hashes given, not derived) through R1CS.witness: the same witness.
    assert circuit.r1cs.witness(circuit.inputs(batch), compiled=True) == reference


@pytest.mark.parametrize("seed", range(8))
def test_random_batches_of_capacity_8(seed: int) -> None:
    assert_batch_alike(BatchCircuit(8), random_batch(random.Random(seed), 8))


@pytest.mark.parametrize("seed", range(2))
def test_random_batches_of_capacity_64(seed: int) -> None:
    rng = random.Random(100 + seed)
    assert_batch_alike(BatchCircuit(64), random_batch(rng, 64))


def test_full_and_single_message_batches_with_two_slots() -> None:
    circuit = BatchCircuit(8, slots=2)
    rng = random.Random(7)
    messages = tuple(LeafPreimage(902, ASSETS[0], 2**128 - 1 - i, i) for i in range(8))
    for batch in (Batch(1, 2, 3, messages), Batch(1, 2, 3, messages[:1])):
        assert_batch_alike(circuit, batch)
    assert_batch_alike(circuit, replace(random_batch(rng, 8), messages=messages[:5]))


def test_a_given_public_with_slots_in_another_order_is_stated_as_given() -> None:
    circuit = BatchCircuit(8)
    batch = random_batch(random.Random(3), 8)
    public = circuit.public_inputs(batch)
    reordered = replace(public, slots=tuple(reversed(public.slots)))
    stated, limbs = circuit.public_and_witness(batch, reordered)
    assert stated == reordered
    assert field.ints(limbs) == circuit.witness(batch, reordered, compiled=False)


MIXED = Batch(
    901,
    4,
    0,
    (
        LeafPreimage(902, 0, 0, 1),
        LeafPreimage(902, ASSETS[0], 10**21, 2),
        LeafPreimage(900, ASSETS[0], 5, 3),
        LeafPreimage(902, ASSETS[0], 7, 4),
    ),
)


def _bad_publics() -> list[tuple[Batch, PublicInputs | None]]:
    circuit = BatchCircuit(8)
    public = circuit.public_inputs(MIXED)
    many = tuple(LeafPreimage(d, a, 1, 0) for d in (900, 902, 903) for a in ASSETS[:2])
    return [
        (replace(MIXED, messages=()), None),
        (replace(MIXED, messages=MIXED.messages * 3), None),
        (replace(MIXED, messages=many), None),
        (MIXED, replace(public, slots=(public.slots[0], ValueSlot(), ValueSlot(), ValueSlot()))),
        (MIXED, replace(public, slots=public.slots[:3])),
        (MIXED, replace(public, count=3)),
        (MIXED, replace(public, chain_id=1)),
        (MIXED, replace(public, h_start=1)),
        (replace(MIXED, h_start=1), replace(public, h_start=1)),  # h_end no longer matches
        (MIXED, replace(public, batch_root=public.batch_root ^ 1)),
        (MIXED, replace(public, slots=(replace(public.slots[0], amount=1), *public.slots[1:]))),
    ]


@pytest.mark.parametrize("case", range(len(_bad_publics())))
def test_a_bad_batch_or_public_is_refused_alike(case: int) -> None:
    circuit = BatchCircuit(8)
    batch, public = _bad_publics()[case]
    reference = _outcome(lambda: circuit.witness(batch, public, compiled=False))
    assert isinstance(reference, tuple) and reference[0] is BatchError, reference
    assert _outcome(lambda: circuit.witness(batch, public)) == reference
    assert _outcome(lambda: circuit.public_and_witness(batch, public)) == reference


def _forgeries() -> list[dict[str, int | list[int]]]:
    """MIXED's inputs with one thing changed past the Python checks: each fails a constraint."""
    inputs = BatchCircuit(8).inputs(MIXED)

    def changed(name: str, index: int | None, value: int) -> dict[str, int | list[int]]:
        forged = dict(inputs)
        if index is None:
            forged[name] = value
        else:
            column = list(forged[name])  # type: ignore[arg-type]
            column[index] = value
            forged[name] = column
        return forged

    amounts: list[int] = inputs["amount"]  # type: ignore[assignment]
    return [
        changed("amount", 1, amounts[1] + 2**128),
        changed("slotSelect", 1 * 4 + 1, 1),
        changed("slotSelect", 2 * 4 + 1, 0),
        changed("slotAmount", 0, 1),
        changed("hStart", None, 1),
        changed("hEnd", None, 1),
        changed("batchRoot", None, 1),
        changed("count", None, 0),
        changed("count", None, 3),
        changed("count", None, 9),
        changed("count", None, R - 1),
        changed("dest", 6, 902),  # padding: ignored
    ]


@pytest.mark.parametrize("case", range(len(_forgeries())))
def test_forged_batch_inputs_fail_alike(case: int) -> None:
    assert_alike(BatchCircuit(8).r1cs, _forgeries()[case])


# --- small circuits -------------------------------------------------------------------------------------


def _negate(values: list[int]) -> list[int]:
    return [-values[0]]


@cache
def gadget_circuit() -> R1CS:
    """Every standard hint, Python hints between them (the compiled loop stops and resumes), constants
    and coefficients other than 1 in the rows, a derived public input."""
    b = Builder("mixed")
    out = b.public("out")
    total = b.public("total")
    x, y, z = b.private_array("xyz", 3)
    bits = gadgets.to_bits(b, x, 16, name="x")
    (neg,) = b.hint("negate", _negate, [y + 3])  # a Python hint, mid-way
    b.enforce(y + 3 + neg, 1, 0, label="negated")
    flag = gadgets.is_zero(b, z - 5)
    sq = b.mul(neg * 7 - 2, x + y, label="square")
    (half,) = b.hint("halve", lambda v: [v[0] * pow(2, -1, R)], [sq])  # a lambda: Python, not picklable
    b.enforce(half * 2, 1, sq, label="halved")
    chosen = gadgets.select(b, flag, sq, half)
    result = b.mul(chosen, bits[3] + 1, label="result")
    b.enforce(result, 1, out, label="out")
    digest = gadgets.poseidon(b, [x, result])
    b.enforce(digest, 1, total, label="total")
    b.derive("total", digest)
    return b.build()


def _gadget_inputs(x: int, y: int, z: int) -> dict[str, int | list[int]]:
    """Inputs whose `out` is right (found from the reference witness of a first run)."""
    r1cs = gadget_circuit()
    try:
        r1cs.witness({"out": 0, "xyz": [x, y, z]})
    except ConstraintFailed as e:
        assert e.label == "mixed/out", e
        return {"out": e.a, "xyz": [x, y, z]}
    return {"out": 0, "xyz": [x, y, z]}


@pytest.mark.parametrize("seed", range(6))
def test_a_small_circuit_with_every_kind_of_hint(seed: int) -> None:
    rng = random.Random(seed)
    x = rng.choice((0, 1, 2**16 - 1, rng.randrange(2**16)))
    y = rng.choice((0, R - 3, rng.randrange(R)))
    z = rng.choice((5, 6, rng.randrange(R)))
    inputs = _gadget_inputs(x, y, z)
    witness = assert_alike(gadget_circuit(), inputs)
    assert isinstance(witness, list)
    with_total = {**inputs, "total": gadget_circuit().public_values(witness)[1]}
    assert assert_alike(gadget_circuit(), with_total) == witness  # a derived input may be given too
    assert_alike(gadget_circuit(), {**with_total, "total": 1})  # ... and fails alike when wrong


def test_a_small_circuit_fails_alike_beyond_its_range() -> None:
    inputs = _gadget_inputs(5, 6, 7)
    assert_alike(gadget_circuit(), {**inputs, "xyz": [2**16, 6, 7]})  # x beyond 16 bits
    assert_alike(gadget_circuit(), {**inputs, "out": 1})


@pytest.mark.parametrize(
    "inputs",
    [
        {"out": 24, "xyz": [2, 3, 4]},
        {"out": 25, "xyz": [2, 3, R - 4]},
        {"xyz": [1, 2, 3]},
        {"out": 6, "xyz": [1, 2, 3], "extra": 1},
        {"out": 6, "xyz": [1, 2]},
        {"out": 6, "xyz": 1},
        {"out": [6], "xyz": [1, 2, 3]},
        {"out": 6, "xyz": [1, -2, 3]},
        {"out": R, "xyz": [1, 2, 3]},
        {"out": True, "xyz": [1, 2, 3]},
    ],
)
def test_bad_inputs_and_failing_constraints_are_refused_alike(inputs: Inputs) -> None:
    assert_alike(_product_circuit(), inputs)


def _text(values: list[int]) -> list[int]:
    return ["1"]  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("compute", "n_out", "message"),
    [
        (lambda v: [pow(v[0], -1, R)], 1, r"hint h/hint failed on \['0'\]: ValueError"),
        (lambda v: [v[0]], 2, "hint h/hint returned 1 values, not 2"),
        (_text, 1, "hint h/hint returned '1', not an int"),
    ],
)
def test_failing_python_hints_are_reported_alike(
    compute: Callable[[list[int]], list[int]], n_out: int, message: str
) -> None:
    b = Builder("h")
    x = b.private("x")
    square = b.mul(x, x)
    out = b.hint("hint", compute, [square], n_out)
    b.enforce(out[0], square, 1)
    outcome = assert_alike(b.build(), {"x": 0})
    assert isinstance(outcome, tuple) and outcome[0] is WitnessError
    assert re.search(message, str(outcome[1])), outcome


def test_an_r1cs_without_steps_or_inputs() -> None:
    b = Builder("bare")
    b.bind(b.public("a"))
    assert assert_alike(b.build(), {"a": 7}) == [1, 7]
    r1cs = R1CS(n_wires=2, n_public=1, n_private=0, constraints=[])
    with pytest.raises(CircuitError, match="no witness steps"):
        r1cs.witness_limbs({})


def test_steps_that_read_a_wire_before_it_is_set_are_checked_in_full() -> None:
    """An R1CS not made by a Builder whose first step reads the second's output: both paths read 0
    there, and the multiplication constraints are checked too (they no longer hold by construction)."""
    one, x = Row((0,), (1,)), Row((1,), (1,))
    early, late = Row((3,), (1,)), Row((2,), (1,))
    r1cs = R1CS(
        n_wires=4,
        n_public=0,
        n_private=1,
        constraints=[Constraint(early, x, late), Constraint(x, x, Row((3,), (1,)))],
        labels=["early", "late"],
        inputs={"x": _Input((1,), False)},
        steps=[_MulStep(2, early, x), _MulStep(3, one, x)],
    )
    program = WitnessProgram(r1cs)
    assert not program.single_assignment and program.n_checked == 2
    assert assert_alike(r1cs, {"x": 0}) == [1, 0, 0, 0]
    failed = assert_alike(r1cs, {"x": 3})
    assert isinstance(failed, tuple) and failed[:4] == (ConstraintFailed, failed[1], 0, "early")


def test_mul_constraints_hold_by_construction_and_only_the_others_are_checked() -> None:
    r1cs = BatchCircuit(8).r1cs
    program = WitnessProgram(r1cs)
    muls = sum(1 for step in r1cs.steps if isinstance(step, _MulStep))
    assert program.single_assignment and program.n_checked == r1cs.n_constraints - muls


# --- derived inputs -------------------------------------------------------------------------------------


def test_derive_is_refused_where_a_step_would_read_the_input_or_it_is_no_scalar_input() -> None:
    b = Builder()
    a, x = b.public("a"), b.private("x")
    arr = b.private_array("arr", 2)
    with pytest.raises(CircuitError, match="'arr' is not a scalar input"):
        b.derive("arr", x)
    with pytest.raises(CircuitError, match="'nothing' is not a scalar input"):
        b.derive("nothing", x)
    b.derive("a", b.mul(x, x))
    with pytest.raises(CircuitError, match="already derived"):
        b.derive("a", x)
    b.mul(a, x)  # a step reads a
    b.enforce(arr[0] + arr[1], 1, 0)
    with pytest.raises(CircuitError, match="a witness step reads the derived input 'a'"):
        b.build()

    b = Builder()
    a, c, x = b.public("a"), b.public("c"), b.private("x")
    b.derive("a", c + x)
    b.derive("c", a + 1)
    b.enforce(a + c, 1, x)
    with pytest.raises(CircuitError, match="the value of 'a' uses the derived input 'c'"):
        b.build()


def test_a_derived_input_left_out_is_computed() -> None:
    b = Builder("d")
    square, x = b.public("square"), b.private("x")
    computed = b.mul(x, x)
    gadgets.assert_equal(b, computed, square)
    b.derive("square", computed)
    r1cs = b.build()
    assert r1cs.derived_inputs == ["square"]
    assert assert_alike(r1cs, {"x": 5}) == [1, 25, 5, 25]
    assert assert_alike(r1cs, {"x": 5, "square": 25}) == [1, 25, 5, 25]
    failed = assert_alike(r1cs, {"x": 5, "square": 24})
    assert isinstance(failed, tuple) and failed[3] == "d/assert_equal"


# --- the program, the prover, the cache -----------------------------------------------------------------


def test_an_r1cs_pickles_without_its_program_and_makes_it_again() -> None:
    r1cs = BatchCircuit(8).r1cs
    inputs = BatchCircuit(8).inputs(MIXED)
    expected = r1cs.witness(inputs, compiled=True)
    copy = pickle.loads(pickle.dumps(r1cs))
    assert copy._program is None
    assert copy.witness(inputs, compiled=True) == expected


@pytest.fixture(scope="module")
def small_key() -> ProvingKey:
    return setup(small_circuit(), seed=b"test_witness_compiled", development=True)


def test_the_prover_takes_limbs_and_refuses_malformed_ones(small_key: ProvingKey) -> None:
    pk = small_key
    witness = small_witness(3, 4)
    limbs = field.limbs(witness)
    public = small_circuit().public_values(witness)
    assert verify(pk.vk, public, prove(pk, limbs))
    bad_wire0 = limbs.copy()
    bad_wire0[0, 0] = 2
    over = limbs.copy()
    over[-1] = field.limbs([R])[0]
    top = limbs.copy()
    top[-1, 3] = np.uint64(2**64 - 1)
    for array, message in [
        (limbs[:-1], "the witness has 7 wires; this key's circuit has 8"),
        (limbs.astype(np.int64), r"a witness array holds \(wires, 4\) uint64 limbs, not int64 \(8, 4\)"),
        (limbs[:, :3], r"not uint64 \(8, 3\)"),
        (bad_wire0, "wire 0 of a witness is the constant 1, not 2"),
        (over, r"field element in \[0, r\)"),
        (top, r"field element in \[0, r\)"),
    ]:
        with pytest.raises(ProverError, match=message):
            prove(pk, array)


def test_the_kernels_load_from_the_disk_cache_in_a_new_process() -> None:
    """A new process computes a compiled witness without compiling: its kernels come from the cache."""
    small_circuit().witness_limbs(_small_inputs())  # fills the cache if this process compiled anything
    script = (
        "from numba.core.registry import CPUDispatcher\n"
        "from tests.snarkjs import small_circuit\n"
        "from tests.test_witness_compiled import _small_inputs\n"
        "small_circuit().witness_limbs(_small_inputs())\n"
        "import gc\n"
        "misses = [d.py_func.__qualname__ for d in gc.get_objects() if isinstance(d, CPUDispatcher)\n"
        "          and any(d.stats.cache_misses.values())]\n"
        "print('MISSES', misses)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
        env={**os.environ},
    ).stdout
    assert "MISSES []" in out, out


def _small_inputs() -> dict[str, int]:
    a, c, y = 3, 4, 1000
    t = a * c
    u = t * (a + 3)
    return {"x": (2 * y + 5 - u) % R, "y": y, "z": t * (7 * c - 1) % R, "a": a, "c": c}
