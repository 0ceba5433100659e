// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {PoseidonT3} from "../generated/PoseidonT3.sol";

/// @title PoseidonMerkle
/// @notice The batch tree: the Poseidon Merkle tree over one batch's message leaves that the batch
///         proof commits to (batchRoot), and the check of a message leaf's path against it.
///
///         node  = PoseidonT3.hash([left, right])    (circomlib Poseidon, 2 inputs)
///         leaf  = the i-th message leaf of the batch; PADDING_LEAF (0) after the batch's count
///         depth = log2(capacity) of the batch's circuit
///         path  = siblings bottom-up: siblings[h] is the sibling at level h (level 0 holds the
///                 leaves); bit h of the index is 1 when the path's node at level h is a right child
///
///         Every value must be a canonical field element (below FIELD_SIZE).
///
///         multiproof = the leaves at positions i_0 < i_1 < ... < i_{k-1} (each below 2^depth) and
///                 `nodes`: every node the k paths need that is neither one of those leaves nor
///                 computed from them, in the order rootOfMany takes them: level by level bottom-up
///                 (level 0 first), left to right within a level. A node shared by several paths is
///                 hashed once; k = 2^depth leaves need no nodes at all.
///
///         Python twin: proofs.merkle.PoseidonTree (proof, multiproof), poseidon_root_from_path,
///         poseidon_verify, poseidon_root_from_multiproof.
library PoseidonMerkle {
    /// @notice BN254's scalar field order R, Poseidon's field.
    uint256 internal constant FIELD_SIZE =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @notice The leaf at every position after a batch's last message.
    uint256 internal constant PADDING_LEAF = 0;

    /// @notice The deepest tree rootOfMany takes: positions are below 2^MAX_DEPTH.
    uint256 internal constant MAX_DEPTH = 64;

    /// @notice The index does not fit a path of `depth` siblings: it must be below 2^depth.
    error IndexOutOfRange(uint256 index, uint256 depth);
    /// @notice A leaf or sibling is not a canonical field element (it is FIELD_SIZE or more).
    error NotAFieldElement(uint256 value);

    /// @notice The root that the path of `leaf` at `index` with `siblings` (bottom-up) leads to.
    /// @dev Reverts if index >= 2^siblings.length or a value is not below FIELD_SIZE.
    function rootOf(uint256 leaf, uint256 index, uint256[] memory siblings) internal pure returns (uint256 node) {
        uint256 depth = siblings.length;
        if (index >> depth != 0) revert IndexOutOfRange(index, depth);
        if (leaf >= FIELD_SIZE) revert NotAFieldElement(leaf);
        node = leaf;
        for (uint256 h; h < depth; ++h) {
            uint256 sibling = siblings[h];
            if (sibling >= FIELD_SIZE) revert NotAFieldElement(sibling);
            node = (index >> h) & 1 == 1 ? PoseidonT3.hash([sibling, node]) : PoseidonT3.hash([node, sibling]);
        }
    }

    /// @notice The root that the leaves at positions `indices` lead to with the multiproof `nodes`
    ///         (see the library's notice), in a tree of `depth` levels; ok = false, and no root, when
    ///         the input is malformed: no leaves, indices.length != leaves.length, an index not below
    ///         2^depth, indices not strictly increasing (two leaves at one position), a node the leaves
    ///         need missing (truncated), a node left over once the root is reached, or a leaf or node
    ///         that is not a field element. Never reverts on any input (so a caller can reject the
    ///         leaves instead of reverting), but for want of gas.
    /// @dev Each leaf is bound to its position: at level h the known nodes are kept sorted by position,
    ///      a node at an even position p is paired with the next known node when that one is at p + 1,
    ///      and otherwise takes the next proof node as its sibling (left or right, as p's bit says).
    ///      Since the positions are distinct, so are their parents: the root is that of k ordinary
    ///      paths whose siblings are either proof nodes or nodes computed from the other leaves.
    ///      The caller fixes the depth, as for rootOf. `leaves` is overwritten (it holds the nodes of
    ///      each level as they are computed).
    function rootOfMany(uint256[] memory leaves, uint256[] calldata indices, uint256[] calldata nodes, uint256 depth)
        internal
        pure
        returns (bool ok, uint256 root)
    {
        uint256 k = leaves.length;
        if (k == 0 || indices.length != k || depth > MAX_DEPTH) return (false, 0);
        uint256[] memory positions = new uint256[](k);
        for (uint256 i; i < k; ++i) {
            uint256 index = indices[i];
            if (index >> depth != 0 || (i != 0 && index <= positions[i - 1]) || leaves[i] >= FIELD_SIZE) {
                return (false, 0);
            }
            positions[i] = index;
        }
        uint256 used; // proof nodes taken so far
        for (uint256 h; h < depth; ++h) {
            (ok, k, used) = _levelUp(leaves, positions, k, nodes, used);
            if (!ok) return (false, 0);
        }
        // All positions are below 2^depth and distinct at every level: k is now 1, at position 0.
        if (used != nodes.length) return (false, 0);
        return (true, leaves[0]);
    }

    /// @dev One level of rootOfMany: the k known nodes (values, positions) become the known nodes of
    ///      the level above, in place; proof nodes are taken from nodes[used]. ok = false if one is
    ///      missing or not a field element.
    function _levelUp(
        uint256[] memory values,
        uint256[] memory positions,
        uint256 k,
        uint256[] calldata nodes,
        uint256 used
    ) private pure returns (bool ok, uint256 next, uint256 usedAfter) {
        for (uint256 i; i < k;) {
            uint256 position = positions[i];
            uint256 node = values[i];
            if (position & 1 == 0 && i + 1 < k && positions[i + 1] == position + 1) {
                node = PoseidonT3.hash([node, values[i + 1]]);
                i += 2;
            } else {
                if (used == nodes.length) return (false, 0, used);
                uint256 sibling = nodes[used];
                if (sibling >= FIELD_SIZE) return (false, 0, used);
                ++used;
                node = position & 1 == 1 ? PoseidonT3.hash([sibling, node]) : PoseidonT3.hash([node, sibling]);
                ++i;
            }
            positions[next] = position >> 1;
            values[next] = node;
            ++next;
        }
        return (true, next, used);
    }

    /// @notice Whether the path leads from `leaf` at `index` to `root`.
    /// @dev The caller fixes the depth: it must check siblings.length against the batch's capacity,
    ///      or an inner node could pose as a leaf. Reverts as rootOf does.
    function verify(uint256 leaf, uint256 index, uint256[] memory siblings, uint256 root)
        internal
        pure
        returns (bool)
    {
        return rootOf(leaf, index, siblings) == root;
    }
}
