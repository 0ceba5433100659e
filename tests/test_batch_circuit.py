"""The batch circuit: its witnesses state what Python computes, it refuses bad batches with the reason,
and forged inputs that skip the Python checks fail the constraint that guards them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import merkle
from proofs.circuits.batch import Batch, BatchCircuit, BatchError, PublicInputs, ValueSlot
from proofs.field import R
from proofs.message import LeafPreimage, roll
from proofs.r1cs import ConstraintFailed

ASSET_X = 0xA11CE << 200 | 0x1234
ASSET_Y = 0xB0B << 230 | 0x5678
CIRCUIT = BatchCircuit(8)


def batch(*messages: LeafPreimage, h_start: int = 0) -> Batch:
    return Batch(chain_id=901, batch_number=4, h_start=h_start, messages=messages)


def plain(dest: int = 902, body: int = 1) -> LeafPreimage:
    return LeafPreimage(dest, 0, 0, body)


def valued(dest: int, asset: int, amount: int, body: int = 2) -> LeafPreimage:
    return LeafPreimage(dest, asset, amount, body)


MIXED = batch(
    plain(), valued(902, ASSET_X, 10**21), valued(900, ASSET_X, 5), valued(902, ASSET_X, 7), plain(900)
)


def test_public_inputs_are_what_the_messages_give() -> None:
    public = CIRCUIT.public_inputs(MIXED)
    h = MIXED.h_start
    for m in MIXED.messages:
        h = roll(h, m.leaf())
    assert (public.count, public.h_end) == (5, h)
    assert public.batch_root == merkle.batch_root([m.leaf() for m in MIXED.messages], 8)
    assert public.slots == (
        ValueSlot(902, ASSET_X, 10**21 + 7),
        ValueSlot(900, ASSET_X, 5),
        ValueSlot(),
        ValueSlot(),
    )


@pytest.mark.parametrize("capacity", [8, 16, 64])
def test_witness_states_the_public_inputs(capacity: int) -> None:
    circuit = BatchCircuit(capacity)
    messages = [
        valued(900 + i % 2, ASSET_Y if i // 2 % 2 else ASSET_X, i + 1, body=i) for i in range(capacity)
    ]
    full = Batch(901, 7, 12345, tuple(messages))
    for b in (
        full,
        replace(full, messages=tuple(messages[:1])),
        replace(full, messages=tuple(messages[:-1])),
    ):
        witness = circuit.witness(b)
        assert circuit.r1cs.public_values(witness) == circuit.public_inputs(b).values()


@pytest.mark.parametrize("capacity", [8, 16, 64])
def test_constraint_counts_fit_the_proving_domain(capacity: int) -> None:
    """snarkjs needs 2^power >= constraints + public inputs + 1: capacity 64 must fit 2^16."""
    r1cs = BatchCircuit(capacity).r1cs
    assert r1cs.n_public == 6 + 4 * 4
    assert r1cs.n_constraints + r1cs.n_public + 1 <= {8: 2**13, 16: 2**14, 64: 2**16}[capacity]


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([900, 902, 903]),
            st.sampled_from([0, ASSET_X, ASSET_Y]),
            st.integers(1, 2**128 - 1),
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, R - 1),
)
def test_any_batch_within_the_slots_proves(rows: list[tuple[int, int, int]], h_start: int) -> None:
    messages = [LeafPreimage(d, a, amount if a else 0, i) for i, (d, a, amount) in enumerate(rows)]
    b = Batch(901, 1, h_start, tuple(messages))
    if len({(m.dest_chain_id, m.asset_id) for m in messages if m.amount}) > 4:
        with pytest.raises(BatchError, match="slots"):
            CIRCUIT.witness(b)
        return
    witness = CIRCUIT.witness(b)
    assert CIRCUIT.r1cs.public_values(witness) == CIRCUIT.public_inputs(b).values()


# --- bad batches: refused with the reason --------------------------------------------------------


def test_more_messages_than_capacity() -> None:
    with pytest.raises(BatchError, match="the batch has 9 messages; the circuit's capacity is 8"):
        CIRCUIT.witness(batch(*[plain(body=i) for i in range(9)]))


def test_empty_batch() -> None:
    with pytest.raises(BatchError, match="at least one message"):
        CIRCUIT.witness(batch())


def test_amount_of_2_128_or_more() -> None:
    with pytest.raises(ValueError, match=r"amount must be an integer in \[0, 2\^128\)"):
        valued(902, ASSET_X, 2**128)


def test_asset_with_no_slot() -> None:
    public = CIRCUIT.public_inputs(MIXED)
    missing = replace(public, slots=(public.slots[0], ValueSlot(), ValueSlot(), ValueSlot()))
    with pytest.raises(BatchError, match=r"message 2 sends asset 0x.* to chain 900: no value slot has"):
        CIRCUIT.witness(MIXED, missing)


def test_too_many_destination_asset_pairs() -> None:
    pairs = [valued(dest, asset, 1) for dest in (900, 902, 903) for asset in (ASSET_X, ASSET_Y)]
    with pytest.raises(BatchError, match=r"value to 6 \(destination, asset\) pairs; the circuit has 4 slots"):
        CIRCUIT.witness(batch(*pairs))


def test_wrong_h_start() -> None:
    on_chain = CIRCUIT.public_inputs(MIXED)  # h_end as the Outbox has it
    with pytest.raises(
        BatchError, match=r"h_end: .* the messages give .*is h_start the previous batch's h_end"
    ):
        CIRCUIT.witness(replace(MIXED, h_start=1), replace(on_chain, h_start=1))


def test_wrong_slot_amount() -> None:
    public = CIRCUIT.public_inputs(MIXED)
    inflated = replace(
        public, slots=(replace(public.slots[0], amount=public.slots[0].amount + 1), *public.slots[1:])
    )
    with pytest.raises(
        BatchError,
        match=r"value slot \(chain 902, .*\) states .*; the messages send 10{20}7 \(in the first",
    ):
        CIRCUIT.witness(MIXED, inflated)


# --- forged inputs, past the Python checks: the constraints catch them ----------------------------


def forged(change: dict[str, list[int] | int]) -> dict[str, int | list[int]]:
    inputs = CIRCUIT.inputs(MIXED)
    for name, value in change.items():
        inputs[name] = value
    return inputs


def fails_in(inputs: dict[str, int | list[int]], label: str) -> None:
    with pytest.raises(ConstraintFailed) as failure:
        CIRCUIT.r1cs.witness(inputs)
    assert label in failure.value.label, failure.value.label


def test_forged_amount_beyond_128_bits() -> None:
    inputs = CIRCUIT.inputs(MIXED)
    amounts = list(inputs["amount"])  # type: ignore[arg-type]
    amounts[1] += 2**128
    fails_in(forged({"amount": amounts}), "batch(8,4)/message[1]/to_bits(amount,128)/sum of bits")


def test_forged_slot_choice() -> None:
    inputs = CIRCUIT.inputs(MIXED)
    select = list(inputs["slotSelect"])  # type: ignore[arg-type]
    select[1 * 4 + 0], select[1 * 4 + 1] = 0, 1  # message 1 (to 902) claims the slot of chain 900
    fails_in(forged({"slotSelect": select}), "message[1]/slot/slot 1 matches")


def test_forged_missing_slot() -> None:
    inputs = CIRCUIT.inputs(MIXED)
    select = list(inputs["slotSelect"])  # type: ignore[arg-type]
    select[2 * 4 + 1] = 0  # message 2 carries value but sits in no slot
    fails_in(forged({"slotSelect": select}), "message[2]/slot/assert_equal")


def test_forged_slot_amount() -> None:
    inputs = CIRCUIT.inputs(MIXED)
    amounts = list(inputs["slotAmount"])  # type: ignore[arg-type]
    amounts[0] -= 1
    fails_in(forged({"slotAmount": amounts}), "value slots")


@pytest.mark.parametrize(
    ("name", "label"), [("hStart", "h_end"), ("hEnd", "h_end"), ("batchRoot", "batch_root")]
)
def test_forged_hashes(name: str, label: str) -> None:
    inputs = CIRCUIT.inputs(MIXED)
    fails_in(forged({name: (int(inputs[name]) + 1) % R}), f"batch(8,4)/{label}")  # type: ignore[arg-type]


def test_forged_count() -> None:
    fails_in(forged({"count": 4}), "h_end")  # one message fewer: h_end (and the root) no longer match
    fails_in(forged({"count": 0}), "active/assert_equal")
    with pytest.raises(ConstraintFailed):
        CIRCUIT.r1cs.witness(forged({"count": 9}))


def test_padding_after_count_carries_nothing() -> None:
    """Messages past `count` are padding: their values are ignored, their leaves are PADDING_LEAF."""
    inputs = CIRCUIT.inputs(MIXED)
    for name, value in (
        ("dest", 902),
        ("assetHi", ASSET_X >> 128),
        ("assetLo", ASSET_X % 2**128),
        ("amount", 99),
    ):
        column = list(inputs[name])  # type: ignore[arg-type]
        column[6] = value
        inputs[name] = column
    witness = CIRCUIT.r1cs.witness(inputs)
    assert CIRCUIT.r1cs.public_values(witness) == CIRCUIT.public_inputs(MIXED).values()


def test_public_inputs_order() -> None:
    public = PublicInputs(1, 2, 3, 4, 5, 6, (ValueSlot(7, 2**128 + 8, 9), ValueSlot(10, 11, 12)))
    assert public.values() == [1, 2, 3, 4, 5, 6, 7, 10, 1, 0, 8, 11, 9, 12]


_FIELD = st.integers(0, R - 1)
_SLOT = st.builds(ValueSlot, _FIELD, st.integers(0, (1 << 256) - 1), st.integers(0, (1 << 128) - 1))


@given(
    st.builds(
        PublicInputs,
        _FIELD,
        _FIELD,
        _FIELD,
        _FIELD,
        _FIELD,
        _FIELD,
        st.lists(_SLOT, min_size=1, max_size=6).map(tuple),
    )
)
def test_public_inputs_from_values_inverts_values(public: PublicInputs) -> None:
    values = public.values()
    assert PublicInputs.from_values(values) == public
    assert PublicInputs.from_values(values, slots=len(public.slots)) == public
    assert PublicInputs.from_values(values).values() == values


def test_public_inputs_from_values_reads_the_circuits_order() -> None:
    public = PublicInputs.from_values([1, 2, 3, 4, 5, 6, 7, 10, 1, 0, 8, 11, 9, 12])
    assert public == PublicInputs(1, 2, 3, 4, 5, 6, (ValueSlot(7, 2**128 + 8, 9), ValueSlot(10, 11, 12)))
    assert PublicInputs.from_values(CIRCUIT.public_inputs(MIXED).values()) == CIRCUIT.public_inputs(MIXED)


@pytest.mark.parametrize(
    ("length", "slots", "message"),
    [
        (21, None, r"21 public inputs given; a batch proof states 6 \+ 4 per value slot"),
        (6, None, r"6 public inputs given; a batch proof states 6 \+ 4 per value slot \(at least one\)"),
        (0, None, "0 public inputs given"),
        (26, 4, "26 public inputs given; a batch proof with 4 value slots states 22: chainId, "),
        (22, 0, "at least one value slot, not 0"),
    ],
)
def test_public_inputs_from_values_refuses_a_wrong_length(
    length: int, slots: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PublicInputs.from_values(list(range(length)), slots)


def test_public_inputs_from_values_refuses_an_asset_half_over_128_bits() -> None:
    values = CIRCUIT.public_inputs(MIXED).values()
    values[6 + 4 + 1] = 1 << 128  # slotAssetHi[1]
    with pytest.raises(
        ValueError, match=r"value slot 1: slotAssetHi \d+ and slotAssetLo \d+ must each be below 2\^128"
    ):
        PublicInputs.from_values(values)
