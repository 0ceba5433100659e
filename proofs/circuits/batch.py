"""The batch circuit: the statement every batch proof makes (DESIGN.md §2, docs/protocol.md "Batches").

For capacity N (a power of two) and K value slots, given up to N message leaf preimages and `count`:

- the outbox rolling hash goes from `hStart` to `hEnd` over exactly the first `count` messages;
- `batchRoot` is the Poseidon Merkle root of their leaves, padded with PADDING_LEAF after `count`;
- every amount is below 2^128;
- each value-carrying message sits in exactly one slot whose (destination, asset) is its own, and
  each slot's public amount is the sum of its messages' amounts;
- chain id, batch number and count are public inputs, bound to the proof.

Public inputs, in order: chainId, batchNumber, count, hStart, hEnd, batchRoot, slotDest[0..K-1],
slotAssetHi[0..K-1], slotAssetLo[0..K-1], slotAmount[0..K-1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, partial

import numpy as np

from proofs import merkle
from proofs.bn254 import field
from proofs.field import join128, split128
from proofs.message import AMOUNT_BITS, LeafPreimage, roll
from proofs.r1cs import LC, R1CS, Builder, gadgets, hints, weighted_sum

DEFAULT_SLOTS = 4


class BatchError(ValueError):
    """The batch cannot be proven as given: the message says which part and why."""


@dataclass(frozen=True)
class ValueSlot:
    """Value leaving the chain in one batch for one (destination chain, asset)."""

    dest_chain_id: int = 0
    asset_id: int = 0
    amount: int = 0

    def key(self) -> tuple[int, int]:
        return self.dest_chain_id, self.asset_id

    def fields(self) -> list[int]:
        asset_hi, asset_lo = split128(self.asset_id)
        return [self.dest_chain_id, asset_hi, asset_lo, self.amount]


EMPTY_SLOT = ValueSlot()


@dataclass(frozen=True)
class Batch:
    """Batch `batch_number` of chain `chain_id`: its messages in nonce order, starting from the
    outbox hash `h_start` that the previous batch ended on."""

    chain_id: int
    batch_number: int
    h_start: int
    messages: tuple[LeafPreimage, ...]


@dataclass(frozen=True)
class PublicInputs:
    chain_id: int
    batch_number: int
    count: int
    h_start: int
    h_end: int
    batch_root: int
    slots: tuple[ValueSlot, ...]

    def values(self) -> list[int]:
        """In the circuit's public-input order."""
        head = [self.chain_id, self.batch_number, self.count, self.h_start, self.h_end, self.batch_root]
        return head + [x for column in self.slot_columns() for x in column]

    def slot_columns(self) -> list[list[int]]:
        """[slotDest, slotAssetHi, slotAssetLo, slotAmount], each one value per slot."""
        return [list(column) for column in zip(*(slot.fields() for slot in self.slots), strict=True)]

    @classmethod
    def from_values(cls, values: Sequence[int], slots: int | None = None) -> PublicInputs:
        """The public inputs a proof states as `values`, in the circuit's order: the inverse of
        `values()`. `slots` is the number of value slots expected; by default the length gives it."""
        head, per_slot = len(PUBLIC_NAMES), len(SLOT_NAMES)
        layout = f"{', '.join(PUBLIC_NAMES)}, then {', '.join(SLOT_NAMES)} with one value per slot"
        if slots is None:
            slots, extra = divmod(len(values) - head, per_slot)
            if slots < 1 or extra:
                raise ValueError(
                    f"{len(values)} public inputs given; a batch proof states {head} + {per_slot} per value "
                    f"slot (at least one): {layout}"
                )
        elif slots < 1:
            raise ValueError(f"a batch proof has at least one value slot, not {slots}")
        elif len(values) != head + per_slot * slots:
            raise ValueError(
                f"{len(values)} public inputs given; a batch proof with {slots} value slots states "
                f"{head + per_slot * slots}: {layout}"
            )
        chain_id, batch_number, count, h_start, h_end, batch_root = values[:head]
        dest, asset_hi, asset_lo, amount = (
            values[head + j * slots : head + (j + 1) * slots] for j in range(per_slot)
        )
        filled = []
        for i in range(slots):
            try:
                asset_id = join128(asset_hi[i], asset_lo[i])
            except ValueError:
                raise ValueError(
                    f"value slot {i}: slotAssetHi {asset_hi[i]} and slotAssetLo {asset_lo[i]} "
                    "must each be below 2^128"
                ) from None
            filled.append(ValueSlot(dest[i], asset_id, amount[i]))
        return cls(chain_id, batch_number, count, h_start, h_end, batch_root, tuple(filled))


