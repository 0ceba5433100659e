"""The batch tree (Poseidon) and the aggregated tree (keccak) of proofs.merkle, against naive
full-tree computations and under tampering, and the batch tree's multiproofs (the Inbox's round by
batch; on chain: tests/test_inbox_multiproof.py)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import merkle
from proofs.field import R
from proofs.merkle import (
    AGGREGATED_TREE_DEPTH,
    EMPTY_LEAF,
    KeccakTree,
    MerkleError,
    PoseidonTree,
    TreeFull,
)
from proofs.poseidon import poseidon

T = TypeVar("T")


def naive_root(leaves: Sequence[T], node: Callable[[T, T], T]) -> T:
    """The root of a complete tree over all of `leaves` (a power of two of them), level by level."""
    level = list(leaves)
    while len(level) > 1:
        level = [node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def naive_batch_root(leaves: Sequence[int], capacity: int) -> int:
    return naive_root([*leaves, *[merkle.PADDING_LEAF] * (capacity - len(leaves))], merkle.poseidon_node)


def naive_keccak_root(leaves: Sequence[bytes], depth: int) -> bytes:
    return naive_root([*leaves, *[EMPTY_LEAF] * ((1 << depth) - len(leaves))], merkle.keccak_node)


field_elements = st.integers(min_value=0, max_value=R - 1)
# Distinct nonzero leaves: no node equals its sibling, so every flipped index bit changes the root.
distinct_leaves = st.lists(st.integers(min_value=1, max_value=R - 1), unique=True)
capacities = st.sampled_from([8, 16, 32])


@st.composite
def batch_trees(draw: st.DrawFn, leaves: st.SearchStrategy[list[int]] = distinct_leaves) -> PoseidonTree:
    capacity = draw(capacities)
    return PoseidonTree(draw(leaves.map(lambda xs: xs[:capacity])), capacity)


# --- batch tree ----------------------------------------------------------------------------------


def test_known_values() -> None:
    assert merkle.poseidon_node(1, 2) == 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A
    zeros = merkle.poseidon_zero_hashes(10)
    assert zeros[0] == merkle.PADDING_LEAF == 0
    assert zeros[1] == 0x2098F5FB9E239EAB3CEAC3F27B81E481DC3124D55FFED523A839EE8446B64864  # Poseidon(0, 0)
    assert all(zeros[h + 1] == poseidon([zeros[h], zeros[h]]) for h in range(10))
    assert PoseidonTree([], 8).root == zeros[3]
    assert merkle.batch_root([1, 2], 8) == poseidon([poseidon([poseidon([1, 2]), zeros[1]]), zeros[2]])


@pytest.mark.parametrize("capacity", [8, 16, 32, 64, 128, 256, 512, 1024])
def test_capacities(capacity: int) -> None:
    assert merkle.batch_depth(capacity) == capacity.bit_length() - 1
    tree = PoseidonTree([7, 8, 9], capacity)
    assert tree.depth == merkle.batch_depth(capacity) and tree.count == 3
    assert len(tree.proof(capacity - 1)) == tree.depth
    assert merkle.poseidon_verify(9, 2, tree.proof(2), tree.root)


@settings(max_examples=40, deadline=None)
@given(capacities, st.lists(field_elements, max_size=32))
def test_batch_root_equals_the_full_tree(capacity: int, leaves: list[int]) -> None:
    leaves = leaves[:capacity]
    tree = PoseidonTree(leaves, capacity)
    assert tree.root == naive_batch_root(leaves, capacity) == merkle.batch_root(leaves, capacity)


def test_a_full_batch_of_1024() -> None:
    leaves = list(range(1, 1025))
    tree = PoseidonTree(leaves, 1024)
    assert tree.root == naive_batch_root(leaves, 1024)
    assert merkle.poseidon_verify(1024, 1023, tree.proof(1023), tree.root)


@settings(max_examples=15, deadline=None)
@given(batch_trees())
def test_every_position_proves_its_leaf(tree: PoseidonTree) -> None:
    for index in range(tree.capacity):
        leaf = tree.leaf(index)
        assert leaf == (tree.leaves[index] if index < tree.count else merkle.PADDING_LEAF)
        siblings = tree.proof(index)
        assert len(siblings) == tree.depth
        assert merkle.poseidon_root_from_path(leaf, index, siblings) == tree.root
        assert merkle.poseidon_verify(leaf, index, siblings, tree.root)


@settings(max_examples=40, deadline=None)
@given(batch_trees(distinct_leaves.filter(bool)), st.data())
def test_a_tampered_path_fails(tree: PoseidonTree, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, tree.count - 1), label="index")
    leaf, siblings = tree.leaves[index], tree.proof(index)
    other_leaf = data.draw(field_elements.filter(lambda x: x != leaf), label="other leaf")
    assert not merkle.poseidon_verify(other_leaf, index, siblings, tree.root)
    other_index = data.draw(
        st.integers(0, tree.capacity - 1).filter(lambda i: i != index), label="other index"
    )
    assert not merkle.poseidon_verify(leaf, other_index, siblings, tree.root)
    h = data.draw(st.integers(0, tree.depth - 1), label="level")
    changed = data.draw(field_elements.filter(lambda x: x != siblings[h]), label="other sibling")
    assert not merkle.poseidon_verify(leaf, index, [*siblings[:h], changed, *siblings[h + 1 :]], tree.root)
    assert not merkle.poseidon_verify(leaf, index, siblings, (tree.root + 1) % R)


# --- multiproofs (Inbox.executeBatches) -------------------------------------------------------------


@pytest.mark.parametrize("capacity", [8, 16, 64])
def test_python_multiproofs_of_every_kind_of_subset(capacity: int) -> None:
    rng = random.Random(capacity)
    tree = PoseidonTree([rng.randrange(1, R) for _ in range(capacity - 3)], capacity)
    subsets = [[0], [capacity - 1], list(range(capacity)), [1, 2], [0, capacity // 2 + 1]]
    subsets += [sorted(rng.sample(range(capacity), rng.randrange(1, capacity))) for _ in range(6)]
    for indices in subsets:
        leaves = [tree.leaf(i) for i in indices]
        nodes = tree.multiproof(indices)
        assert merkle.poseidon_root_from_multiproof(leaves, indices, nodes, tree.depth) == tree.root
        # The same nodes from the single paths, as a relayer holding only those makes them.
        paths = {i: tree.proof(i) for i in indices}
        assert merkle.multiproof_from_paths(paths, tree.depth) == nodes
        # Never more nodes than the single paths have, and none at all for the whole tree.
        assert len(nodes) <= len(indices) * tree.depth
    assert tree.multiproof(list(range(capacity))) == []
    assert tree.multiproof([3]) == tree.proof(3)


def test_python_multiproof_refusals() -> None:
    tree = PoseidonTree([11, 12, 13, 14, 15], 8)
    leaves, indices = [11, 13, 14], [0, 2, 3]
    nodes = tree.multiproof(indices)
    check = merkle.poseidon_root_from_multiproof
    with pytest.raises(MerkleError, match="strictly increasing"):
        check([13, 11, 14], [2, 0, 3], nodes, 3)
    with pytest.raises(MerkleError, match="strictly increasing"):
        check([11, 11, 14], [0, 0, 3], nodes, 3)
    with pytest.raises(MerkleError, match="out of range"):
        check(leaves, [0, 2, 8], nodes, 3)
    with pytest.raises(MerkleError, match="left over"):
        check(leaves, indices, [*nodes, 0], 3)
    with pytest.raises(MerkleError, match="too few"):
        check(leaves, indices, nodes[:-1], 3)
    with pytest.raises(MerkleError, match="at least one"):
        check([], [], [], 3)
    with pytest.raises(MerkleError, match="field element"):
        check(leaves, indices, [*nodes[:-1], R], 3)
    with pytest.raises(MerkleError, match="2 leaves but 3 indices"):
        check(leaves[:2], indices, nodes, 3)
    assert merkle.poseidon_verify_multiproof(leaves, indices, nodes, 3, tree.root)
    assert not merkle.poseidon_verify_multiproof([11, 14, 13], indices, nodes, 3, tree.root)  # swapped
    assert not merkle.poseidon_verify_multiproof(leaves, indices, nodes, 3, tree.root + 1)
    with pytest.raises(MerkleError, match="has 2 siblings, not 3"):
        merkle.multiproof_from_paths({0: tree.proof(0)[:2]}, 3)


@settings(max_examples=30, deadline=None)
@given(batch_trees(distinct_leaves.filter(bool)), st.data())
def test_multiproofs_prove_their_leaves_and_nothing_else(tree: PoseidonTree, data: st.DataObject) -> None:
    indices = sorted(data.draw(st.sets(st.integers(0, tree.capacity - 1), min_size=1), label="indices"))
    leaves = [tree.leaf(i) for i in indices]
    nodes = tree.multiproof(indices)
    assert merkle.poseidon_verify_multiproof(leaves, indices, nodes, tree.depth, tree.root)
    # Each leaf's own path is implied: a leaf alone with its single proof gives the same root.
    k = data.draw(st.integers(0, len(indices) - 1), label="leaf")
    assert merkle.poseidon_verify(leaves[k], indices[k], tree.proof(indices[k]), tree.root)
    # Any one change is refused.
    change = data.draw(st.sampled_from(["leaf", "index", "node", "extra", "drop", "depth"]), label="change")
    depth = tree.depth
    if change == "leaf":
        leaves[k] = data.draw(field_elements.filter(lambda x: x != leaves[k]), label="other leaf")
    elif change == "index":
        # Another position whose leaf differs (padding named at another padding position is still true).
        others = [i for i in range(tree.capacity) if i not in indices and tree.leaf(i) != leaves[k]]
        if not others:
            return
        indices[k] = data.draw(st.sampled_from(others), label="other index")
        pairs = sorted(zip(indices, leaves, strict=True))
        indices, leaves = [i for i, _ in pairs], [x for _, x in pairs]
    elif change == "node":
        if not nodes:
            return
        h = data.draw(st.integers(0, len(nodes) - 1), label="node")
        nodes[h] = data.draw(field_elements.filter(lambda x: x != nodes[h]), label="other node")
    elif change == "extra":
        nodes.append(data.draw(field_elements, label="extra node"))
    elif change == "drop":
        if not nodes:
            return
        del nodes[data.draw(st.integers(0, len(nodes) - 1), label="dropped")]
    else:
        depth = data.draw(st.sampled_from([depth - 1, depth + 1]), label="depth")
    assert not merkle.poseidon_verify_multiproof(leaves, indices, nodes, depth, tree.root)


@pytest.mark.parametrize("capacity", [0, 1, 4, 7, 12, 2048, -8, True, 8.0])
def test_bad_capacity(capacity: int) -> None:
    with pytest.raises(MerkleError, match="capacity must be a power of two in \\[8, 1024\\]"):
        PoseidonTree([], capacity)


def test_bad_batch_input() -> None:
    with pytest.raises(MerkleError, match="9 leaves do not fit a batch tree of capacity 8"):
        PoseidonTree([1] * 9, 8)
    for bad in (R, -1, R + 5):
        with pytest.raises(MerkleError, match="leaf 1 must be a field element"):
            PoseidonTree([0, bad], 8)
    tree = PoseidonTree([1, 2, 3], 8)
    for index in (-1, 8, 100):
        with pytest.raises(MerkleError, match=f"index {index} is out of range for a path of 3 siblings"):
            tree.proof(index)
        with pytest.raises(MerkleError, match="out of range"):
            tree.leaf(index)
    siblings = tree.proof(0)
    with pytest.raises(MerkleError, match="index 8 is out of range"):
        merkle.poseidon_verify(1, 8, siblings, tree.root)
    with pytest.raises(MerkleError, match="leaf must be a field element"):
        merkle.poseidon_verify(1 + R, 0, siblings, tree.root)
    with pytest.raises(MerkleError, match="sibling 2 must be a field element"):
        merkle.poseidon_verify(1, 0, [*siblings[:2], R], tree.root)


# --- aggregated tree -----------------------------------------------------------------------------

distinct_keccak_leaves = st.lists(st.binary(min_size=32, max_size=32).filter(any), unique=True)


def test_keccak_known_values() -> None:
    zeros = merkle.keccak_zero_hashes()
    assert len(zeros) == AGGREGATED_TREE_DEPTH + 1 and zeros[0] == EMPTY_LEAF == bytes(32)
    # The eth2 deposit contract's zero hashes are the same construction.
    assert zeros[1].hex() == "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5"
    assert zeros[32].hex() == "27ae5ba08d7291c96c8cbddcc148bf48a6d68c7974b94356f53754ef6171d757"
    assert merkle.keccak_node(b"\x01" * 32, b"\x02" * 32) == keccak(b"\x01" * 32 + b"\x02" * 32)
    tree = KeccakTree()
    assert tree.depth == 32 and tree.size == 0 and tree.root == zeros[32]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.lists(st.binary(min_size=32, max_size=32), max_size=64))
def test_incremental_root_equals_the_full_tree_after_each_append(depth: int, leaves: list[bytes]) -> None:
    leaves = leaves[: 1 << depth]
    tree = KeccakTree(depth)
    assert tree.root == naive_keccak_root([], depth)
    for i, leaf in enumerate(leaves):
        assert tree.append(leaf) == i
        assert len(tree) == i + 1 and tree.leaf(i) == leaf
        assert tree.root == naive_keccak_root(leaves[: i + 1], depth)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=32))
def test_proofs_against_current_and_earlier_roots(depth: int, leaves: list[bytes]) -> None:
    leaves = leaves[: 1 << depth]
    tree = KeccakTree(depth, leaves)
    for size in range(len(leaves) + 1):
        assert tree.root_at(size) == naive_keccak_root(leaves[:size], depth)
        for index in range(size):
            siblings = tree.proof(index, size)
            assert merkle.keccak_verify(leaves[index], index, siblings, tree.root_at(size), depth=depth)
    for index, leaf in enumerate(leaves):
        assert tree.proof(index) == tree.proof(index, len(leaves))
        assert merkle.keccak_root_from_path(leaf, index, tree.proof(index)) == tree.root


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), distinct_keccak_leaves.filter(bool), st.data())
def test_a_tampered_keccak_path_fails(depth: int, leaves: list[bytes], data: st.DataObject) -> None:
    tree = KeccakTree(depth, leaves[: 1 << depth])
    index = data.draw(st.integers(0, tree.size - 1), label="index")
    leaf, siblings = tree.leaf(index), tree.proof(index)
    assert merkle.keccak_verify(leaf, index, siblings, tree.root, depth=depth)
    other_leaf = data.draw(
        st.binary(min_size=32, max_size=32).filter(lambda x: x != leaf), label="other leaf"
    )
    assert not merkle.keccak_verify(other_leaf, index, siblings, tree.root, depth=depth)
    other_index = data.draw(
        st.integers(0, tree.capacity - 1).filter(lambda i: i != index), label="other index"
    )
    assert not merkle.keccak_verify(leaf, other_index, siblings, tree.root, depth=depth)
    h = data.draw(st.integers(0, depth - 1), label="level")
    changed = data.draw(
        st.binary(min_size=32, max_size=32).filter(lambda x: x != siblings[h]), label="sibling"
    )
    assert not merkle.keccak_verify(
        leaf, index, [*siblings[:h], changed, *siblings[h + 1 :]], tree.root, depth=depth
    )


def test_depth_32_tree_is_a_small_tree_under_zero_hashes() -> None:
    """At depth 32 the leaves sit in the leftmost subtree, so the root is the small tree's root
    climbed up with empty right siblings."""
    leaves = [bytes([i]) * 32 for i in range(1, 6)]
    tree = KeccakTree(leaves=leaves)
    zeros = merkle.keccak_zero_hashes()
    node = naive_keccak_root(leaves, 3)
    for h in range(3, 32):
        node = merkle.keccak_node(node, zeros[h])
    assert tree.root == node
    siblings = tree.proof(4)
    assert len(siblings) == 32 and siblings[3:] == list(zeros[3:32])
    assert merkle.keccak_verify(leaves[4], 4, siblings, tree.root)


def test_full_tree_and_bad_keccak_input() -> None:
    tree = KeccakTree(2)
    for i in range(4):
        tree.append(bytes([i]) * 32)
    with pytest.raises(TreeFull, match="depth 2 is full \\(4 leaves\\)"):
        tree.append(bytes(32))
    assert tree.root == naive_keccak_root([bytes([i]) * 32 for i in range(4)], 2)
    with pytest.raises(MerkleError, match="leaf must be 32 bytes"):
        KeccakTree().append(b"\x01" * 31)
    for depth in (0, 65, True):
        with pytest.raises(MerkleError, match="depth must be an integer in \\[1, 64\\]"):
            KeccakTree(depth)
    big = KeccakTree(leaves=[b"\x01" * 32, b"\x02" * 32])
    for index in (-1, 2):
        with pytest.raises(MerkleError, match=f"no leaf at index {index}: 2 leaves are appended"):
            big.proof(index)
    with pytest.raises(MerkleError, match="no leaf at index 1: 1 leaves are appended"):
        big.proof(1, size=1)
    with pytest.raises(MerkleError, match="the tree has held 0 to 2 leaves, never 3"):
        big.root_at(3)
    siblings = big.proof(0)
    with pytest.raises(MerkleError, match="an aggregated tree path has 32 siblings, not 31"):
        merkle.keccak_verify(b"\x01" * 32, 0, siblings[:31], big.root)
    with pytest.raises(MerkleError, match="index 4294967296 is out of range for a path of 32 siblings"):
        merkle.keccak_verify(b"\x01" * 32, 1 << 32, siblings, big.root)
    with pytest.raises(MerkleError, match="sibling 5 must be 32 bytes"):
        merkle.keccak_root_from_path(b"\x01" * 32, 0, [*siblings[:5], b"", *siblings[6:]])
