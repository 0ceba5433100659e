// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {AssetRouter} from "./AssetRouter.sol";
import {PoseidonT3} from "./generated/PoseidonT3.sol";
import {Messages} from "./lib/Messages.sol";

/// @title Outbox
/// @notice Where every message leaving this chain starts. It numbers the message, takes its value
///         through the AssetRouter (lock or burn), computes the message leaf and folds it into the
///         rolling outbox hash that the chain's batch proofs start and end on, and emits the whole
///         message: the chain's daemon batches what this contract emits, and the batch proof shows
///         that the batch hashes from one outboxHash to the next.
///
///         leaf       = Poseidon(destChainId, assetId >> 128, assetId & (2^128 - 1), amount, body)
///         body       = uint256(keccak256(abi.encode(sourceChainId, nonce, sender, target, data, assetData))) >> 8
///         outboxHash = Poseidon(outboxHash, leaf), starting at 0
///
///         The chain's Inbox sends one more kind of message, a bounce (sendBounce): the value of a
///         message this chain will never execute goes back to its source, to its sender, as a message
///         from Messages.BOUNCE_SENDER (format in lib/Messages.sol). It is numbered, hashed and emitted
///         like every other message, but takes no value (the original's was never released or minted
///         here) and goes to the original's source whether or not it is a destination of this chain
///         (L1 included: a bounced deposit goes back as a withdrawal).
///
///         The message struct and its hashing are in lib/Messages.sol, shared with the Hub and Inbox.
///         Every field element is below the BN254 scalar field: chain ids are 64-bit, the asset id is
///         split into 128-bit halves, amounts are refused from 2^128 up, body keeps 248 bits.
contract Outbox is Ownable2Step {
    uint256 public constant MAX_AMOUNT = type(uint128).max;

    AssetRouter public immutable router;
    uint64 public immutable chainId;

    /// @notice The nonce the next message gets; also the number of messages sent so far.
    uint64 public nonce;
    /// @notice Poseidon rolling hash over the leaves of every message sent so far, in nonce order.
    uint256 public outboxHash;
    mapping(uint64 chainId => bool) public isDestination;

    event DestinationSet(uint64 indexed chainId, bool allowed);
    event MessageSent(
        uint64 indexed destChainId, uint64 indexed nonce, uint256 leaf, uint256 outboxHash, Messages.Message message
    );

    error ChainIdTooLarge(uint256 chainId);
    error SelfDestination(uint64 chainId);
    error UnknownDestination(uint64 destChainId);
    error ZeroTarget();
    error ZeroAmount();
    error AmountTooLarge(uint256 amount, uint256 max);
    error OnlyInbox(address caller);

    constructor(AssetRouter router_, address owner_) Ownable(owner_) {
        if (block.chainid > type(uint64).max) revert ChainIdTooLarge(block.chainid);
        router = router_;
        chainId = uint64(block.chainid);
    }

    /// @notice Allows or forbids sending to a chain (the chain's peerings, set by its operator).
    function setDestination(uint64 destChainId, bool allowed) external onlyOwner {
        if (destChainId == chainId) revert SelfDestination(destChainId);
        isDestination[destChainId] = allowed;
        emit DestinationSet(destChainId, allowed);
    }

    /// @notice Sends a message without value: `target` is called with `data` on the destination.
    function send(uint64 destChainId, address target, bytes calldata data)
        external
        returns (uint64 messageNonce, uint256 leaf)
    {
        _checkRoute(destChainId, target);
        return _send(destChainId, msg.sender, target, data, bytes32(0), 0, "");
    }

    /// @notice Sends a message carrying `amount` of an asset, taken from the sender by the router:
    ///         the native token comes as msg.value, an origin ERC-20 needs the router's allowance.
    function sendWithAsset(uint64 destChainId, address target, bytes calldata data, bytes32 assetId, uint256 amount)
        external
        payable
        returns (uint64 messageNonce, uint256 leaf)
    {
        if (amount == 0) revert ZeroAmount();
        if (amount > MAX_AMOUNT) revert AmountTooLarge(amount, MAX_AMOUNT);
        _checkRoute(destChainId, target);
        // The value is taken before the message is numbered: a token that calls back into send() from
        // transferFrom gets the earlier nonce, and nonce order, hash order and event order still agree
        // (a nested sendWithAsset is refused by the router's reentrancy guard).
        bytes memory assetData = router.lockOrBurn{value: msg.value}(assetId, msg.sender, amount);
        return _send(destChainId, msg.sender, target, data, assetId, amount, assetData);
    }

    /// @notice Sends the bounce of `original`, a message to this chain that its Inbox closed without
    ///         executing it: the same value back to original.sourceChainId, to original.sender, from
    ///         Messages.BOUNCE_SENDER, with data abi.encode(original's id). Only the chain's Inbox may
    ///         call it (it has checked that `original` was settled here and closes it); nothing is
    ///         locked or burned, and the destination need not be one of this chain's.
    function sendBounce(Messages.Message calldata original) external returns (uint64 messageNonce, uint256 leaf) {
        if (msg.sender != router.inbox()) revert OnlyInbox(msg.sender);
        uint64 source = original.sourceChainId;
        return _send(
            source,
            Messages.BOUNCE_SENDER,
            original.sender,
            abi.encode(Messages.idOf(source, original.nonce)),
            original.assetId,
            original.amount,
            original.assetData
        );
    }

    function _checkRoute(uint64 destChainId, address target) private view {
        if (!isDestination[destChainId]) revert UnknownDestination(destChainId);
        if (target == address(0)) revert ZeroTarget();
    }

    function _send(
        uint64 destChainId,
        address sender,
        address target,
        bytes memory data,
        bytes32 assetId,
        uint256 amount,
        bytes memory assetData
    ) private returns (uint64 messageNonce, uint256 leaf) {
        messageNonce = nonce++;
        Messages.Message memory message =
            Messages.Message(chainId, destChainId, messageNonce, sender, target, assetId, amount, data, assetData);
        leaf = leafOf(message);
        uint256 rolled = PoseidonT3.hash([outboxHash, leaf]);
        outboxHash = rolled;
        emit MessageSent(destChainId, messageNonce, leaf, rolled, message);
    }

    /// @notice The message's leaf, as the batch circuit and the destination's Inbox compute it.
    function leafOf(Messages.Message memory message) public pure returns (uint256) {
        return Messages.leafOf(message);
    }
}