def value_slots(messages: Sequence[LeafPreimage], slots: int) -> tuple[ValueSlot, ...]:
    """The value each (destination, asset) receives, in order of first appearance, padded with empty
    slots to `slots` entries."""
    totals: dict[tuple[int, int], int] = {}
    for m in messages:
        if m.amount:
            totals[m.dest_chain_id, m.asset_id] = totals.get((m.dest_chain_id, m.asset_id), 0) + m.amount
    if len(totals) > slots:
        raise BatchError(
            f"the batch sends value to {len(totals)} (destination, asset) pairs; "
            f"the circuit has {slots} slots"
        )
    filled = tuple(ValueSlot(dest, asset, amount) for (dest, asset), amount in totals.items())
    return filled + (EMPTY_SLOT,) * (slots - len(filled))


class BatchCircuit:
    """The batch circuit for one capacity and slot count; its R1CS is built once per process."""

    def __init__(self, capacity: int, slots: int = DEFAULT_SLOTS) -> None:
        try:
            merkle.batch_depth(capacity)  # the circuit's capacities are the batch tree's
        except merkle.MerkleError as exc:
            raise BatchError(str(exc)) from None
        if slots < 1:
            raise BatchError(f"a batch circuit needs at least one value slot, not {slots}")
        self.capacity = capacity
        self.slots = slots

    @property
    def r1cs(self) -> R1CS:
        return build_r1cs(self.capacity, self.slots)

    def public_inputs(self, batch: Batch) -> PublicInputs:
        """What the proof of `batch` states, computed directly from the messages."""
        return self._expected(batch, [m.leaf() for m in batch.messages])

    def inputs(self, batch: Batch, public: PublicInputs | None = None) -> dict[str, int | list[int]]:
        """The circuit's named inputs for `batch`. `public` is what the proof is to state (for
        example h_end as read from the Outbox, or slots in a given order); by default it is computed
        from the batch. Inputs the messages contradict are refused here, with the reason."""
        expected = self._expected(batch, [m.leaf() for m in batch.messages])
        if public is None:
            public = expected
        else:
            self._check_public(batch, public, expected)
        return self._named_inputs(batch, public)

    def _named_inputs(self, batch: Batch, public: PublicInputs) -> dict[str, int | list[int]]:
        n, k = self.capacity, self.slots
        padding = [0] * (n - len(batch.messages))
        fields = [m.fields() for m in batch.messages]
        selectors = [[0] * k for _ in range(n)]
        keys = [slot.key() for slot in public.slots]
        for i, m in enumerate(batch.messages):
            if m.amount:
                selectors[i][keys.index((m.dest_chain_id, m.asset_id))] = 1
        named: dict[str, int | list[int]] = dict(
            zip(PUBLIC_NAMES, public.values()[: len(PUBLIC_NAMES)], strict=True)
        )
        named.update(zip(SLOT_NAMES, public.slot_columns(), strict=True))
        for index, name in enumerate(MESSAGE_FIELDS):
            named[name] = [f[index] for f in fields] + padding
        named["slotSelect"] = [s for row in selectors for s in row]
        return named

    def witness(
        self, batch: Batch, public: PublicInputs | None = None, *, compiled: bool = True
    ) -> list[int]:
        """The witness of the proof of `batch` (see `inputs` for `public`), as ints. By default computed by
        `public_and_witness`; with compiled=False, the reference: `inputs` in Python, then
        `R1CS.witness` over Python ints."""
        if not compiled:
            return self.r1cs.witness(self.inputs(batch, public))
        return field.ints(self.public_and_witness(batch, public)[1])

    def witness_limbs(self, batch: Batch, public: PublicInputs | None = None) -> np.ndarray:
        """The witness of `witness(batch, public)` as the prover takes it: (n_wires, 4) uint64 plain limbs."""
        return self.public_and_witness(batch, public)[1]

    def public_and_witness(
        self, batch: Batch, public: PublicInputs | None = None
    ) -> tuple[PublicInputs, np.ndarray]:
        """What the proof of `batch` states, and its witness as (n_wires, 4) uint64 plain limbs (what
        the prover takes), from the circuit's compiled witness program (R1CS.witness_limbs). The hashes,
        h_end and batch_root, are the circuit's own (derived inputs), not computed again in Python.
        `public` as in `inputs`: the same BatchErrors refuse what the messages contradict (when several
        things are wrong, h_end and batch_root are reported last)."""
        self._check_messages(batch)
        slots = value_slots(batch.messages, self.slots)
        unhashed = self._expected_unhashed(batch, slots)
        if public is not None:
            self._check_public(batch, public, unhashed, hashes=False)
        named = self._named_inputs(batch, public if public is not None else unhashed)
        del named["hEnd"], named["batchRoot"]
        witness = self.r1cs.witness_limbs(named)
        stated = PublicInputs.from_values(field.ints(witness[1 : 1 + self.r1cs.n_public]), self.slots)
        if public is not None:
            self._check_hashes(public, stated)
        return stated, witness

    def _check_messages(self, batch: Batch) -> None:
        if not batch.messages:
            raise BatchError("a batch holds at least one message")
        if len(batch.messages) > self.capacity:
            raise BatchError(
                f"the batch has {len(batch.messages)} messages; the circuit's capacity is {self.capacity}"
            )

    def _expected_unhashed(self, batch: Batch, slots: tuple[ValueSlot, ...]) -> PublicInputs:
        """The public inputs of `batch` but h_end and batch_root (0 here), which take Poseidon hashes."""
        count = len(batch.messages)
        return PublicInputs(batch.chain_id, batch.batch_number, count, batch.h_start, 0, 0, slots)

    def _expected(self, batch: Batch, leaves: list[int]) -> PublicInputs:
        self._check_messages(batch)
        h_end = batch.h_start
        for leaf in leaves:
            h_end = roll(h_end, leaf)
        return PublicInputs(
            chain_id=batch.chain_id,
            batch_number=batch.batch_number,
            count=len(batch.messages),
            h_start=batch.h_start,
            h_end=h_end,
            batch_root=merkle.batch_root(leaves, self.capacity),
            slots=value_slots(batch.messages, self.slots),
        )

    def _check_public(
        self, batch: Batch, public: PublicInputs, expected: PublicInputs, *, hashes: bool = True
    ) -> None:
        """Refuse `public` where it contradicts `expected` (the messages'); with hashes=False, but for
        h_end and batch_root (see _check_hashes)."""
        if len(public.slots) != self.slots:
            raise BatchError(f"the circuit has {self.slots} value slots; {len(public.slots)} were given")
        keys = [slot.key() for slot in public.slots]
        for i, m in enumerate(batch.messages):
            if m.amount and (m.dest_chain_id, m.asset_id) not in keys:
                raise BatchError(
                    f"message {i} sends asset {m.asset_id:#066x} to chain {m.dest_chain_id}: "
                    "no value slot has that (destination, asset)"
                )
        for name in ("chain_id", "batch_number", "count"):
            given, computed = getattr(public, name), getattr(expected, name)
            if given != computed:
                raise BatchError(f"{name}: {given} was given, the batch has {computed}")
        self._check_hashes(public, expected, ("h_start", "h_end", "batch_root") if hashes else ("h_start",))
        # Python fills one slot per (destination, asset): the first one with that key.
        totals = {slot.key(): slot.amount for slot in expected.slots if slot.amount}
        for slot in public.slots:
            computed = totals.pop(slot.key(), 0)
            if slot.amount != computed:
                raise BatchError(
                    f"value slot (chain {slot.dest_chain_id}, asset {slot.asset_id:#066x}) "
                    f"states {slot.amount}; the messages send {computed} (in the first slot with that key)"
                )

    @staticmethod
    def _check_hashes(
        public: PublicInputs, expected: PublicInputs, names: Sequence[str] = ("h_end", "batch_root")
    ) -> None:
        for name in names:
            given, computed = getattr(public, name), getattr(expected, name)
            if given != computed:
                hint = " (is h_start the previous batch's h_end?)" if name == "h_end" else ""
                raise BatchError(f"{name}: {given:#x} was given, the messages give {computed:#x}{hint}")


