"""Gadgets: small circuits over the builder, each opening its own label scope.

Each takes the Builder first and values (LC or int) after; constants fold, so a gadget applied to
constants adds no constraint. Constraint counts (a value that is not constant):

    assert_equal 1, assert_boolean 1, to_bits(n) n + 1, is_zero 2, select 1,
    poseidon(n inputs) 3 per S-box (circomlib's count: 240 for 2 inputs),
    merkle_root(2^k leaves) (2^k - 1) Poseidons, merkle_path_root(k levels) k Poseidons + 2k,
    rolling_hash(n leaves) n Poseidons + 2n.

`select` does not check that its condition is boolean (its callers' conditions come from is_zero,
to_bits or assert_boolean); merkle_path_root and rolling_hash check their own bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from proofs.field import R
from proofs.poseidon import params
from proofs.r1cs import hints
from proofs.r1cs.builder import LC, Builder, CircuitError, Value, as_lc, weighted_sum

MAX_BITS = 253  # 2^253 < R: a decomposition into at most 253 bits is unique


def assert_equal(b: Builder, x: Value, y: Value) -> None:
    """x = y, as (x - y)·1 = 0."""
    with b.scope("assert_equal"):
        b.enforce(as_lc(x) - y, 1, 0)


def assert_boolean(b: Builder, x: Value) -> None:
    """x ∈ {0, 1}, as x·(x - 1) = 0."""
    with b.scope("assert_boolean"):
        b.enforce(x, as_lc(x) - 1, 0)


def to_bits(b: Builder, x: Value, n: int, name: str | None = None) -> list[LC]:
    """The n bits of x, least significant first: the range check x < 2^n (n boolean constraints and
    one recomposition). `name` appears in the labels: "to_bits(amount,128)/bit 17"."""
    if not 1 <= n <= MAX_BITS:
        raise CircuitError(
            f"to_bits takes 1 to {MAX_BITS} bits (a longer decomposition is not unique), not {n}"
        )
    x = as_lc(x)
    with b.scope(f"to_bits({name},{n})" if name else f"to_bits({n})"):
        k = x.constant_value()
        if k is not None:
            if k >> n:
                raise CircuitError(f"to_bits: the constant {k} does not fit in {n} bits")
            return [LC.constant(k >> i & 1) for i in range(n)]
        bits = b.hint("bits", partial(hints.bits, n), [x], n)
        for i, bit in enumerate(bits):
            b.enforce(bit, bit - 1, 0, label=f"bit {i}")
        b.enforce(weighted_sum([1 << i for i in range(n)], bits), 1, x, label="sum of bits")
        return bits


def is_zero(b: Builder, x: Value) -> LC:
    """1 when x = 0, else 0: with inv a hint, out = 1 - x·inv and x·out = 0."""
    x = as_lc(x)
    k = x.constant_value()
    if k is not None:
        return LC.constant(int(k == 0))
    with b.scope("is_zero"):
        (inv,) = b.hint("inverse", hints.inverse_or_zero, [x])
        out = 1 - b.mul(x, inv, label="x·inverse")
        b.enforce(x, out, 0, label="x·out = 0")
        return out


def select(b: Builder, cond: Value, if_true: Value, if_false: Value) -> LC:
    """cond ? if_true : if_false, as if_false + cond·(if_true - if_false). cond must be boolean: unchecked."""
    with b.scope("select"):
        return as_lc(if_false) + b.mul(cond, as_lc(if_true) - if_false)


def _sbox(b: Builder, x: LC, label: str) -> LC:
    k = x.constant_value()
    if k is not None:
        return LC.constant(pow(k, 5, R))
    x2 = b.mul(x, x, label=f"{label} x^2")
    x4 = b.mul(x2, x2, label=f"{label} x^4")
    return b.mul(x4, x, label=f"{label} x^5")


def poseidon(b: Builder, inputs: Sequence[Value]) -> LC:
    """circomlib's Poseidon(n) of n = len(inputs) values (see proofs.poseidon for the rounds)."""
    p = params(len(inputs) + 1)
    t, half = p.t, p.full_rounds // 2
    with b.scope(f"poseidon({len(inputs)})"):
        state = [LC({}), *map(as_lc, inputs)]
        for r in range(p.full_rounds + p.partial_rounds):
            state = [x + c for x, c in zip(state, p.round_constants[r * t : (r + 1) * t], strict=True)]
            full = r < half or r >= half + p.partial_rounds
            state = [_sbox(b, x, f"round {r} lane {i}") if full or i == 0 else x for i, x in enumerate(state)]
            state = [weighted_sum(row, state) for row in p.mds]
        return state[0]


def merkle_root(b: Builder, leaves: Sequence[Value]) -> LC:
    """The root of the full binary tree over a power-of-two number of leaves; node = Poseidon(left, right)."""
    n = len(leaves)
    if n < 1 or n & (n - 1):
        raise CircuitError(f"merkle_root takes a power-of-two number of leaves, not {n}")
    with b.scope(f"merkle_root({n})"):
        level = list(leaves)
        depth = 0
        while len(level) > 1:
            with b.scope(f"level {depth}"):
                level = [poseidon(b, level[i : i + 2]) for i in range(0, len(level), 2)]
            depth += 1
        return as_lc(level[0])


def merkle_path_root(b: Builder, leaf: Value, index_bits: Sequence[Value], siblings: Sequence[Value]) -> LC:
    """The root reached from `leaf` along `siblings` (level 0 first); index bit i = 1 means the node is
    the right child at level i. Each bit is checked boolean."""
    if len(index_bits) != len(siblings):
        raise CircuitError(f"merkle_path_root: {len(index_bits)} index bits for {len(siblings)} siblings")
    with b.scope(f"merkle_path_root({len(siblings)})"):
        node = as_lc(leaf)
        for i, (bit, sibling) in enumerate(zip(index_bits, siblings, strict=True)):
            with b.scope(f"level {i}"):
                assert_boolean(b, bit)
                left = select(b, bit, sibling, node)
                right = node + sibling - left
                node = poseidon(b, [left, right])
        return node


def rolling_hash(b: Builder, h_start: Value, leaves: Sequence[Value], active: Sequence[Value]) -> LC:
    """h = h_start, then for each i: h = Poseidon(h, leaves[i]) if active[i] else h. Each flag is checked
    boolean. Returns the final h."""
    if len(leaves) != len(active):
        raise CircuitError(f"rolling_hash: {len(active)} active flags for {len(leaves)} leaves")
    with b.scope(f"rolling_hash({len(leaves)})"):
        h = as_lc(h_start)
        for i, (leaf, flag) in enumerate(zip(leaves, active, strict=True)):
            with b.scope(f"leaf {i}"):
                assert_boolean(b, flag)
                h = select(b, flag, poseidon(b, [h, leaf]), h)
        return h
