"""proofs.r1cs.builder: linear arithmetic folds, mul makes constraints, wires are numbered as snarkjs
expects, unbound public inputs are refused, witnesses are computed and checked with clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proofs.field import R
from proofs.r1cs import LC, R1CS, Builder, CircuitError, ConstraintFailed, WitnessError, gadgets, weighted_sum

field = st.integers(min_value=0, max_value=R - 1)


def _product_circuit() -> R1CS:
    """out = x·y·z, with out public."""
    b = Builder("product")
    out = b.public("out")
    x, y, z = b.private_array("xyz", 3)
    with b.scope("multiply"):
        xy = b.mul(x, y, label="x·y")
        b.enforce(xy, z, out, label="x·y·z = out")
    return b.build()


def test_linear_arithmetic_folds_constants_and_makes_no_constraint() -> None:
    b = Builder()
    x = b.private("x")
    assert (x - x).constant_value() == 0
    assert (3 * x - x * 3 + 7).constant_value() == 7
    assert (-LC.constant(1)).constant_value() == R - 1
    assert (x + (R - 1) * x).terms == {}  # coefficients are reduced mod R
    (var,) = x.terms
    assert (2 - x).terms == {var: R - 1, 0: 2}
    assert b.mul(5, 7).constant_value() == 35
    assert b.mul(x, 0).terms == {}
    assert b.mul(LC.constant(3), x + 1).constant_value() is None
    assert weighted_sum([2, 3], [x, 4]).constant_value() is None
    b.enforce(x, 1, x)  # the only constraint
    assert b.build().n_constraints == 1


def test_two_lcs_multiply_only_through_the_builder() -> None:
    b = Builder()
    x, y = b.private("x"), b.private("y")
    with pytest.raises(TypeError, match=r"Builder\.mul"):
        _ = x * y  # type: ignore[operator]


def test_mul_of_two_variables_adds_one_constraint_and_one_wire() -> None:
    b = Builder()
    x, y = b.private("x"), b.private("y")
    b.mul(x + 1, y)
    r1cs = b.build()
    assert (r1cs.n_constraints, r1cs.n_wires) == (1, 4)
    assert r1cs.witness({"x": 4, "y": 6})[3] == 30


def test_wires_are_numbered_one_public_private_internal_whatever_the_declaration_order() -> None:
    b = Builder("order")
    p = b.private("p")
    early = b.mul(p, p)
    a = b.public("a")
    q = b.private_array("q", 2)
    c = b.public_array("c", 2)
    b.enforce(early, a + c[0] + c[1], q[0] + q[1])
    r1cs = b.build()
    assert (r1cs.n_public, r1cs.n_private, r1cs.n_wires) == (3, 3, 8)
    assert r1cs.wire_labels == ("one", "a", "c[0]", "c[1]", "p", "q[0]", "q[1]", "order/mul")
    assert r1cs.input_names == ["a", "c", "p", "q"]
    w = r1cs.witness({"p": 2, "a": 1, "c": [1, 1], "q": [5, 7]})
    assert w == [1, 1, 1, 1, 2, 5, 7, 4]
    assert r1cs.public_values(w) == [1, 1, 1]


def test_internal_wire_comes_after_all_inputs() -> None:
    b = Builder("order")
    p = b.private("p")
    sq = b.mul(p, p)
    a = b.public("a")
    b.enforce(sq, 1, a)
    r1cs = b.build()
    assert r1cs.wire_labels == ("one", "a", "p", "order/mul")
    assert r1cs.witness({"p": 3, "a": 9}) == [1, 9, 3, 9]


def test_a_public_input_in_no_constraint_is_refused_by_name_and_bind_binds_it() -> None:
    b = Builder("batch")
    chain_id = b.public("chainId")
    b.public("batchNumber")
    x = b.private("x")
    b.mul(x, x)
    with pytest.raises(CircuitError, match="chainId, batchNumber appear in no constraint"):
        b.build()

    b = Builder("batch")
    chain_id = b.public("chainId")
    b.bind(chain_id)
    r1cs = b.build()
    assert r1cs.labels == ("batch/bind(chainId)",)
    assert r1cs.witness({"chainId": 901}) == [1, 901]


def test_a_public_input_whose_terms_cancel_is_not_bound() -> None:
    b = Builder()
    a = b.public("a")
    x = b.private("x")
    b.enforce(x + a - a, 1, 5)
    with pytest.raises(CircuitError, match="public inputs a appear in no constraint"):
        b.build()


def test_bind_refuses_a_constant_and_a_built_builder_refuses_more() -> None:
    b = Builder()
    with pytest.raises(CircuitError, match="constant"):
        b.bind(LC.constant(3))
    b.build()
    with pytest.raises(CircuitError, match="already been built"):
        b.private("late")


def test_input_names_must_be_unique() -> None:
    b = Builder()
    b.public("x")
    with pytest.raises(CircuitError, match="'x'"):
        b.private_array("x", 2)


def test_a_constant_constraint_is_checked_at_build_time() -> None:
    b = Builder("c")
    b.enforce(2, 3, 6)  # true: dropped
    with b.scope("s"), pytest.raises(CircuitError, match=r"c/s/never: the constant constraint 2·3 = 7"):
        b.enforce(2, 3, 7, label="never")
    gadgets.assert_equal(b, 4, 4)
    assert b.build().n_constraints == 0


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"xyz": [1, 2, 3]}, "missing input 'out'"),
        ({"out": 6, "xyz": [1, 2, 3], "extra": 1}, "unknown input 'extra'; the inputs are out, xyz"),
        ({"out": 6, "xyz": [1, 2]}, "input 'xyz' must have 3 values, got 2"),
        ({"out": 6, "xyz": 1}, "input 'xyz' is an array of 3 values"),
        ({"out": [6], "xyz": [1, 2, 3]}, "input 'out' must be an int, not list"),
        ({"out": 6, "xyz": [1, -2, 3]}, r"input 'xyz\[1\]' = -2 is not in \[0, R\)"),
        ({"out": R, "xyz": [1, 2, 3]}, "input 'out' = .* is not in"),
        ({"out": True, "xyz": [1, 2, 3]}, "input 'out' must be an int, not bool"),
    ],
)
def test_bad_inputs_are_refused_with_their_name(inputs: dict[str, int | list[int]], message: str) -> None:
    with pytest.raises(WitnessError, match=message):
        _product_circuit().witness(inputs)


def test_a_failing_constraint_names_its_label_index_and_values() -> None:
    r1cs = _product_circuit()
    assert r1cs.witness({"out": 24, "xyz": [2, 3, 4]})[-1] == 6
    with pytest.raises(ConstraintFailed) as failed:
        r1cs.witness({"out": 25, "xyz": [2, 3, R - 4]})
    e = failed.value
    assert (e.index, e.label, e.a, e.b, e.c) == (1, "product/multiply/x·y·z = out", 6, R - 4, 25)
    assert str(e) == "constraint 1 (product/multiply/x·y·z = out) fails: A = 6, B = -4, C = 25, but A·B = -24"


def test_check_refuses_a_tampered_or_malformed_witness() -> None:
    r1cs = _product_circuit()
    w = r1cs.witness({"out": 24, "xyz": [2, 3, 4]})
    r1cs.check(w)
    with pytest.raises(ConstraintFailed, match="constraint 0 "):
        r1cs.check([*w[:-1], 7])
    with pytest.raises(WitnessError, match="wire 0 must hold 1"):
        r1cs.check([0, *w[1:]])
    with pytest.raises(WitnessError, match="4 values; the R1CS has 6 wires"):
        r1cs.check(w[:4])
    with pytest.raises(WitnessError, match="wire 2 holds"):
        r1cs.check([1, 24, 2 + R, 3, 4, 6])


def test_hints_compute_unconstrained_wires_and_report_their_failures() -> None:
    b = Builder("h")
    x = b.private("x")
    with b.scope("inverse"):
        (inv,) = b.hint("x^-1", lambda v: [pow(v[0], -1, R)], [x])
        b.enforce(x, inv, 1)
    r1cs = b.build()
    w = r1cs.witness({"x": 3})
    assert w[2] * 3 % R == 1
    with pytest.raises(WitnessError, match=r"hint h/inverse/x\^-1 failed on \['0'\]: ValueError"):
        r1cs.witness({"x": 0})


def test_a_hint_returning_the_wrong_number_of_values_is_reported() -> None:
    b = Builder("h")
    x = b.private("x")
    b.hint("pair", lambda v: [v[0]], [x], n_out=2)
    b.enforce(x, 1, x)
    with pytest.raises(WitnessError, match="hint h/pair returned 1 values, not 2"):
        b.build().witness({"x": 1})


def test_hint_outputs_are_reduced_mod_r() -> None:
    b = Builder()
    x = b.private("x")
    (neg,) = b.hint("negate", lambda v: [-v[0]], [x])
    b.enforce(x + neg, 1, 0)
    assert b.build().witness({"x": 5})[-1] == R - 5


def test_an_r1cs_without_witness_steps_says_so() -> None:
    r1cs = R1CS(n_wires=2, n_public=1, n_private=0, constraints=_product_circuit().constraints[:0])
    with pytest.raises(CircuitError, match="no witness steps"):
        r1cs.witness({})


@given(field, field, field)
def test_witness_satisfies_the_product_circuit(x: int, y: int, z: int) -> None:
    w = _product_circuit().witness({"out": x * y * z % R, "xyz": [x, y, z]})
    assert w[-1] == x * y % R


def test_scope_labels_nest_and_are_restored_after_an_exception() -> None:
    b = Builder("root")
    x = b.private("x")
    with b.scope("a"):
        with pytest.raises(RuntimeError), b.scope("b"):
            raise RuntimeError
        b.mul(x, x, label="sq")
    b.mul(x, x)
    assert b.build().labels == ("root/a/sq", "root")