PUBLIC_NAMES = ("chainId", "batchNumber", "count", "hStart", "hEnd", "batchRoot")
SLOT_NAMES = ("slotDest", "slotAssetHi", "slotAssetLo", "slotAmount")
MESSAGE_FIELDS = ("dest", "assetHi", "assetLo", "amount", "body")


@cache
def build_r1cs(capacity: int, slots: int) -> R1CS:
    """The R1CS, built once per process and (capacity, slots); `build_r1cs.cache_clear()` frees them."""
    n, k = capacity, slots
    b = Builder(f"batch({n},{k})")
    chain_id, batch_number, count, h_start, h_end, batch_root = (b.public(name) for name in PUBLIC_NAMES)
    slot_dest, slot_asset_hi, slot_asset_lo, slot_amount = (b.public_array(name, k) for name in SLOT_NAMES)
    dest, asset_hi, asset_lo, amount, body = (b.private_array(name, n) for name in MESSAGE_FIELDS)
    select_flat = b.private_array("slotSelect", n * k)

    # active[i] = (i < count): boolean, 1 first, never 1 after a 0, summing to count.
    with b.scope("active"):
        active = b.hint("i < count", partial(hints.less_than, n), [count], n)
        for flag in active:
            gadgets.assert_boolean(b, flag)
        gadgets.assert_equal(b, active[0], 1)
        for i in range(n - 1):
            b.enforce(active[i + 1], 1 - active[i], 0, label=f"active[{i + 1}] only after active[{i}]")
        gadgets.assert_equal(b, weighted_sum([1] * n, active), count)

    leaves: list[LC] = []
    tree_leaves: list[LC] = []
    contributions: list[list[LC]] = [[] for _ in range(k)]
    for i in range(n):
        with b.scope(f"message[{i}]"):
            gadgets.to_bits(b, amount[i], AMOUNT_BITS, name="amount")
            leaf = gadgets.poseidon(b, [dest[i], asset_hi[i], asset_lo[i], amount[i], body[i]])
            leaves.append(leaf)
            tree_leaves.append(b.mul(active[i], leaf, label="leaf, or padding after count"))
            # A value-carrying message of the batch sits in exactly one slot, and it is its own.
            carries_value = b.mul(active[i], 1 - gadgets.is_zero(b, amount[i]), label="carries value")
            selects = select_flat[i * k : (i + 1) * k]
            with b.scope("slot"):
                for flag in selects:
                    gadgets.assert_boolean(b, flag)
                gadgets.assert_equal(b, weighted_sum([1] * k, selects), carries_value)
                for j, flag in enumerate(selects):
                    key = (
                        (dest[i], slot_dest[j]),
                        (asset_hi[i], slot_asset_hi[j]),
                        (asset_lo[i], slot_asset_lo[j]),
                    )
                    for mine, slot in key:
                        b.enforce(flag, slot - mine, 0, label=f"slot {j} matches")
                    contributions[j].append(b.mul(flag, amount[i], label=f"amount into slot {j}"))

    with b.scope("value slots"):
        for j in range(k):
            gadgets.assert_equal(b, weighted_sum([1] * n, contributions[j]), slot_amount[j])
    with b.scope("h_end"):
        computed_h_end = gadgets.rolling_hash(b, h_start, leaves, active)
        gadgets.assert_equal(b, computed_h_end, h_end)
    with b.scope("batch_root"):
        computed_root = gadgets.merkle_root(b, tree_leaves)
        gadgets.assert_equal(b, computed_root, batch_root)
    # A witness may leave both hashes out: it computes them (BatchCircuit.public_and_witness).
    b.derive("hEnd", computed_h_end)
    b.derive("batchRoot", computed_root)
    b.bind(chain_id)
    b.bind(batch_number)
    return b.build()
