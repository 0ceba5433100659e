"""The Solidity Merkle libraries (KeccakMerkle, PoseidonMerkle) on anvil, through their test
harnesses, against proofs.merkle. Gas of each library call is measured inside the harness and
printed (run with -s to see it)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError

from bridge_contracts import deploy
from bridge_contracts.chain import Chain, decode_revert
from proofs import merkle
from proofs.field import R
from proofs.merkle import AGGREGATED_TREE_DEPTH, KeccakTree, PoseidonTree

CAPACITY = 1 << AGGREGATED_TREE_DEPTH
on_chain = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def reverts(fn: ContractFunction) -> str:
    """The decoded reason a call reverts with."""
    try:
        fn.call()
    except ContractLogicError as exc:
        data = exc.data if isinstance(exc.data, str | bytes) else None
        return decode_revert(data)
    raise AssertionError(f"{fn.fn_name} did not revert")


def random_leaf(rng: random.Random) -> bytes:
    return rng.randbytes(32)


# --- KeccakMerkle --------------------------------------------------------------------------------


@pytest.fixture
def keccak_harness(chain_a: Chain) -> Iterator[Contract]:
    yield chain_a.deploy("KeccakMerkleHarness")


def append(chain: Chain, harness: Contract, leaf: bytes) -> tuple[int, bytes, int]:
    """Append on chain: (index, root, gas the library used)."""
    receipt = chain.send(harness.functions.append(leaf))
    (event,) = harness.events.Appended().process_receipt(receipt)
    args: Any = event["args"]
    return args["index"], bytes(args["root"]), args["gasUsed"]


def test_zero_hashes_match(keccak_harness: Contract) -> None:
    zeros = merkle.keccak_zero_hashes()
    for h in range(AGGREGATED_TREE_DEPTH + 1):
        assert keccak_harness.functions.zeroHash(h).call() == zeros[h]
    assert reverts(keccak_harness.functions.zeroHash(33)) == "HeightOutOfRange(height=33, maxHeight=32)"
    assert keccak_harness.functions.root().call()[0] == KeccakTree().root


def test_appends_match_python(chain_a: Chain, keccak_harness: Contract) -> None:
    rng = random.Random(1)
    tree = KeccakTree()
    gas: list[int] = []
    for _ in range(40):
        leaf = random_leaf(rng)
        index, root, used = append(chain_a, keccak_harness, leaf)
        assert index == tree.append(leaf)
        assert root == tree.root
        gas.append(used)
    current, root_gas = keccak_harness.functions.root().call()
    assert current == tree.root and keccak_harness.functions.size().call() == 40
    print(
        f"\nKeccakMerkle.append gas: first {gas[0]}, min {min(gas)}, max {max(gas)}, "
        f"mean {sum(gas) / len(gas):.0f} over 40 appends; root() {root_gas}"
    )
    assert max(gas) < 60_000


def test_nearly_full_tree(chain_a: Chain, keccak_harness: Contract) -> None:
    """A tree in the state of 2^32 - 1 empty leaves takes one more leaf, and then is full."""
    zeros = merkle.keccak_zero_hashes()
    path = list(zeros[:AGGREGATED_TREE_DEPTH])  # all siblings empty subtrees
    for start in (5 + (1 << 31), CAPACITY - 1):
        chain_a.send(keccak_harness.functions.simulateEmptyLeaves(start))
        leaf = b"\x42" * 32
        index, root, _ = append(chain_a, keccak_harness, leaf)
        assert index == start
        assert root == merkle.keccak_root_from_path(leaf, start, path)
        assert keccak_harness.functions.root().call()[0] == root
    assert keccak_harness.functions.size().call() == CAPACITY
    with pytest.raises(Exception, match=rf"TreeFull\(capacity={CAPACITY}\)"):
        chain_a.send(keccak_harness.functions.append(b"\x43" * 32))


@on_chain
@given(
    st.lists(st.binary(min_size=32, max_size=32).filter(any), min_size=1, max_size=20, unique=True), st.data()
)
def test_verify_matches_python(keccak_harness: Contract, leaves: list[bytes], data: st.DataObject) -> None:
    tree = KeccakTree(leaves=leaves)
    index = data.draw(st.integers(0, len(leaves) - 1), label="index")
    leaf, siblings, root = leaves[index], tree.proof(index), tree.root
    ok, gas = keccak_harness.functions.verify(leaf, index, siblings, root).call()
    assert ok and gas < 15_000
    assert keccak_harness.functions.rootOf(leaf, index, siblings).call() == root
    tampered = data.draw(st.sampled_from(["leaf", "index", "sibling", "root"]), label="tampered")
    if tampered == "leaf":
        leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
    elif tampered == "index":
        index = data.draw(st.integers(0, CAPACITY - 1).filter(lambda i: i != index), label="other index")
    elif tampered == "sibling":
        h = data.draw(st.integers(0, AGGREGATED_TREE_DEPTH - 1), label="level")
        siblings = [*siblings[:h], bytes([siblings[h][0] ^ 0x80]) + siblings[h][1:], *siblings[h + 1 :]]
    else:
        root = bytes(32)
    assert not merkle.keccak_verify(leaf, index, siblings, root)
    assert keccak_harness.functions.verify(leaf, index, siblings, root).call()[0] is False


def test_verify_gas_and_malformed_paths(keccak_harness: Contract) -> None:
    rng = random.Random(2)
    tree = KeccakTree(leaves=[random_leaf(rng) for _ in range(1000)])
    gas = []
    for index in (0, 511, 999):
        ok, used = keccak_harness.functions.verify(
            tree.leaf(index), index, tree.proof(index), tree.root
        ).call()
        assert ok
        gas.append(used)
    print(f"\nKeccakMerkle.verify gas (depth 32, path in memory): {gas}")
    siblings = tree.proof(3)
    assert (
        reverts(keccak_harness.functions.verify(tree.leaf(3), 3, siblings[:31], tree.root))
        == "WrongPathLength(length=31, depth=32)"
    )
    assert (
        reverts(keccak_harness.functions.verify(tree.leaf(3), CAPACITY, siblings, tree.root))
        == f"IndexOutOfRange(index={CAPACITY}, depth=32)"
    )
    # rootOf takes any length, as the Python twin does
    small = KeccakTree(3, [random_leaf(rng) for _ in range(6)])
    assert keccak_harness.functions.rootOf(small.leaf(5), 5, small.proof(5)).call() == small.root
    assert reverts(keccak_harness.functions.rootOf(small.leaf(5), 8, small.proof(5))) == (
        "IndexOutOfRange(index=8, depth=3)"
    )


# --- PoseidonMerkle ------------------------------------------------------------------------------


@pytest.fixture
def poseidon_harness(chain_a: Chain) -> Iterator[Contract]:
    yield chain_a.deploy("PoseidonMerkleHarness", libraries=deploy.deploy_poseidon(chain_a))


@on_chain
@given(
    st.sampled_from([8, 16, 64, 1024]),
    st.lists(st.integers(1, R - 1), min_size=1, max_size=40, unique=True),
    st.data(),
)
def test_poseidon_paths_match_python(
    poseidon_harness: Contract, capacity: int, leaves: list[int], data: st.DataObject
) -> None:
    tree = PoseidonTree(leaves[:capacity], capacity)
    padding = (
        data.draw(st.integers(tree.count, capacity - 1), label="padding index")
        if tree.count < capacity
        else 0
    )
    for index in (padding, data.draw(st.integers(0, tree.count - 1), label="index")):
        leaf, siblings = tree.leaf(index), tree.proof(index)
        assert poseidon_harness.functions.rootOf(leaf, index, siblings).call()[0] == tree.root
        assert poseidon_harness.functions.verify(leaf, index, siblings, tree.root).call()[0] is True
    # `index` now holds a message leaf: tamper with one part of its path.
    tampered = data.draw(st.sampled_from(["leaf", "index", "sibling", "root"]), label="tampered")
    root = tree.root
    if tampered == "leaf":
        leaf = (leaf + 1) % R
    elif tampered == "index":
        index = data.draw(st.integers(0, capacity - 1).filter(lambda i: i != index), label="other index")
    elif tampered == "sibling":
        h = data.draw(st.integers(0, tree.depth - 1), label="level")
        siblings = [*siblings[:h], (siblings[h] + 1) % R, *siblings[h + 1 :]]
    else:
        root = (root + 1) % R
    assert not merkle.poseidon_verify(leaf, index, siblings, root)
    assert poseidon_harness.functions.verify(leaf, index, siblings, root).call()[0] is False


def test_poseidon_gas_and_malformed_paths(poseidon_harness: Contract) -> None:
    gas = {}
    for capacity in (8, 1024):
        tree = PoseidonTree(list(range(1, 9)), capacity)
        ok, gas[tree.depth] = poseidon_harness.functions.verify(5, 4, tree.proof(4), tree.root).call()
        assert ok
    print(f"\nPoseidonMerkle.verify gas by depth: {gas}")
    assert gas[10] < 400_000
    tree = PoseidonTree([1, 2, 3], 8)
    siblings = tree.proof(2)
    harness = poseidon_harness.functions
    assert reverts(harness.verify(3, 8, siblings, tree.root)) == "IndexOutOfRange(index=8, depth=3)"
    assert reverts(harness.rootOf(3, 1, [])) == "IndexOutOfRange(index=1, depth=0)"
    assert harness.rootOf(3, 0, []).call()[0] == 3
    assert reverts(harness.verify(3 + R, 2, siblings, tree.root)) == f"NotAFieldElement(value={3 + R})"
    assert (
        reverts(harness.verify(3, 2, [siblings[0], R, siblings[2]], tree.root))
        == f"NotAFieldElement(value={R})"
    )
