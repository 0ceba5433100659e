// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {KeccakMerkle} from "../lib/KeccakMerkle.sol";
import {PoseidonMerkle} from "../lib/PoseidonMerkle.sol";

/// @title KeccakMerkleHarness
/// @notice TESTS ONLY: exposes the KeccakMerkle library (one tree) to the Python tests, with the
///         gas each library call uses measured around the call alone.
contract KeccakMerkleHarness {
    using KeccakMerkle for KeccakMerkle.Tree;

    KeccakMerkle.Tree private _tree;

    /// @notice A leaf was appended at `index`; the tree's root became `root`; the library used `gasUsed`.
    event Appended(uint256 indexed index, bytes32 root, uint256 gasUsed);

    /// @notice Append `leaf` to the tree.
    function append(bytes32 leaf) external returns (uint256 index, bytes32 newRoot) {
        uint256 start = gasleft();
        (index, newRoot) = _tree.append(leaf);
        emit Appended(index, newRoot, start - gasleft());
    }

    /// @notice The tree's root, and the gas the library used to compute it.
    function root() external view returns (bytes32 current, uint256 gasUsed) {
        uint256 start = gasleft();
        current = _tree.root();
        gasUsed = start - gasleft();
    }

    /// @notice The number of appended leaves.
    function size() external view returns (uint256) {
        return _tree.size;
    }

    /// @notice KeccakMerkle.verify, and the gas it used.
    function verify(bytes32 leaf, uint256 index, bytes32[] calldata siblings, bytes32 expectedRoot)
        external
        view
        returns (bool ok, uint256 gasUsed)
    {
        bytes32[] memory path = siblings;
        uint256 start = gasleft();
        ok = KeccakMerkle.verify(leaf, index, path, expectedRoot);
        gasUsed = start - gasleft();
    }

    /// @notice KeccakMerkle.rootOf.
    function rootOf(bytes32 leaf, uint256 index, bytes32[] calldata siblings) external pure returns (bytes32) {
        return KeccakMerkle.rootOf(leaf, index, siblings);
    }

    /// @notice KeccakMerkle.zeroHash.
    function zeroHash(uint256 h) external pure returns (bytes32) {
        return KeccakMerkle.zeroHash(h);
    }

    /// @notice Put the tree in the state it would have after `count` appends of bytes32(0): every
    ///         completed subtree of height h is then zeroHash(h). Lets tests reach a nearly full tree.
    function simulateEmptyLeaves(uint256 count) external {
        _tree.size = count;
        for (uint256 h; h <= KeccakMerkle.DEPTH; ++h) {
            _tree.branch[h] = KeccakMerkle.zeroHash(h);
        }
    }
}

/// @title PoseidonMerkleHarness
/// @notice TESTS ONLY: exposes the PoseidonMerkle library (linked to a deployed PoseidonT3) to the
///         Python tests, with the gas each library call uses measured around the call alone.
contract PoseidonMerkleHarness {
    /// @notice PoseidonMerkle.rootOf, and the gas it used.
    function rootOf(uint256 leaf, uint256 index, uint256[] calldata siblings)
        external
        view
        returns (uint256 root, uint256 gasUsed)
    {
        uint256[] memory path = siblings;
        uint256 start = gasleft();
        root = PoseidonMerkle.rootOf(leaf, index, path);
        gasUsed = start - gasleft();
    }

    /// @notice PoseidonMerkle.verify, and the gas it used.
    function verify(uint256 leaf, uint256 index, uint256[] calldata siblings, uint256 root)
        external
        view
        returns (bool ok, uint256 gasUsed)
    {
        uint256[] memory path = siblings;
        uint256 start = gasleft();
        ok = PoseidonMerkle.verify(leaf, index, path, root);
        gasUsed = start - gasleft();
    }
}
