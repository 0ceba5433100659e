// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {AssetRouter} from "./AssetRouter.sol";
import {Outbox} from "./Outbox.sol";
import {KeccakMerkle} from "./lib/KeccakMerkle.sol";
import {Messages} from "./lib/Messages.sol";
import {PoseidonMerkle} from "./lib/PoseidonMerkle.sol";

/// @title Inbox
/// @notice Where every message arriving on this chain ends. It executes a message once it is
///         proven settled on L1: its leaf is in a batch tree whose aggregated leaf is in an
///         aggregated tree with a root that the chain's operator imported from the L1 Hub.
///
///         batchRoot = PoseidonMerkle.rootOf(leafOf(message), proof.index, proof.batchSiblings)
///         aggLeaf   = aggregatedLeaf(message.sourceChainId, proof.batchNumber, batchSiblings.length, batchRoot)
///         KeccakMerkle.rootOf(aggLeaf, proof.aggregatedIndex, proof.aggregatedSiblings) == proof.aggregatedRoot
///
///         The depth (the batch path's length) is part of the aggregated leaf, so a path of another
///         length than the batch's never reaches a root; an L1 deposit is a batch of depth 0.
///
///         A round of messages grouped by batch (executeBatches) is checked the same way, but once
///         per batch: the group's leaves and one multiproof (PoseidonMerkle.rootOfMany: each leaf bound
///         to its position, every node of the batch tree hashed once) give the batch root, whose
///         aggregated leaf one aggregated path puts under the round's root. A group that fails rejects
///         all of its items, and none of the other groups'.
///
///         Execution is never half-applied: the nullifier executed[id] is set, then one inner call
///         of this contract to itself (applyMessage) releases or mints the value through the
///         AssetRouter and calls the target with the message's data; native value is released to
///         this Inbox and forwarded as the call's msg.value, a token is released or minted to the
///         target. If that inner call reverts, nothing of it is applied, the nullifier is cleared,
///         MessageFailed is emitted and execute returns false: the message can be executed again.
///         During the target call, context() tells the target who sent the message and what it carries.
///         A message may not call this Inbox, its AssetRouter or its Outbox (each trusts the Inbox's own
///         calls): it fails with ForbiddenTarget(target) (and can be bounced).
///         An inner call that ran out of gas reverts the whole transaction (NotEnoughGas()) instead:
///         a message is never recorded as failed for want of gas.
///
///         A message this chain will never execute (its peering rules refuse it, or its operator
///         gives up on it) is bounced by the owner instead (bounce, bounceManyWithRoot): after every
///         check of execute it is closed with the same nullifier, executed[id] (bounced[id] says it was
///         bounced), so no message is both executed and bounced; nothing is released or minted, and
///         if it carries value the chain's Outbox sends the bounce message (sendBounce; format in
///         lib/Messages.sol) that takes the value back to its source, to its sender. A bounce message
///         is never bounced itself (CannotBounceABounce): a refund that fails stays failed and can be
///         executed again.
///
///         Executing a bounce message (sender Messages.BOUNCE_SENDER) is a refund: its value is
///         released or minted to the target (native value: released to this Inbox and sent on with
///         empty calldata), the target is never called with the message's data, and there is no
///         context (context() reverts, also in a refund nested in another message's execution);
///         MessageRefunded is emitted besides MessageExecuted. A refund that reverts fails like any
///         execution (MessageFailed, retryable), e.g. NativeRefundFailed: the target refused the
///         native token, or used up the REFUND_GAS it is sent with (so a refund target can never
///         starve the transaction it is in: a forced refund is always processed).
///
///         Priority operations (messages forced through the L1 Hub's priority queue of this chain) are
///         processed by the owner in queue order (processPriorityOps): each is executed as above but
///         with a fixed gas budget (PRIORITY_EXECUTION_GAS), or bounced, or, when its message was
///         executed or bounced already, only counted (CLOSED). A failed execution counts as processed
///         too (the message stays retryable). The Inbox keeps
///         the cursor (operations processed) and the queue's rolling hash after them, which the
///         operator reports to L1 with every batch; L1 refuses the chain's batches, and anyone may
///         freeze it, while an operation past its deadline is beyond the reported cursor.
contract Inbox is Ownable2Step {
    /// @notice Batch trees are at most 2^10 = 1024 leaves deep (the largest batch capacity).
    uint256 public constant MAX_BATCH_DEPTH = 10;
    /// @notice Stand-in address for the native base token (as in AssetRouter).
    address public constant NATIVE_TOKEN = address(1);

    /// @notice The gas a native refund is sent with: a plain payment, never a call with data.
    uint256 public constant REFUND_GAS = 100_000;
    /// @notice executeMany's outcomes, per message.
    uint8 public constant EXECUTED = 0;
    uint8 public constant FAILED = 1;
    uint8 public constant REJECTED = 2;
    /// @notice bounceManyWithRoot's outcome of a message bounced (else REJECTED).
    uint8 public constant BOUNCED = 3;
    /// @notice The bounce nonce of a message bounced without value: no bounce message was sent.
    uint64 public constant NO_BOUNCE_MESSAGE = type(uint64).max;
    /// @notice processPriorityOps's outcome of an operation whose message was executed or bounced
    ///         before: counted as processed, nothing done again.
    uint8 public constant CLOSED = 4;
    /// @notice The gas a priority operation's execution gets, whatever the transaction's limit: one that
    ///         needs more fails (and can be executed again with execute, which passes on all the gas).
    uint256 public constant PRIORITY_EXECUTION_GAS = 5_000_000;
    /// @notice The most bytes of a failed priority execution's revert reason that MessageFailed keeps.
    uint256 public constant MAX_REASON_BYTES = 1024;

    /// @notice One operation of a priority round: the priority id L1 queued it under, its message and
    ///         proof, and a reason to bounce it instead (empty: execute it).
    struct PriorityItem {
        bytes32 priorityId;
        Messages.Message message;
        Messages.MessageProof proof;
        string bounceReason;
    }

    AssetRouter public immutable router;
    uint64 public immutable chainId;
    /// @notice The L1's chain id: the source chain of deposits.
    uint64 public immutable l1ChainId;
    /// @notice The asset id of this chain's native token: the one asset the router releases as value.
    bytes32 public immutable nativeAssetId;

    /// @notice Aggregated roots of the L1 Hub that the owner imported.
    mapping(bytes32 root => bool) public importedRoots;
    /// @notice The nullifiers: messages executed or bounced, by message id.
    mapping(bytes32 messageId => bool) public executed;
    /// @notice Which of the closed messages were bounced, not executed.
    mapping(bytes32 messageId => bool) public bounced;
    /// @notice What came home here for a message this chain sent (a bounce message executed), by the id
    ///         of the message bounced: keccak256(abi.encode(uint64 bouncing chain, bytes32 assetId,
    ///         uint256 amount)), 0 if nothing did. A sender contract checks the chain it sent to and the
    ///         value it sent before it gives the value back (any chain can settle a bounce naming any id).
    mapping(bytes32 bouncedId => bytes32) public refunded;
    /// @notice The number of priority operations processed: the index of the next one in this chain's
    ///         L1 priority queue.
    uint64 public priorityCursor;
    /// @notice The priority queue's rolling hash after the processed operations (Messages.nextPriorityHash).
    bytes32 public priorityHash;

    /// @dev The chain's Outbox (router.outbox()), kept once the router is connected (it never changes).
    address private _outbox;

    // The message whose target is being called; restored after a nested execution.
    bool private transient _active;
    uint64 private transient _sourceChainId;
    address private transient _sender;
    bytes32 private transient _assetId;
    uint256 private transient _amount;

    event RootImported(bytes32 indexed root);
    event MessageExecuted(
        bytes32 indexed id, uint64 indexed sourceChainId, uint64 nonce, address target, bytes32 assetId, uint256 amount
    );
    event MessageFailed(bytes32 indexed id, uint64 indexed sourceChainId, uint64 nonce, bytes reason);
    event MessageRejected(bytes32 indexed id, bytes reason);
    /// @dev bounceNonce: the bounce message's nonce in this chain's Outbox; NO_BOUNCE_MESSAGE without value.
    event MessageBounced(
        bytes32 indexed id, uint64 indexed sourceChainId, uint64 nonce, uint64 bounceNonce, uint256 amount, string reason
    );
    /// @dev outcome: EXECUTED, FAILED, BOUNCED or CLOSED; rollingHash: the queue's hash after it.
    event PriorityOpProcessed(
        uint64 indexed index, bytes32 indexed id, bytes32 priorityId, uint8 outcome, bytes32 rollingHash
    );
    /// @dev A bounce message executed: `amount` of `assetId` back to `to`, the bounced message's sender.
    event MessageRefunded(bytes32 indexed id, bytes32 indexed bouncedId, address to, bytes32 assetId, uint256 amount);

    error ChainIdTooLarge(uint256 chainId);
    error WrongDestination(uint64 destChainId);
    error SourceIsThisChain();
    error UnknownRoot(bytes32 root);
    error BatchTooDeep(uint256 depth);
    error BadPath();
    error AlreadyExecuted(bytes32 id);
    error LengthMismatch(uint256 messages, uint256 proofs);
    error ReasonsMismatch(uint256 messages, uint256 reasons);
    error CannotBounceABounce(bytes32 id);
    error NativeRefundFailed(address to, uint256 amount);
    error OnlySelf(address caller);
    error OnlyRouter(address caller);
    error NoMessage();
    /// @notice A message may not call this Inbox, its AssetRouter or its chain's Outbox: each takes the
    ///         Inbox's own calls as genuine (applyMessage, releaseOrMint, sendBounce).
    error ForbiddenTarget(address target);
    /// @notice executeBatches: batch group `group` names no message.
    error EmptyBatch(uint256 group);
    error NotEnoughGas();
    error StalePriorityRound(uint64 cursor, uint64 fromIndex);
    error WrongPriorityOp(uint64 cursor, bytes32 named, bytes32 computed);

    constructor(AssetRouter router_, address owner_, uint64 l1ChainId_) Ownable(owner_) {
        if (block.chainid > type(uint64).max) revert ChainIdTooLarge(block.chainid);
        router = router_;
        chainId = uint64(block.chainid);
        l1ChainId = l1ChainId_;
        nativeAssetId = keccak256(abi.encode(block.chainid, NATIVE_TOKEN));
    }

    /// @notice Native value arrives only from the router, released for a message being executed.
    receive() external payable {
        if (msg.sender != address(router)) revert OnlyRouter(msg.sender);
    }

    /// @notice Accepts an aggregated root of the L1 Hub (the owner, the chain's operator, reads it
    ///         there). Idempotent: importing a root again changes nothing.
    function importRoot(bytes32 root) external onlyOwner {
        _importRoot(root);
    }

    /// @notice Executes a settled message: see the contract's notice. Anyone may send it.
    /// @return success true if the target call succeeded (MessageExecuted); false if it reverted
    ///         (MessageFailed; nothing applied, the message may be executed again).
    function execute(Messages.Message calldata message, Messages.MessageProof calldata proof)
        external
        returns (bool success)
    {
        return _run(_verify(message, proof), message);
    }

    /// @notice Executes each message with its proof; one item never reverts the others.
    /// @return outcomes per message: EXECUTED (0), FAILED (1: the target reverted; retryable) or
    ///         REJECTED (2: execute itself reverted, e.g. a bad proof or a message already executed;
    ///         MessageRejected carries the reason).
    function executeMany(Messages.Message[] calldata messages, Messages.MessageProof[] calldata proofs)
        public
        returns (uint8[] memory outcomes)
    {
        if (messages.length != proofs.length) revert LengthMismatch(messages.length, proofs.length);
        outcomes = new uint8[](messages.length);
        for (uint256 i; i < messages.length; ++i) {
            uint256 gasBefore = gasleft();
            try this.execute(messages[i], proofs[i]) returns (bool ok) {
                outcomes[i] = ok ? EXECUTED : FAILED;
            } catch (bytes memory reason) {
                _checkNotStarved(gasBefore, reason);
                outcomes[i] = REJECTED;
                emit MessageRejected(Messages.idOf(messages[i].sourceChainId, messages[i].nonce), reason);
            }
        }
    }

    /// @notice Executes a round of settled messages against one imported aggregated root, grouped by
    ///         batch: `batches[g]` proves the next batches[g].indices.length messages (in order) to be
    ///         leaves of one batch, with one multiproof of that batch tree and one aggregated path for
    ///         them all (Messages.BatchProof), so that each batch tree node and aggregated path is
    ///         hashed once per round, not once per message.
    ///
    ///         A group whose proof does not reach `root` (a message of another source chain than the
    ///         group's, a bad multiproof, a wrong depth, a bad aggregated path) or that is too deep or
    ///         from this chain has every item REJECTED with that reason (BadPath(), BatchTooDeep(depth),
    ///         SourceIsThisChain()); the other groups are not affected. In a group that verifies, an
    ///         item for another chain (WrongDestination) or executed already (AlreadyExecuted, also
    ///         earlier in this round) is REJECTED alone; every other item is executed as execute does
    ///         (EXECUTED, or FAILED when its target reverts: nothing applied, retryable).
    /// @return outcomes per message, as executeMany's.
    function executeBatches(
        bytes32 root,
        Messages.Message[] calldata messages,
        Messages.BatchProof[] calldata batches
    ) public returns (uint8[] memory outcomes) {
        if (!importedRoots[root]) revert UnknownRoot(root);
        uint256 total;
        for (uint256 g; g < batches.length; ++g) {
            uint256 count = batches[g].indices.length;
            if (count == 0) revert EmptyBatch(g);
            total += count;
        }
        if (total != messages.length) revert LengthMismatch(messages.length, total);
        outcomes = new uint8[](messages.length);
        uint256 first;
        for (uint256 g; g < batches.length; ++g) {
            Messages.BatchProof calldata batch = batches[g];
            uint256 end = first + batch.indices.length;
            bytes memory refusal = _checkBatch(root, messages, first, batch);
            for (uint256 i = first; i < end; ++i) {
                outcomes[i] = _executeVerified(messages[i], refusal);
            }
            first = end;
        }
    }

    /// @notice The operator's round by batch: imports `root` (if it is new), then executeBatches.
    function executeBatchesWithRoot(
        bytes32 root,
        Messages.Message[] calldata messages,
        Messages.BatchProof[] calldata batches
    ) external onlyOwner returns (uint8[] memory outcomes) {
        _importRoot(root);
        return executeBatches(root, messages, batches);
    }

    /// @notice The operator's round with a proof per message: imports `root` (if it is new) and
    ///         executes the messages against it, in one transaction instead of two (executeBatchesWithRoot
    ///         costs less when several messages share a batch).
    function executeManyWithRoot(
        bytes32 root,
        Messages.Message[] calldata messages,
        Messages.MessageProof[] calldata proofs
    ) external onlyOwner returns (uint8[] memory outcomes) {
        _importRoot(root);
        return executeMany(messages, proofs);
    }

    /// @notice Closes a settled message without executing it and sends its value, if any, back to
    ///         its source and sender (see the contract's notice). Only the owner, the chain's operator.
    ///         Every check of execute applies (a message executed or bounced already: AlreadyExecuted);
    ///         a bounce message is never bounced (CannotBounceABounce).
    /// @param reason Why (e.g. the peering rule that refuses it), for MessageBounced.
    /// @return bounceNonce The bounce message's nonce in this chain's Outbox; a message without value
    ///         is only closed, no message is sent, and it is NO_BOUNCE_MESSAGE (2^64 - 1).
    function bounce(Messages.Message calldata message, Messages.MessageProof calldata proof, string calldata reason)
        external
        onlyOwner
        returns (uint64 bounceNonce)
    {
        return _bounce(message, proof, reason);
    }

    /// @notice The operator's bounce round: imports `root` (if it is new) and bounces each message
    ///         with its proof and reason; one item never reverts the others.
    /// @return outcomes per message: BOUNCED (3) or REJECTED (2: the bounce reverted, e.g. a bad
    ///         proof or a message already executed; MessageRejected carries the reason).
    function bounceManyWithRoot(
        bytes32 root,
        Messages.Message[] calldata messages,
        Messages.MessageProof[] calldata proofs,
        string[] calldata reasons
    ) external onlyOwner returns (uint8[] memory outcomes) {
        if (messages.length != proofs.length) revert LengthMismatch(messages.length, proofs.length);
        if (messages.length != reasons.length) revert ReasonsMismatch(messages.length, reasons.length);
        _importRoot(root);
        outcomes = new uint8[](messages.length);
        for (uint256 i; i < messages.length; ++i) {
            uint256 gasBefore = gasleft();
            try this.bounceOne(messages[i], proofs[i], reasons[i]) {
                outcomes[i] = BOUNCED;
            } catch (bytes memory reason) {
                _checkNotStarved(gasBefore, reason);
                outcomes[i] = REJECTED;
                emit MessageRejected(Messages.idOf(messages[i].sourceChainId, messages[i].nonce), reason);
            }
        }
    }

    /// @notice One item of bounceManyWithRoot, in a call of its own so that its revert undoes only
    ///         it. Only this Inbox may call it (the owner's round already checked the owner).
    function bounceOne(Messages.Message calldata message, Messages.MessageProof calldata proof, string calldata reason)
        external
        returns (uint64 bounceNonce)
    {
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        return _bounce(message, proof, reason);
    }

    /// @notice The owner's priority round: imports `root` (if it is new) and processes the next
    ///         operations of this chain's priority queue, in order, the first being operation
    ///         `fromIndex` (StalePriorityRound otherwise: a round sent twice never runs twice). Each item
    ///         names the operation's priority id on L1, which its message and proof must give
    ///         (WrongPriorityOp otherwise); every check of execute applies (but AlreadyExecuted: that is
    ///         CLOSED), and one that fails reverts the round, so the cursor never skips an operation.
    ///         The message is executed with exactly PRIORITY_EXECUTION_GAS, whatever the
    ///         transaction's limit (NotEnoughGas when less is left), or bounced when its bounceReason
    ///         is not empty, or only counted when it was executed or bounced before.
    /// @return outcomes per operation: EXECUTED, FAILED (the execution reverted or ran out of its gas;
    ///         retryable), BOUNCED or CLOSED.
    function processPriorityOps(bytes32 root, uint64 fromIndex, PriorityItem[] calldata items)
        external
        onlyOwner
        returns (uint8[] memory outcomes)
    {
        uint64 cursor = priorityCursor;
        if (fromIndex != cursor) revert StalePriorityRound(cursor, fromIndex);
        _importRoot(root);
        outcomes = new uint8[](items.length);
        bytes32 rolling = priorityHash;
        for (uint256 i; i < items.length; ++i) {
            PriorityItem calldata item = items[i];
            (bytes32 id, bytes32 priorityId) = _checkPriorityItem(item);
            uint8 outcome;
            if (executed[id]) {
                outcome = CLOSED;
            } else if (bytes(item.bounceReason).length != 0) {
                _close(id, item.message, item.bounceReason);
                outcome = BOUNCED;
            } else {
                outcome = _runPriority(id, item.message) ? EXECUTED : FAILED;
            }
            rolling = Messages.nextPriorityHash(rolling, priorityId);
            emit PriorityOpProcessed(cursor, id, priorityId, outcome, rolling);
            outcomes[i] = outcome;
            ++cursor;
        }
        (priorityCursor, priorityHash) = (cursor, rolling);
    }

    /// @notice The message whose target is being called: only during a target call.
    function context() external view returns (uint64 sourceChainId, address sender, bytes32 assetId, uint256 amount) {
        if (!_active) revert NoMessage();
        return (_sourceChainId, _sender, _assetId, _amount);
    }

    /// @notice The all-or-nothing part of execute: value, then the target call. Only this Inbox may
    ///         call it (execute's inner call); a revert in it undoes all of it.
    function applyMessage(Messages.Message calldata message) external {
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        if (Messages.isBounce(message)) {
            _refund(message);
            return;
        }
        _checkTarget(message.target);
        uint256 amount = message.amount;
        uint256 value;
        if (amount != 0) {
            if (message.assetId == nativeAssetId) {
                router.releaseOrMint(message.assetId, address(this), amount, message.assetData);
                value = amount;
            } else {
                router.releaseOrMint(message.assetId, message.target, amount, message.assetData);
            }
        }
        // Save the context of an execution this one is nested in (a target that executes another
        // message), and restore it afterwards.
        (bool outerActive, uint64 outerSource, address outerSender, bytes32 outerAsset, uint256 outerAmount) =
            (_active, _sourceChainId, _sender, _assetId, _amount);
        (_active, _sourceChainId, _sender, _assetId, _amount) =
            (true, message.sourceChainId, message.sender, message.assetId, amount);
        (bool ok, bytes memory reason) = message.target.call{value: value}(message.data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(reason, 0x20), mload(reason))
            }
        }
        (_active, _sourceChainId, _sender, _assetId, _amount) =
            (outerActive, outerSource, outerSender, outerAsset, outerAmount);
    }

    /// @dev applyMessage for a bounce message: the value to the target, which is not called with data
    ///      and sees no context (that of an execution this refund is nested in is restored afterwards).
    function _refund(Messages.Message calldata message) private {
        bytes32 bouncedId = Messages.bouncedIdOf(message);
        refunded[bouncedId] = Messages.refundOf(message.sourceChainId, message.assetId, message.amount);
        uint256 amount = message.amount;
        if (amount != 0) {
            bool outerActive = _active;
            _active = false;
            if (message.assetId == nativeAssetId) {
                router.releaseOrMint(message.assetId, address(this), amount, message.assetData);
                (bool ok,) = message.target.call{value: amount, gas: REFUND_GAS}("");
                if (!ok) revert NativeRefundFailed(message.target, amount);
            } else {
                router.releaseOrMint(message.assetId, message.target, amount, message.assetData);
            }
            _active = outerActive;
        }
        emit MessageRefunded(
            Messages.idOf(message.sourceChainId, message.nonce), bouncedId, message.target, message.assetId, amount
        );
    }

    /// @dev An item of executeBatches whose group was checked (`refusal`: why the group is rejected;
    ///      empty if it verified): REJECTED with the group's refusal, or its own (WrongDestination,
    ///      AlreadyExecuted), else executed.
    function _executeVerified(Messages.Message calldata message, bytes memory refusal) private returns (uint8) {
        bytes32 id = Messages.idOf(message.sourceChainId, message.nonce);
        if (refusal.length == 0) {
            if (message.destChainId != chainId) {
                refusal = abi.encodeWithSelector(WrongDestination.selector, message.destChainId);
            } else if (executed[id]) {
                refusal = abi.encodeWithSelector(AlreadyExecuted.selector, id);
            } else {
                return _run(id, message) ? EXECUTED : FAILED;
            }
        }
        emit MessageRejected(id, refusal);
        return REJECTED;
    }

    /// @dev Every check of a batch group of executeBatches but the per-message ones (destination,
    ///      nullifier) for its messages, messages[first:first + batch.indices.length]: empty if they are
    ///      leaves of the batch that its aggregated path puts under `root`, else the error (ABI-encoded)
    ///      that rejects all of them. Reverts only for want of gas.
    function _checkBatch(
        bytes32 root,
        Messages.Message[] calldata messages,
        uint256 first,
        Messages.BatchProof calldata batch
    ) private view returns (bytes memory refusal) {
        uint64 source = batch.sourceChainId;
        uint256 depth = batch.depth;
        if (depth > MAX_BATCH_DEPTH) return abi.encodeWithSelector(BatchTooDeep.selector, depth);
        if (source == chainId) return abi.encodeWithSelector(SourceIsThisChain.selector);
        uint256 count = batch.indices.length;
        uint256[] memory leaves = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            Messages.Message calldata message = messages[first + i];
            // A message of another chain is no leaf of this batch; an amount outside the field is no
            // leaf at all (and Poseidon would revert on it).
            if (message.sourceChainId != source || message.amount >= PoseidonMerkle.FIELD_SIZE) {
                return abi.encodeWithSelector(BadPath.selector);
            }
            leaves[i] = Messages.leafOfCalldata(message);
        }
        (bool ok, uint256 batchRoot) = PoseidonMerkle.rootOfMany(leaves, batch.indices, batch.nodes, depth);
        if (!ok) return abi.encodeWithSelector(BadPath.selector);
        bytes32 aggLeaf = Messages.aggregatedLeaf(source, batch.batchNumber, uint32(depth), batchRoot);
        if (
            batch.aggregatedSiblings.length != KeccakMerkle.DEPTH || batch.aggregatedIndex >> KeccakMerkle.DEPTH != 0
                || KeccakMerkle.rootOf(aggLeaf, batch.aggregatedIndex, batch.aggregatedSiblings) != root
        ) return abi.encodeWithSelector(BadPath.selector);
    }

    /// @dev Executes a verified message (nullifier set, value and target call all or nothing): true if
    ///      it was executed, false if its inner call reverted (nothing applied, retryable).
    function _run(bytes32 id, Messages.Message calldata message) private returns (bool) {
        executed[id] = true;
        if (message.amount == 0 && !Messages.isBounce(message)) return _runPlain(id, message);
        uint256 gasBefore = gasleft();
        try this.applyMessage(message) {
            emit MessageExecuted(id, message.sourceChainId, message.nonce, message.target, message.assetId, message.amount);
            return true;
        } catch (bytes memory reason) {
            _checkNotStarved(gasBefore, reason);
            executed[id] = false;
            emit MessageFailed(id, message.sourceChainId, message.nonce, reason);
            return false;
        }
    }

    /// @dev _run for a message without value that is not a bounce: its one effect is the target call, so
    ///      it is made from here, without applyMessage's inner call (a reverted target call undoes itself,
    ///      and the context is restored here). Its return data is never copied; its revert reason is.
    function _runPlain(bytes32 id, Messages.Message calldata message) private returns (bool) {
        address target = message.target;
        if (target == address(this) || target == address(router) || target == _outboxAddress()) {
            executed[id] = false;
            emit MessageFailed(
                id, message.sourceChainId, message.nonce, abi.encodeWithSelector(ForbiddenTarget.selector, target)
            );
            return false;
        }
        uint256 gasBefore = gasleft();
        if (_callPlain(message)) {
            emit MessageExecuted(id, message.sourceChainId, message.nonce, message.target, message.assetId, 0);
            return true;
        }
        // At most MAX_REASON_BYTES of the revert reason are copied: a target that reverts with all the
        // data it can afford would otherwise make the round run out of gas here, before the starvation
        // check could say so (NotEnoughGas), and hold up every round it is in.
        bytes memory reason;
        assembly ("memory-safe") {
            let size := returndatasize()
            if gt(size, MAX_REASON_BYTES) { size := MAX_REASON_BYTES }
            reason := mload(0x40)
            mstore(reason, size)
            returndatacopy(add(reason, 0x20), 0, size)
            mstore(0x40, add(add(reason, 0x20), and(add(size, 31), not(31))))
        }
        _checkNotStarved(gasBefore, reason);
        executed[id] = false;
        emit MessageFailed(id, message.sourceChainId, message.nonce, reason);
        return false;
    }

    /// @dev Reverts ForbiddenTarget unless `target` may be called with a message's data (see the error).
    function _checkTarget(address target) private {
        if (target == address(this) || target == address(router) || target == _outboxAddress()) {
            revert ForbiddenTarget(target);
        }
    }

    /// @dev router.outbox(), read from the router until it is connected, then from _outbox.
    function _outboxAddress() private returns (address outbox) {
        outbox = _outbox;
        if (outbox == address(0)) {
            outbox = router.outbox();
            if (outbox != address(0)) _outbox = outbox;
        }
    }

    /// @dev _runPlain's target call, with the message's context set for it (and the context of an
    ///      execution it is nested in restored afterwards). The return data is left in the return buffer.
    function _callPlain(Messages.Message calldata message) private returns (bool ok) {
        (bool outerActive, uint64 outerSource, address outerSender, bytes32 outerAsset, uint256 outerAmount) =
            (_active, _sourceChainId, _sender, _assetId, _amount);
        (_active, _sourceChainId, _sender, _assetId, _amount) =
            (true, message.sourceChainId, message.sender, message.assetId, 0);
        address target = message.target;
        bytes calldata data = message.data;
        assembly ("memory-safe") {
            let input := mload(0x40)
            calldatacopy(input, data.offset, data.length)
            ok := call(gas(), target, 0, input, data.length, 0, 0)
        }
        (_active, _sourceChainId, _sender, _assetId, _amount) =
            (outerActive, outerSource, outerSender, outerAsset, outerAmount);
    }

    /// @dev Every check of execute but the nullifier's for a priority item, whose priority id must be
    ///      the one it names; returns the message id and the priority id.
    function _checkPriorityItem(PriorityItem calldata item) private view returns (bytes32 id, bytes32 priorityId) {
        uint256 leaf;
        (id, leaf) = _checkPath(item.message, item.proof);
        priorityId = Messages.priorityIdOf(item.message.sourceChainId, item.proof.batchNumber, item.proof.index, leaf);
        if (priorityId != item.priorityId) revert WrongPriorityOp(priorityCursor, item.priorityId, priorityId);
    }

    /// @dev _run for a priority operation: the execution gets exactly PRIORITY_EXECUTION_GAS and at most
    ///      MAX_REASON_BYTES of its revert reason are kept, so no target can make the round revert at
    ///      every gas limit (it would stop the queue): what fails within its budget is FAILED.
    function _runPriority(bytes32 id, Messages.Message calldata message) private returns (bool ok) {
        executed[id] = true;
        bytes memory input = abi.encodeCall(this.applyMessage, (message));
        uint256 budget = PRIORITY_EXECUTION_GAS;
        // EIP-150 passes on at most 63/64 of the gas left: with less than this right before the call,
        // the execution could fail for want of the transaction's gas, which says nothing about the
        // message. (The check sits after the nullifier and the encoding, whose cost it must not miss.)
        if (gasleft() < budget + budget / 63 + 5000) revert NotEnoughGas();
        uint256 size;
        assembly ("memory-safe") {
            ok := call(budget, address(), 0, add(input, 0x20), mload(input), 0, 0)
            size := returndatasize()
        }
        if (ok) {
            emit MessageExecuted(id, message.sourceChainId, message.nonce, message.target, message.assetId, message.amount);
            return true;
        }
        if (size > MAX_REASON_BYTES) size = MAX_REASON_BYTES;
        bytes memory reason = new bytes(size);
        assembly ("memory-safe") {
            returndatacopy(add(reason, 0x20), 0, size)
        }
        executed[id] = false;
        emit MessageFailed(id, message.sourceChainId, message.nonce, reason);
    }

    /// @dev bounce without the owner check (bounceOne has its own).
    function _bounce(Messages.Message calldata message, Messages.MessageProof calldata proof, string calldata reason)
        private
        returns (uint64 bounceNonce)
    {
        return _close(_verify(message, proof), message, reason);
    }

    /// @dev Closes a verified message without executing it and sends its value home (see bounce).
    function _close(bytes32 id, Messages.Message calldata message, string calldata reason)
        private
        returns (uint64 bounceNonce)
    {
        if (Messages.isBounce(message)) revert CannotBounceABounce(id);
        executed[id] = true;
        bounced[id] = true;
        bounceNonce = NO_BOUNCE_MESSAGE;
        if (message.amount != 0) (bounceNonce,) = Outbox(router.outbox()).sendBounce(message);
        emit MessageBounced(id, message.sourceChainId, message.nonce, bounceNonce, message.amount, reason);
    }

    function _importRoot(bytes32 root) private {
        if (importedRoots[root]) return;
        importedRoots[root] = true;
        emit RootImported(root);
    }

    /// @dev After an inner call reverted: if less than 1/32 of the gas there was before it is left,
    ///      the call (or one it made) most likely ran out of gas: EIP-150 keeps back 1/64 at each
    ///      level, about 1/63 of it in all. That says nothing about the message, so the whole
    ///      transaction reverts: a message is never recorded as failed or rejected for want of gas,
    ///      and eth_estimateGas settles on a limit that is enough. (A target that reverts only after
    ///      burning almost all the gas it is given is never recorded as failed either.)
    ///      A call that failed with NotEnoughGas itself (a target's own call starved, e.g. a SwapDesk's)
    ///      says the same, whatever gas is left here: each level keeps back only 1/64, so the 1/32 test
    ///      alone does not carry across two levels of calls.
    function _checkNotStarved(uint256 gasBefore, bytes memory reason) private view {
        if (gasleft() < gasBefore / 32) revert NotEnoughGas();
        if (reason.length == 4 && bytes4(reason) == NotEnoughGas.selector) revert NotEnoughGas();
    }

    /// @dev Every check of execute; returns the message id.
    function _verify(Messages.Message calldata message, Messages.MessageProof calldata proof)
        private
        view
        returns (bytes32 id)
    {
        (id,) = _checkPath(message, proof);
        if (executed[id]) revert AlreadyExecuted(id);
    }

    /// @dev Every check of execute but the nullifier's; returns the message id and leaf.
    function _checkPath(Messages.Message calldata message, Messages.MessageProof calldata proof)
        private
        view
        returns (bytes32 id, uint256 leaf)
    {
        if (message.destChainId != chainId) revert WrongDestination(message.destChainId);
        if (message.sourceChainId == chainId) revert SourceIsThisChain();
        if (!importedRoots[proof.aggregatedRoot]) revert UnknownRoot(proof.aggregatedRoot);
        uint256 depth = proof.batchSiblings.length;
        if (depth > MAX_BATCH_DEPTH) revert BatchTooDeep(depth);
        id = Messages.idOf(message.sourceChainId, message.nonce);
        leaf = Messages.leafOf(message);

        uint256 batchRoot = PoseidonMerkle.rootOf(leaf, proof.index, proof.batchSiblings);
        bytes32 aggLeaf = Messages.aggregatedLeaf(message.sourceChainId, proof.batchNumber, uint32(depth), batchRoot);
        if (
            proof.aggregatedSiblings.length != KeccakMerkle.DEPTH || proof.aggregatedIndex >> KeccakMerkle.DEPTH != 0
                || KeccakMerkle.rootOf(aggLeaf, proof.aggregatedIndex, proof.aggregatedSiblings) != proof.aggregatedRoot
        ) revert BadPath();
    }
}
