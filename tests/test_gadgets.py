"""proofs.r1cs.gadgets: honest witnesses give the reference values (proofs.poseidon, proofs.merkle);
a dishonest one (a tampered wire, an out-of-range value) fails a constraint labelled with the gadget."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import merkle
from proofs.field import R
from proofs.poseidon import params, poseidon
from proofs.r1cs import LC, R1CS, Builder, CircuitError, ConstraintFailed, Value, gadgets, weighted_sum

field = st.integers(min_value=0, max_value=R - 1)


def _wires(r1cs: R1CS, prefix: str) -> list[int]:
    """The internal wires created under a label prefix, in creation order."""
    found = [i for i, label in enumerate(r1cs.wire_labels) if label.startswith(prefix)]
    assert found, f"no wire under {prefix}"
    return found


def _fails_in(r1cs: R1CS, witness: list[int], label: str) -> ConstraintFailed:
    with pytest.raises(ConstraintFailed) as failed:
        r1cs.check(witness)
    assert failed.value.label.startswith(label), failed.value.label
    return failed.value


def _circuit(gadget: Callable[[Builder, list[LC]], Value], n_inputs: int) -> R1CS:
    """Private inputs x[0..n), public `out` = gadget(x), checked by assert_equal under "check"."""
    b = Builder("g")
    out = b.public("out")
    xs = b.private_array("x", n_inputs)
    result = gadget(b, xs)
    with b.scope("check"):
        gadgets.assert_equal(b, result, out)
    return b.build()


def _count(gadget: Callable[[Builder, list[LC]], object], n_inputs: int) -> int:
    b = Builder()
    gadget(b, b.private_array("x", n_inputs))
    return b.build().n_constraints


# assert_equal, assert_boolean


def test_assert_equal_and_assert_boolean() -> None:
    b = Builder("g")
    x, y = b.private_array("x", 2)
    gadgets.assert_equal(b, x, y + 1)
    gadgets.assert_boolean(b, y)
    r1cs = b.build()
    assert r1cs.n_constraints == 2
    r1cs.witness({"x": [1, 0]})
    r1cs.witness({"x": [2, 1]})
    with pytest.raises(ConstraintFailed, match=r"\(g/assert_equal\)"):
        r1cs.witness({"x": [1, 1]})
    with pytest.raises(ConstraintFailed, match=r"\(g/assert_boolean\)"):
        r1cs.witness({"x": [3, 2]})


# to_bits


@cache
def _bits_circuit(n: int) -> R1CS:
    return _circuit(lambda b, xs: weighted_sum([1] * n, gadgets.to_bits(b, xs[0], n, name="x")), 1)


@given(
    st.integers(min_value=1, max_value=253).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 2**n - 1)))
)
@settings(max_examples=30, deadline=None)
def test_to_bits_decomposes_every_value_below_2_to_the_n(case: tuple[int, int]) -> None:
    n, x = case
    r1cs = _bits_circuit(n)
    w = r1cs.witness({"x": [x], "out": bin(x).count("1")})
    assert [w[i] for i in _wires(r1cs, f"g/to_bits(x,{n})/bits")] == [x >> i & 1 for i in range(n)]


@given(st.integers(min_value=2**16, max_value=R - 1))
@settings(max_examples=20)
def test_to_bits_refuses_a_value_of_2_to_the_n_or_more(x: int) -> None:
    r1cs = _bits_circuit(16)
    with pytest.raises(ConstraintFailed, match=r"g/to_bits\(x,16\)/sum of bits"):
        r1cs.witness({"x": [x], "out": bin(x % 2**16).count("1")})


def test_to_bits_refuses_a_non_boolean_bit() -> None:
    r1cs = _bits_circuit(8)
    w = r1cs.witness({"x": [2], "out": 1})
    bits = _wires(r1cs, "g/to_bits(x,8)/bits")
    w[bits[0]], w[bits[1]] = 2, 0  # 2·1 + 0·2 still sums to x
    assert _fails_in(r1cs, w, "g/to_bits(x,8)/bit 0").a == 2


def test_to_bits_counts_limits_and_constants() -> None:
    assert _count(lambda b, xs: gadgets.to_bits(b, xs[0], 128), 1) == 129
    b = Builder()
    assert [bit.constant_value() for bit in gadgets.to_bits(b, 5, 4)] == [1, 0, 1, 0]
    with pytest.raises(CircuitError, match="does not fit in 2 bits"):
        gadgets.to_bits(b, 5, 2)
    for n in (0, 254):
        with pytest.raises(CircuitError, match="1 to 253 bits"):
            gadgets.to_bits(b, b.private(f"x{n}"), n)


# is_zero, select


@cache
def _is_zero_circuit() -> R1CS:
    return _circuit(lambda b, xs: gadgets.is_zero(b, xs[0]), 1)


@given(st.one_of(st.just(0), field))
def test_is_zero(x: int) -> None:
    _is_zero_circuit().witness({"x": [x], "out": int(x == 0)})


@given(st.integers(min_value=1, max_value=R - 1))
def test_is_zero_cannot_claim_that_a_nonzero_value_is_zero(x: int) -> None:
    r1cs = _is_zero_circuit()
    w = r1cs.witness({"x": [x], "out": 0})
    inverse, product = _wires(r1cs, "g/is_zero/")  # x·inverse = product, out = 1 - product
    w[inverse] = w[product] = 0  # now out = 1
    _fails_in(r1cs, w, "g/is_zero/x·out = 0")


def test_is_zero_cannot_claim_that_zero_is_nonzero() -> None:
    r1cs = _is_zero_circuit()
    w = r1cs.witness({"x": [0], "out": 1})
    _inverse, product = _wires(r1cs, "g/is_zero/")
    w[product] = 1  # out = 0
    _fails_in(r1cs, w, "g/is_zero/x·inverse")


def test_is_zero_and_select_fold_constants() -> None:
    b = Builder()
    x, y = b.private("x"), b.private("y")
    assert gadgets.is_zero(b, 0).constant_value() == 1
    assert gadgets.is_zero(b, LC.constant(7)).constant_value() == 0
    assert gadgets.select(b, 1, x, y).terms == x.terms
    assert gadgets.select(b, 0, 3, 4).constant_value() == 4
    assert gadgets.select(b, x, 5, 5).constant_value() == 5
    assert b.build().n_constraints == 0
    assert _count(lambda b, xs: gadgets.is_zero(b, xs[0]), 1) == 2
    assert _count(lambda b, xs: gadgets.select(b, xs[0], xs[1], xs[2]), 3) == 1


@cache
def _select_circuit() -> R1CS:
    return _circuit(lambda b, xs: gadgets.select(b, xs[0], xs[1], xs[2]), 3)


@given(st.sampled_from([0, 1]), field, field)
def test_select(cond: int, a: int, b: int) -> None:
    r1cs = _select_circuit()
    w = r1cs.witness({"x": [cond, a, b], "out": a if cond else b})
    (product,) = _wires(r1cs, "g/select/")
    w[product] = (w[product] + 1) % R
    _fails_in(r1cs, w, "g/select")


# Poseidon


@cache
def _poseidon_circuit(n: int) -> R1CS:
    return _circuit(gadgets.poseidon, n)


def test_poseidon_constraint_counts_are_circomlibs() -> None:
    assert _count(gadgets.poseidon, 2) == 240
    for n in range(1, 7):
        p = params(n + 1)
        # 3 constraints per S-box; round 0's S-box on the constant lane 0 folds away
        assert _count(gadgets.poseidon, n) == 3 * (p.full_rounds * p.t - 1 + p.partial_rounds)


def test_poseidon_known_vector() -> None:
    out = 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A
    _poseidon_circuit(2).witness({"x": [1, 2], "out": out})
    with pytest.raises(ConstraintFailed, match=r"g/check/assert_equal"):
        _poseidon_circuit(2).witness({"x": [2, 1], "out": out})


@given(st.integers(min_value=1, max_value=6).flatmap(lambda n: st.lists(field, min_size=n, max_size=n)))
@settings(max_examples=30, deadline=None)
def test_poseidon_matches_the_reference(xs: list[int]) -> None:
    _poseidon_circuit(len(xs)).witness({"x": xs, "out": poseidon(xs)})


def test_poseidon_folds_constant_inputs() -> None:
    b = Builder()
    assert gadgets.poseidon(b, [1, 2]).constant_value() == poseidon([1, 2])
    assert b.build().n_constraints == 0
    r1cs = _circuit(lambda b, xs: gadgets.poseidon(b, [7, xs[0], 9]), 1)
    r1cs.witness({"x": [8], "out": poseidon([7, 8, 9])})


def test_a_tampered_poseidon_wire_fails_in_the_poseidon() -> None:
    r1cs = _poseidon_circuit(2)
    w = r1cs.witness({"x": [1, 2], "out": poseidon([1, 2])})
    last_sbox = _wires(r1cs, "g/poseidon(2)/")[-1]
    w[last_sbox] = (w[last_sbox] + 1) % R
    last_round = params(3).full_rounds + params(3).partial_rounds - 1
    _fails_in(r1cs, w, f"g/poseidon(2)/round {last_round} lane 2 x^5")


# Merkle trees and the rolling hash


@given(st.sampled_from([8, 16]).flatmap(lambda n: st.lists(field, min_size=n, max_size=n)))
@settings(max_examples=5, deadline=None)
def test_merkle_root_matches_the_batch_tree(leaves: list[int]) -> None:
    r1cs = _merkle_circuit(len(leaves))
    r1cs.witness({"x": leaves, "out": merkle.batch_root(leaves, len(leaves))})


@cache
def _merkle_circuit(n: int) -> R1CS:
    return _circuit(gadgets.merkle_root, n)


def test_merkle_root_refuses_a_wrong_root_and_a_tampered_node() -> None:
    leaves = list(range(100, 108))
    r1cs = _merkle_circuit(8)
    wrong = merkle.batch_root(leaves[::-1], 8)
    with pytest.raises(ConstraintFailed, match="g/check/assert_equal"):
        r1cs.witness({"x": leaves, "out": wrong})
    w = r1cs.witness({"x": leaves, "out": merkle.batch_root(leaves, 8)})
    node = _wires(r1cs, "g/merkle_root(8)/level 1/")[0]
    w[node] = (w[node] + 1) % R
    _fails_in(r1cs, w, "g/merkle_root(8)/level 1/poseidon(2)")


def test_merkle_root_counts_and_shapes() -> None:
    assert _count(gadgets.merkle_root, 16) == 15 * 240
    b = Builder()
    x = b.private("x")
    assert gadgets.merkle_root(b, [x]).terms == x.terms
    for n in (0, 3, 12):
        with pytest.raises(CircuitError, match=f"power-of-two number of leaves, not {n}"):
            gadgets.merkle_root(b, [x] * n)


@cache
def _path_circuit(depth: int) -> R1CS:
    """x = [leaf, bit 0..depth-1, sibling 0..depth-1]."""
    return _circuit(
        lambda b, xs: gadgets.merkle_path_root(b, xs[0], xs[1 : 1 + depth], xs[1 + depth :]),
        1 + 2 * depth,
    )


def test_merkle_path_root_matches_the_batch_tree_at_every_index() -> None:
    leaves = [1000 + i for i in range(8)]
    tree = merkle.PoseidonTree(leaves, 8)
    r1cs = _path_circuit(3)
    assert r1cs.n_constraints == 3 * (240 + 2) + 1
    for index in range(8):
        bits = [index >> h & 1 for h in range(3)]
        r1cs.witness({"x": [leaves[index], *bits, *tree.proof(index)], "out": tree.root})
        with pytest.raises(ConstraintFailed, match="g/check/assert_equal"):  # the wrong position
            r1cs.witness({"x": [leaves[index], *bits, *tree.proof(index ^ 1)], "out": tree.root})


def test_merkle_path_root_refuses_a_non_boolean_index_bit() -> None:
    r1cs = _path_circuit(2)
    with pytest.raises(ConstraintFailed, match=r"g/merkle_path_root\(2\)/level 1/assert_boolean"):
        r1cs.witness({"x": [5, 0, 2, 6, 7], "out": 0})
    with pytest.raises(CircuitError, match="2 index bits for 1 siblings"):
        gadgets.merkle_path_root(Builder(), 1, [0, 1], [2])


def _rolling(h: int, leaves: Sequence[int], active: Sequence[int]) -> int:
    for leaf, flag in zip(leaves, active, strict=True):
        if flag:
            h = poseidon([h, leaf])
    return h


@cache
def _rolling_circuit(n: int) -> R1CS:
    """x = [h_start, leaf 0..n-1, active 0..n-1]."""
    return _circuit(lambda b, xs: gadgets.rolling_hash(b, xs[0], xs[1 : 1 + n], xs[1 + n :]), 1 + 2 * n)


@given(field, st.lists(st.tuples(field, st.sampled_from([0, 1])), min_size=4, max_size=4))
@settings(max_examples=10, deadline=None)
def test_rolling_hash_matches_the_reference(h_start: int, steps: list[tuple[int, int]]) -> None:
    leaves, active = [s[0] for s in steps], [s[1] for s in steps]
    r1cs = _rolling_circuit(4)
    r1cs.witness({"x": [h_start, *leaves, *active], "out": _rolling(h_start, leaves, active)})


def test_rolling_hash_refuses_a_non_boolean_flag_and_skipped_leaves() -> None:
    r1cs = _rolling_circuit(4)
    assert r1cs.n_constraints == 4 * (240 + 2) + 1
    leaves = [11, 12, 13, 14]
    with pytest.raises(ConstraintFailed, match=r"g/rolling_hash\(4\)/leaf 2/assert_boolean"):
        r1cs.witness({"x": [0, *leaves, 1, 1, 2, 0], "out": 0})
    with pytest.raises(ConstraintFailed, match="g/check/assert_equal"):
        r1cs.witness({"x": [0, *leaves, 1, 0, 1, 0], "out": _rolling(0, leaves, [1, 1, 1, 0])})
    w = r1cs.witness({"x": [0, *leaves, 1, 1, 0, 0], "out": _rolling(0, leaves, [1, 1, 0, 0])})
    (chosen,) = _wires(r1cs, "g/rolling_hash(4)/leaf 3/select/")
    w[chosen] = 1  # claim the inactive leaf 3 was hashed
    _fails_in(r1cs, w, "g/rolling_hash(4)/leaf 3/select")


def test_a_built_circuit_pickles_for_worker_processes() -> None:
    r1cs = pickle.loads(
        pickle.dumps(_circuit(lambda b, xs: gadgets.to_bits(b, gadgets.is_zero(b, xs[0]), 2)[0], 1))
    )
    r1cs.witness({"x": [0], "out": 1})
    with pytest.raises(ConstraintFailed, match="g/check/assert_equal"):
        r1cs.witness({"x": [5], "out": 1})
