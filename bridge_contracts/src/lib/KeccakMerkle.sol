// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title KeccakMerkle
/// @notice The aggregated tree: an append-only keccak256 Merkle tree of fixed depth DEPTH (32) into
///         which the L1 Hub appends every settled batch root, and the check of a path against its
///         root that a destination chain makes.
///
///         node  = keccak256(abi.encodePacked(left, right))
///         leaf  = the i-th appended value; bytes32(0) (an empty leaf) after the last one
///         root  = the node at level DEPTH over all 2^DEPTH positions
///         path  = siblings bottom-up: siblings[h] is the sibling at level h (level 0 holds the
///                 leaves); bit h of the index is 1 when the path's node at level h is a right child
///
///         Python twin: proofs.merkle.KeccakTree, keccak_verify.
/// @dev Storage per tree: the number of leaves and, per height h, the most recently completed
///      subtree of height h (the frontier); an append writes one of them. Zero hashes (roots of
///      empty subtrees) are a table in code: cheaper than hashing them again on every call.
library KeccakMerkle {
    /// @notice The tree's depth: it holds up to 2^DEPTH leaves.
    uint256 internal constant DEPTH = 32;
    /// @notice The number of leaves a full tree holds.
    uint256 internal constant CAPACITY = 1 << DEPTH;

    /// @notice zeroHash(h) for h = 0..DEPTH, 32 bytes each: zeroHash(0) = bytes32(0) and
    ///         zeroHash(h + 1) = keccak256(abi.encodePacked(zeroHash(h), zeroHash(h))).
    bytes internal constant ZERO_HASHES =
        hex"0000000000000000000000000000000000000000000000000000000000000000" // 0
        hex"ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5" // 1
        hex"b4c11951957c6f8f642c4af61cd6b24640fec6dc7fc607ee8206a99e92410d30" // 2
        hex"21ddb9a356815c3fac1026b6dec5df3124afbadb485c9ba5a3e3398a04b7ba85" // 3
        hex"e58769b32a1beaf1ea27375a44095a0d1fb664ce2dd358e7fcbfb78c26a19344" // 4
        hex"0eb01ebfc9ed27500cd4dfc979272d1f0913cc9f66540d7e8005811109e1cf2d" // 5
        hex"887c22bd8750d34016ac3c66b5ff102dacdd73f6b014e710b51e8022af9a1968" // 6
        hex"ffd70157e48063fc33c97a050f7f640233bf646cc98d9524c6b92bcf3ab56f83" // 7
        hex"9867cc5f7f196b93bae1e27e6320742445d290f2263827498b54fec539f756af" // 8
        hex"cefad4e508c098b9a7e1d8feb19955fb02ba9675585078710969d3440f5054e0" // 9
        hex"f9dc3e7fe016e050eff260334f18a5d4fe391d82092319f5964f2e2eb7c1c3a5" // 10
        hex"f8b13a49e282f609c317a833fb8d976d11517c571d1221a265d25af778ecf892" // 11
        hex"3490c6ceeb450aecdc82e28293031d10c7d73bf85e57bf041a97360aa2c5d99c" // 12
        hex"c1df82d9c4b87413eae2ef048f94b4d3554cea73d92b0f7af96e0271c691e2bb" // 13
        hex"5c67add7c6caf302256adedf7ab114da0acfe870d449a3a489f781d659e8becc" // 14
        hex"da7bce9f4e8618b6bd2f4132ce798cdc7a60e7e1460a7299e3c6342a579626d2" // 15
        hex"2733e50f526ec2fa19a22b31e8ed50f23cd1fdf94c9154ed3a7609a2f1ff981f" // 16
        hex"e1d3b5c807b281e4683cc6d6315cf95b9ade8641defcb32372f1c126e398ef7a" // 17
        hex"5a2dce0a8a7f68bb74560f8f71837c2c2ebbcbf7fffb42ae1896f13f7c7479a0" // 18
        hex"b46a28b6f55540f89444f63de0378e3d121be09e06cc9ded1c20e65876d36aa0" // 19
        hex"c65e9645644786b620e2dd2ad648ddfcbf4a7e5b1a3a4ecfe7f64667a3f0b7e2" // 20
        hex"f4418588ed35a2458cffeb39b93d26f18d2ab13bdce6aee58e7b99359ec2dfd9" // 21
        hex"5a9c16dc00d6ef18b7933a6f8dc65ccb55667138776f7dea101070dc8796e377" // 22
        hex"4df84f40ae0c8229d0d6069e5c8f39a7c299677a09d367fc7b05e3bc380ee652" // 23
        hex"cdc72595f74c7b1043d0e1ffbab734648c838dfb0527d971b602bc216c9619ef" // 24
        hex"0abf5ac974a1ed57f4050aa510dd9c74f508277b39d7973bb2dfccc5eeb0618d" // 25
        hex"b8cd74046ff337f0a7bf2c8e03e10f642c1886798d71806ab1e888d9e5ee87d0" // 26
        hex"838c5655cb21c6cb83313b5a631175dff4963772cce9108188b34ac87c81c41e" // 27
        hex"662ee4dd2dd7b2bc707961b1e646c4047669dcb6584f0d8d770daf5d7e7deb2e" // 28
        hex"388ab20e2573d171a88108e79d820e98f26c0b84aa8b2f4aa4968dbb818ea322" // 29
        hex"93237c50ba75ee485f4c22adf2f741400bdf8d6a9cc7df7ecae576221665d735" // 30
        hex"8448818bb4ae4562849e949e17ac16e0be16688e156b5cf15e098c627c0056a9" // 31
        hex"27ae5ba08d7291c96c8cbddcc148bf48a6d68c7974b94356f53754ef6171d757"; // 32

    /// @notice An append-only tree; an all-zero struct is the empty tree.
    struct Tree {
        /// @dev The number of appended leaves; the next append gets this index.
        uint256 size;
        /// @dev branch[h]: the root of the most recently completed subtree of height h. Entry
        ///      DEPTH holds the root once the tree is full.
        bytes32[DEPTH + 1] branch;
    }

    /// @notice The tree already holds CAPACITY leaves.
    error TreeFull(uint256 capacity);
    /// @notice The index does not fit a path of `depth` siblings: it must be below 2^depth.
    error IndexOutOfRange(uint256 index, uint256 depth);
    /// @notice A path through this tree has exactly DEPTH siblings.
    error WrongPathLength(uint256 length, uint256 depth);
    /// @notice Empty subtrees have heights 0 to DEPTH.
    error HeightOutOfRange(uint256 height, uint256 maxHeight);

    /// @notice Append `leaf`.
    /// @return index The leaf's position: the number of leaves before it.
    /// @return newRoot The tree's root with the leaf appended.
    function append(Tree storage tree, bytes32 leaf) internal returns (uint256 index, bytes32 newRoot) {
        index = tree.size;
        if (index == CAPACITY) revert TreeFull(CAPACITY);
        tree.size = index + 1;
        bytes32 node = leaf;
        uint256 h;
        // While the path's node is a right child, its left sibling is a completed subtree.
        while ((index >> h) & 1 == 1) {
            node = _hash(tree.branch[h], node);
            unchecked {
                ++h;
            }
        }
        // `node` is now a completed subtree of height h (h = DEPTH: the whole tree).
        tree.branch[h] = node;
        newRoot = _climb(tree, node, index, h);
    }

    /// @notice The tree's current root (the empty tree's root is zeroHash(DEPTH)).
    function root(Tree storage tree) internal view returns (bytes32) {
        uint256 size = tree.size;
        if (size == CAPACITY) return tree.branch[DEPTH];
        // The path of the first empty position `size`, whose leaf is bytes32(0).
        return _climb(tree, bytes32(0), size, 0);
    }

    /// @notice Whether the path leads from `leaf` at `index` to `expectedRoot`.
    /// @dev Reverts unless siblings.length == DEPTH (a shorter path would let an inner node pose
    ///      as a leaf) and index < 2^DEPTH.
    function verify(bytes32 leaf, uint256 index, bytes32[] memory siblings, bytes32 expectedRoot)
        internal
        pure
        returns (bool)
    {
        if (siblings.length != DEPTH) revert WrongPathLength(siblings.length, DEPTH);
        return rootOf(leaf, index, siblings) == expectedRoot;
    }

    /// @notice The root that the path of `leaf` at `index` with `siblings` (bottom-up) leads to,
    ///         for a path of any length; reverts if index >= 2^siblings.length.
    function rootOf(bytes32 leaf, uint256 index, bytes32[] memory siblings) internal pure returns (bytes32 node) {
        uint256 depth = siblings.length;
        if (index >> depth != 0) revert IndexOutOfRange(index, depth);
        assembly ("memory-safe") {
            node := leaf
            let sibling := add(siblings, 0x20)
            for {
                let end := add(sibling, shl(5, depth))
            } lt(sibling, end) {
                sibling := add(sibling, 0x20)
            } {
                // Bit 0 of the (shifted) index is 1: the node is a right child, hashed at 0x20
                // after its sibling at 0x00; else the other way round.
                let right := shl(5, and(index, 1))
                mstore(right, node)
                mstore(xor(right, 0x20), mload(sibling))
                node := keccak256(0x00, 0x40)
                index := shr(1, index)
            }
        }
    }

    /// @notice The root of an empty subtree of height h, for h = 0..DEPTH.
    function zeroHash(uint256 h) internal pure returns (bytes32 z) {
        if (h > DEPTH) revert HeightOutOfRange(h, DEPTH);
        bytes memory zeros = ZERO_HASHES;
        assembly ("memory-safe") {
            z := mload(add(zeros, shl(5, add(h, 1))))
        }
    }

    /// @dev From `node` at level `level` on the path of position `index` up to the root: a right
    ///      child's left sibling is a completed subtree (branch), a left child's right sibling is
    ///      still empty (a zero hash).
    function _climb(Tree storage tree, bytes32 node, uint256 index, uint256 level) private view returns (bytes32 result) {
        bytes memory zeros = ZERO_HASHES;
        assembly ("memory-safe") {
            result := node
            let branch := add(tree.slot, 1) // Tree.branch[h] is in storage slot tree.slot + 1 + h
            for {
                let h := level
            } lt(h, DEPTH) {
                h := add(h, 1)
            } {
                switch and(shr(h, index), 1)
                case 0 {
                    mstore(0x00, result)
                    mstore(0x20, mload(add(zeros, shl(5, add(h, 1)))))
                }
                default {
                    mstore(0x00, sload(add(branch, h)))
                    mstore(0x20, result)
                }
                result := keccak256(0x00, 0x40)
            }
        }
    }

    /// @dev keccak256(abi.encodePacked(left, right)), hashed in the scratch space.
    function _hash(bytes32 left, bytes32 right) private pure returns (bytes32 result) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            result := keccak256(0x00, 0x40)
        }
    }
}
