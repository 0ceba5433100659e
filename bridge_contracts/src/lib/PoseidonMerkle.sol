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
///         Every value must be a canonical field element (below FIELD_SIZE). Python twin:
///         proofs.merkle.PoseidonTree, poseidon_root_from_path, poseidon_verify.
library PoseidonMerkle {
    /// @notice BN254's scalar field order R, Poseidon's field.
    uint256 internal constant FIELD_SIZE =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @notice The leaf at every position after a batch's last message.
    uint256 internal constant PADDING_LEAF = 0;

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
