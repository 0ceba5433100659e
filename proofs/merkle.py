"""The two Merkle trees of xrelay (DESIGN.md §2, §3, §6).

**Batch tree** (Poseidon): a batch's message leaves, the tree the batch circuit proves and the
Inbox checks a message against.

    depth d = log2(capacity), capacity a power of two in [MIN_BATCH_CAPACITY, MAX_BATCH_CAPACITY]
    leaf i  = the i-th message leaf for i < count, PADDING_LEAF (0) for count <= i < capacity
    node    = poseidon([left, right])            (circomlib Poseidon, width 3)

**Aggregated tree** (keccak256): kept by the L1 Hub, which appends every settled batch root; a
destination chain checks that a batch root is in it. Append-only, fixed depth.

    depth   = AGGREGATED_TREE_DEPTH (32): the root is over all 2^32 positions
    leaf i  = the i-th appended 32-byte value, EMPTY_LEAF (32 zero bytes) after the last one
    node    = keccak256(left ‖ right)            (Solidity: keccak256(abi.encodePacked(left, right)))

In both trees a path is its sibling list bottom-up: siblings[h] is the sibling at level h (level 0
holds the leaves), and bit h of the index is 1 when the path's node at level h is a right child.
`*_root_from_path` refuses malformed input (an index that does not fit the path, a value outside
its domain) with `MerkleError`; `*_verify` returns whether a well-formed path leads to the root.

A **multiproof** proves several leaves of one tree at once (the Inbox's `executeBatches`, one per
batch): the leaves at positions i_0 < i_1 < ... (strictly increasing) and the nodes their paths need
that are neither one of them nor computed from them, level by level bottom-up, left to right within a
level (`multiproof_nodes`; `PoseidonMerkle.rootOfMany` takes them in that order). A node that several
paths share is given, and hashed, once. `poseidon_root_from_multiproof` is the contract's check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import TypeVar

from eth_hash.auto import keccak

from proofs.field import R
from proofs.poseidon import poseidon

PADDING_LEAF = 0
MIN_BATCH_CAPACITY = 8
MAX_BATCH_CAPACITY = 1024

AGGREGATED_TREE_DEPTH = 32
EMPTY_LEAF = bytes(32)

T = TypeVar("T")


class MerkleError(ValueError):
    """Malformed input to a Merkle tree or path: the message says what and why."""


class TreeFull(MerkleError):
    """An append to an aggregated tree that already holds 2^depth leaves."""


# ---------------------------------------------------------------------------------------------
# Batch tree (Poseidon)


def batch_depth(capacity: int) -> int:
    """The depth of a batch tree of `capacity` leaves; refuses a capacity the circuits do not have."""
    if (
        isinstance(capacity, bool)
        or not isinstance(capacity, int)
        or not MIN_BATCH_CAPACITY <= capacity <= MAX_BATCH_CAPACITY
        or capacity & (capacity - 1)
    ):
        raise MerkleError(
            f"batch capacity must be a power of two in [{MIN_BATCH_CAPACITY}, {MAX_BATCH_CAPACITY}], "
            f"not {capacity!r}"
        )
    return capacity.bit_length() - 1


def poseidon_node(left: int, right: int) -> int:
    """A batch tree node: Poseidon(left, right)."""
    return poseidon([left, right])


@cache
def poseidon_zero_hashes(depth: int) -> tuple[int, ...]:
    """zeros[h], h = 0..depth: the root of a subtree of height h holding only PADDING_LEAF."""
    zeros = [PADDING_LEAF]
    for _ in range(depth):
        zeros.append(poseidon_node(zeros[-1], zeros[-1]))
    return tuple(zeros)


def _check_field(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < R:
        raise MerkleError(f"{what} must be a field element, an integer in [0, R), not {value!r}")


def _check_index(index: int, depth: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1 << depth:
        raise MerkleError(f"index {index!r} is out of range for a path of {depth} siblings: [0, 2^{depth})")


class PoseidonTree:
    """The batch tree over `leaves` (the batch's message leaves, in order) padded to `capacity`.

    Only the non-padding part is hashed: a subtree of padding alone is a precomputed zero hash.
    """

    def __init__(self, leaves: Sequence[int], capacity: int) -> None:
        self.depth = batch_depth(capacity)
        self.capacity = capacity
        if len(leaves) > capacity:
            raise MerkleError(f"{len(leaves)} leaves do not fit a batch tree of capacity {capacity}")
        for i, leaf in enumerate(leaves):
            _check_field(f"leaf {i}", leaf)
        self.leaves: tuple[int, ...] = tuple(leaves)
        self._zeros = poseidon_zero_hashes(self.depth)
        # _levels[h]: the nodes at level h that cover at least one message, left to right.
        self._levels: list[list[int]] = [list(self.leaves)]
        for h in range(self.depth):
            below = self._levels[h]
            padded = [*below, self._zeros[h]] if len(below) % 2 else below
            self._levels.append([poseidon_node(padded[i], padded[i + 1]) for i in range(0, len(padded), 2)])

    @property
    def count(self) -> int:
        """How many leaves are messages (the rest are padding)."""
        return len(self.leaves)

    @property
    def root(self) -> int:
        return self._node(self.depth, 0)

    def leaf(self, index: int) -> int:
        """The leaf at `index`: a message leaf, or PADDING_LEAF at and after `count`."""
        _check_index(index, self.depth)
        return self._node(0, index)

    def proof(self, index: int) -> list[int]:
        """The siblings of leaf `index`'s path, bottom-up (any position below capacity, padding too)."""
        _check_index(index, self.depth)
        return [self._node(h, (index >> h) ^ 1) for h in range(self.depth)]

    def multiproof(self, indices: Sequence[int]) -> list[int]:
        """The multiproof nodes of the leaves at `indices` (strictly increasing), in the order
        `poseidon_root_from_multiproof` and the Inbox take them."""
        return multiproof_nodes(indices, self.depth, self._node)

    def _node(self, level: int, position: int) -> int:
        nodes = self._levels[level]
        return nodes[position] if position < len(nodes) else self._zeros[level]


def batch_root(leaves: Sequence[int], capacity: int) -> int:
    """The batch root of `leaves` padded with PADDING_LEAF to `capacity`."""
    return PoseidonTree(leaves, capacity).root


def poseidon_root_from_path(
    leaf: int, index: int, siblings: Sequence[int], node_hash: Callable[[int, int], int] = poseidon_node
) -> int:
    """The batch tree root that leaf `leaf` at `index` with these siblings (bottom-up) leads to.
    `node_hash`: poseidon_node, or a memoized copy of it when many paths of one tree are checked (they
    share their upper nodes)."""
    _check_field("leaf", leaf)
    _check_index(index, len(siblings))
    node = leaf
    for h, sibling in enumerate(siblings):
        _check_field(f"sibling {h}", sibling)
        node = node_hash(sibling, node) if index >> h & 1 else node_hash(node, sibling)
    return node


def poseidon_verify(leaf: int, index: int, siblings: Sequence[int], root: int) -> bool:
    """Whether the path leads from `leaf` at `index` to `root`. The caller fixes the depth: check
    len(siblings) against the batch's capacity, or an inner node could pose as a leaf."""
    return poseidon_root_from_path(leaf, index, siblings) == root


# ---------------------------------------------------------------------------------------------
# Multiproofs


def _check_indices(indices: Sequence[int], depth: int) -> None:
    if not indices:
        raise MerkleError("a multiproof proves at least one leaf")
    for i, index in enumerate(indices):
        _check_index(index, depth)
        if i and index <= indices[i - 1]:
            raise MerkleError(f"multiproof indices must be strictly increasing: {indices[i - 1]}, {index}")


def multiproof_nodes(indices: Sequence[int], depth: int, node_at: Callable[[int, int], T]) -> list[T]:
    """The multiproof nodes of the leaves at `indices` (strictly increasing, each below 2^depth) in a
    tree of `depth` levels whose node at (level, position) is node_at(level, position): for each level
    bottom-up, left to right, the sibling of every known node whose sibling is not known."""
    _check_indices(indices, depth)
    nodes: list[T] = []
    known = list(indices)
    for level in range(depth):
        above: list[int] = []
        i = 0
        while i < len(known):
            position = known[i]
            if position % 2 == 0 and i + 1 < len(known) and known[i + 1] == position + 1:
                i += 2
            else:
                nodes.append(node_at(level, position ^ 1))
                i += 1
            above.append(position >> 1)
        known = above
    return nodes


def multiproof_from_paths(paths: Mapping[int, Sequence[T]], depth: int) -> list[T]:
    """The multiproof of several leaves of one tree from their single paths ({index: siblings bottom-up},
    each of `depth` siblings): what a relayer that holds only each message's own path sends."""
    for index, siblings in paths.items():
        if len(siblings) != depth:
            raise MerkleError(f"the path of leaf {index} has {len(siblings)} siblings, not {depth}")
    indices = sorted(paths)
    # The known node at (level, position) covers the leaves whose index >> level is position; its
    # sibling is the level-th sibling of any of them.
    by_node = {(level, index >> level): index for index in indices for level in range(depth)}

    def sibling_of(level: int, position: int) -> T:
        return paths[by_node[level, position ^ 1]][level]

    return multiproof_nodes(indices, depth, sibling_of)


def root_from_multiproof(
    leaves: Sequence[T],
    indices: Sequence[int],
    nodes: Sequence[T],
    depth: int,
    node: Callable[[T, T], T],
) -> T:
    """The root that `leaves` at `indices` lead to with the multiproof `nodes` in a tree of `depth`
    levels hashed with `node`. MerkleError if the multiproof is malformed: no leaves, as many indices as
    leaves, indices not strictly increasing or out of range, a node missing or left over."""
    if len(leaves) != len(indices):
        raise MerkleError(f"{len(leaves)} leaves but {len(indices)} indices")
    _check_indices(indices, depth)
    known = list(zip(indices, leaves, strict=True))
    taken = 0
    for _ in range(depth):
        above: list[tuple[int, T]] = []
        i = 0
        while i < len(known):
            position, value = known[i]
            if position % 2 == 0 and i + 1 < len(known) and known[i + 1][0] == position + 1:
                parent = node(value, known[i + 1][1])
                i += 2
            else:
                if taken == len(nodes):
                    raise MerkleError(f"the multiproof has too few nodes: {len(nodes)}")
                sibling = nodes[taken]
                taken += 1
                parent = node(sibling, value) if position & 1 else node(value, sibling)
                i += 1
            above.append((position >> 1, parent))
        known = above
    if taken != len(nodes):
        raise MerkleError(f"the multiproof has {len(nodes) - taken} node(s) left over of {len(nodes)}")
    [(_, root)] = known
    return root


def poseidon_root_from_multiproof(
    leaves: Sequence[int], indices: Sequence[int], nodes: Sequence[int], depth: int
) -> int:
    """The batch tree root of a multiproof (`PoseidonMerkle.rootOfMany`): MerkleError where the contract
    says not ok (malformed, or a value not a field element)."""
    for i, leaf in enumerate(leaves):
        _check_field(f"leaf {i}", leaf)
    for i, value in enumerate(nodes):
        _check_field(f"node {i}", value)
    return root_from_multiproof(leaves, indices, nodes, depth, poseidon_node)


def poseidon_verify_multiproof(
    leaves: Sequence[int], indices: Sequence[int], nodes: Sequence[int], depth: int, root: int
) -> bool:
    """Whether the multiproof is well formed and leads to `root` (the caller fixes the depth)."""
    try:
        return poseidon_root_from_multiproof(leaves, indices, nodes, depth) == root
    except MerkleError:
        return False


# ---------------------------------------------------------------------------------------------
# Aggregated tree (keccak256)


def keccak_node(left: bytes, right: bytes) -> bytes:
    """An aggregated tree node: keccak256(left ‖ right)."""
    return keccak(left + right)


@cache
def keccak_zero_hashes(depth: int = AGGREGATED_TREE_DEPTH) -> tuple[bytes, ...]:
    """zeros[h], h = 0..depth: the root of an empty subtree of height h (zeros[0] = EMPTY_LEAF)."""
    zeros = [EMPTY_LEAF]
    for _ in range(depth):
        zeros.append(keccak_node(zeros[-1], zeros[-1]))
    return tuple(zeros)


def _check_bytes32(what: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise MerkleError(f"{what} must be 32 bytes, not {value!r}")


class KeccakTree:
    """An append-only keccak tree of fixed `depth` (AGGREGATED_TREE_DEPTH on L1; smaller in tests).

    Appending costs `depth` hashes. Only nodes over appended leaves are kept; empty subtrees are
    zero hashes, so nothing of size 2^depth is ever built.
    """

    def __init__(self, depth: int = AGGREGATED_TREE_DEPTH, leaves: Iterable[bytes] = ()) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 64:
            raise MerkleError(f"aggregated tree depth must be an integer in [1, 64], not {depth!r}")
        self.depth = depth
        self._zeros = keccak_zero_hashes(depth)
        # _levels[h]: the nodes at level h that cover at least one appended leaf, left to right.
        self._levels: list[list[bytes]] = [[] for _ in range(depth + 1)]
        for leaf in leaves:
            self.append(leaf)

    @property
    def capacity(self) -> int:
        return 1 << self.depth

    @property
    def size(self) -> int:
        """How many leaves have been appended; the next append gets this index."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def append(self, leaf: bytes) -> int:
        """Append `leaf`; return its index."""
        _check_bytes32("leaf", leaf)
        index = self.size
        if index == self.capacity:
            raise TreeFull(f"the aggregated tree of depth {self.depth} is full ({self.capacity} leaves)")
        node, position = leaf, index
        self._levels[0].append(leaf)
        for h in range(self.depth):
            if position & 1:
                node = keccak_node(self._levels[h][position - 1], node)
            else:
                node = keccak_node(node, self._zeros[h])
            position >>= 1
            above = self._levels[h + 1]
            if position < len(above):
                above[position] = node
            else:
                above.append(node)
        return index

    @property
    def root(self) -> bytes:
        return self._node(self.depth, 0, self.size)

    def leaf(self, index: int) -> bytes:
        self._check_appended(index, self.size)
        return self._levels[0][index]

    def root_at(self, size: int) -> bytes:
        """The root the tree had when it held its first `size` leaves."""
        self._check_size(size)
        return self._node(self.depth, 0, size)

    def proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The siblings (bottom-up) of appended leaf `index`, against the current root, or against
        root_at(size) for an earlier size that already held the leaf."""
        size = self.size if size is None else size
        self._check_size(size)
        self._check_appended(index, size)
        return [self._node(h, (index >> h) ^ 1, size) for h in range(self.depth)]

    def _check_size(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= self.size:
            raise MerkleError(f"the tree has held 0 to {self.size} leaves, never {size!r}")

    @staticmethod
    def _check_appended(index: int, size: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            raise MerkleError(f"no leaf at index {index!r}: {size} leaves are appended")

    def _node(self, level: int, position: int, size: int) -> bytes:
        """The node at (level, position) when the tree held its first `size` leaves."""
        first, end = position << level, (position + 1) << level
        if first >= size:
            return self._zeros[level]
        if end <= size:  # complete, so it has not changed since
            return self._levels[level][position]
        if size == self.size:  # the current partial node
            return self._levels[level][position]
        return keccak_node(
            self._node(level - 1, 2 * position, size), self._node(level - 1, 2 * position + 1, size)
        )


def keccak_root_from_path(leaf: bytes, index: int, siblings: Sequence[bytes]) -> bytes:
    """The aggregated tree root that `leaf` at `index` with these siblings (bottom-up) leads to."""
    _check_bytes32("leaf", leaf)
    _check_index(index, len(siblings))
    node = leaf
    for h, sibling in enumerate(siblings):
        _check_bytes32(f"sibling {h}", sibling)
        node = keccak_node(sibling, node) if index >> h & 1 else keccak_node(node, sibling)
    return node


def keccak_verify(
    leaf: bytes, index: int, siblings: Sequence[bytes], root: bytes, *, depth: int = AGGREGATED_TREE_DEPTH
) -> bool:
    """Whether the path leads from `leaf` at `index` to `root` in a tree of `depth`. A path of any
    other length is refused (MerkleError): a shorter one would let an inner node pose as a leaf."""
    if len(siblings) != depth:
        raise MerkleError(f"an aggregated tree path has {depth} siblings, not {len(siblings)}")
    return keccak_root_from_path(leaf, index, siblings) == root
