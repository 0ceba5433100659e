// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {PoseidonT6} from "../generated/PoseidonT6.sol";

/// @title Messages
/// @notice The cross-chain message, how it is identified and hashed, and the proof that it was
///         settled: shared by the Outbox (which emits it), the L1 Hub (deposits, withdrawals) and
///         the Inbox (which executes it).
///
///         leaf      = Poseidon(destChainId, assetId >> 128, assetId & (2^128 - 1), amount, body)
///         body      = uint256(keccak256(abi.encode(sourceChainId, nonce, sender, target, data, assetData))) >> 8
///         messageId = keccak256(abi.encode(uint64 sourceChainId, uint64 nonce))
///         aggLeaf   = keccak256(abi.encode(uint64 sourceChainId, uint64 batchNumber, uint32 depth, uint256 batchRoot))
///         priorityId = keccak256(abi.encode(uint64 sourceChainId, uint64 batchNumber, uint256 index, uint256 leaf))
///
///         A message is settled when its leaf is in a batch tree (PoseidonMerkle) whose root the L1 Hub
///         appended to the aggregated tree (KeccakMerkle) as aggLeaf. An L1 deposit is a "batch" of one
///         message: batchNumber = its deposit nonce, depth 0, batchRoot = its leaf.
///
///         A bounce sends a message's value back where it came from, when its destination will never
///         execute it: the destination's Inbox closes the message (the same nullifier as execution)
///         and its Outbox sends, with no value taken from anyone, the bounce message
///             sourceChainId = the bouncing chain          destChainId = original.sourceChainId
///             nonce         = that Outbox's next nonce    sender      = BOUNCE_SENDER
///             target        = original.sender (the refund address)
///             assetId, amount, assetData = the original's
///             data          = abi.encode(bytes32 originalId)   (exactly 32 bytes)
///         which settles like any message; its destination pays the value to the target without
///         calling it with data (an Inbox refunds it, the Hub finalizes it as a withdrawal).
///         Python twin: bridge_contracts.messages (Message.leaf, message_id, aggregated_leaf,
///         BOUNCE_SENDER, bounce_of).
library Messages {
    struct Message {
        uint64 sourceChainId;
        uint64 destChainId;
        uint64 nonce;
        address sender;
        address target;
        /// @dev 0 when the message carries no value.
        bytes32 assetId;
        uint256 amount;
        bytes data;
        /// @dev What the destination's AssetRouter needs to deploy the bridged token; empty without value.
        bytes assetData;
    }

    /// @notice Where a message's leaf is: position `index` of batch `batchNumber` of its source chain
    ///         (batchSiblings bottom-up, log2(capacity) of them; none for an L1 deposit), whose
    ///         aggregated leaf is at `aggregatedIndex` of the aggregated tree with root `aggregatedRoot`
    ///         (exactly 32 siblings, bottom-up).
    struct MessageProof {
        uint64 batchNumber;
        uint256 index;
        uint256[] batchSiblings;
        uint256 aggregatedIndex;
        bytes32[] aggregatedSiblings;
        bytes32 aggregatedRoot;
    }

    /// @notice One batch's part of an execution round (Inbox.executeBatches): the round's next
    ///         indices.length messages are leaves of batch `batchNumber` of chain `sourceChainId`, a batch
    ///         tree of `depth` levels (log2(capacity); 0 for an L1 deposit), at positions `indices`
    ///         (strictly increasing, each below 2^depth). `nodes` is the multiproof of those leaves:
    ///         the batch tree nodes that are neither one of them nor computed from them, level by level
    ///         bottom-up, left to right within a level (PoseidonMerkle.rootOfMany). The batch's aggregated
    ///         leaf is at `aggregatedIndex` of the aggregated tree (exactly 32 siblings, bottom-up); the
    ///         root is the round's.
    struct BatchProof {
        uint64 sourceChainId;
        uint64 batchNumber;
        uint32 depth;
        uint256[] indices;
        uint256[] nodes;
        uint256 aggregatedIndex;
        bytes32[] aggregatedSiblings;
    }

    /// @notice What L1 learns of a forced message (Hub.requestPriorityOp): its source, and the fields
    ///         of its leaf, to check that leaf in the source's settled batch. Its body is a hash:
    ///         sender, target, nonce, data and assetData stay hidden.
    struct LeafFields {
        uint64 sourceChainId;
        uint64 destChainId;
        bytes32 assetId;
        uint256 amount;
        uint256 body;
    }

    uint256 private constant LOW_128 = type(uint128).max;

    /// @notice The sender of every bounce message: an address no one holds the key of, so only an
    ///         Outbox's sendBounce ever sends from it.
    address internal constant BOUNCE_SENDER = address(uint160(uint256(keccak256("xrelay.bounce"))));

    /// @notice A bounce message's data is not one 32-byte word (no Outbox sends such a message).
    error BadBounceData(uint256 length);

    /// @notice Whether the message is a bounce: value coming home, sent by BOUNCE_SENDER.
    function isBounce(Message calldata message) internal pure returns (bool) {
        return message.sender == BOUNCE_SENDER;
    }

    /// @notice The id of the message a bounce message sends back the value of (its data).
    function bouncedIdOf(Message calldata message) internal pure returns (bytes32) {
        if (message.data.length != 32) revert BadBounceData(message.data.length);
        return bytes32(message.data);
    }

    /// @notice The message's leaf, as the batch circuit computes it.
    function leafOf(Message memory message) internal pure returns (uint256) {
        return leafOf(message.destChainId, message.assetId, message.amount, bodyOf(message));
    }

    /// @notice leafOf for a message in calldata (no copy of the whole message to memory).
    function leafOfCalldata(Message calldata message) internal pure returns (uint256) {
        uint256 body = uint256(
            keccak256(
                abi.encode(
                    message.sourceChainId, message.nonce, message.sender, message.target, message.data, message.assetData
                )
            )
        ) >> 8;
        return leafOf(message.destChainId, message.assetId, message.amount, body);
    }

    /// @notice The message's body: the hash of everything in it that is not a field of its leaf.
    function bodyOf(Message memory message) internal pure returns (uint256) {
        return uint256(
            keccak256(
                abi.encode(
                    message.sourceChainId, message.nonce, message.sender, message.target, message.data, message.assetData
                )
            )
        ) >> 8;
    }

    /// @notice The leaf of a message from its leaf fields: Poseidon(destChainId, assetId >> 128,
    ///         assetId & (2^128 - 1), amount, body).
    function leafOf(uint64 destChainId, bytes32 assetId, uint256 amount, uint256 body) internal pure returns (uint256) {
        uint256 asset = uint256(assetId);
        return PoseidonT6.hash([uint256(destChainId), asset >> 128, asset & LOW_128, amount, body]);
    }

    /// @notice A forced message's priority id: where its leaf is (batch `batchNumber` of its source
    ///         chain, position `index`) and the leaf itself, which L1 checked there.
    ///         keccak256(abi.encode(uint64 sourceChainId, uint64 batchNumber, uint256 index, uint256 leaf))
    function priorityIdOf(uint64 sourceChainId, uint64 batchNumber, uint256 index, uint256 leaf)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(sourceChainId, batchNumber, index, leaf));
    }

    /// @notice A priority queue's rolling hash after one more operation: keccak256(abi.encode(hash,
    ///         priorityId)), starting from 0 for the empty queue.
    function nextPriorityHash(bytes32 hash, bytes32 priorityId) internal pure returns (bytes32) {
        return keccak256(abi.encode(hash, priorityId));
    }

    /// @notice What a bounce brought home (Inbox.refunded): keccak256(abi.encode(uint64 bouncingChainId,
    ///         bytes32 assetId, uint256 amount)).
    function refundOf(uint64 bouncingChainId, bytes32 assetId, uint256 amount) internal pure returns (bytes32) {
        return keccak256(abi.encode(bouncingChainId, assetId, amount));
    }

    /// @notice The message's unique id: its source chain and its nonce there.
    function idOf(uint64 sourceChainId, uint64 nonce) internal pure returns (bytes32) {
        return keccak256(abi.encode(sourceChainId, nonce));
    }

    /// @notice The leaf the L1 Hub appends to the aggregated tree for batch `batchNumber` of chain
    ///         `sourceChainId`, a batch tree of `depth` levels with root `batchRoot`.
    function aggregatedLeaf(uint64 sourceChainId, uint64 batchNumber, uint32 depth, uint256 batchRoot)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(sourceChainId, batchNumber, depth, batchRoot));
    }
}
