// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {KeccakMerkle} from "./lib/KeccakMerkle.sol";
import {Messages} from "./lib/Messages.sol";
import {PoseidonMerkle} from "./lib/PoseidonMerkle.sol";

/// @notice A generated Groth16 verifier of the batch circuit for one capacity (bridge_contracts/verifier_gen.py).
interface IBatchVerifier {
    function verifyProof(uint256[2] calldata a, uint256[2][2] calldata b, uint256[2] calldata c, uint256[22] calldata input)
        external
        view
        returns (bool);
}

/// @title Hub
/// @notice The L1 side of xrelay. It keeps the registry of institution chains (operator, batch
///         counter, outbox hash), settles their batches and keeps, per chain and asset, the balance
///         the chain holds: a chain can never send out more of an asset than L1 says it holds, except
///         of its own (origin) assets, whose supply it controls. Every settled batch root and every
///         L1 deposit is appended to the aggregated tree, whose roots the chains' Inboxes import.
///
///         commitBatch(batch, proof, signature), sent by anyone, settles batch k of chain c when
///         - c is registered, has a verifier for the batch's capacity, and k = its next batch number;
///         - hStart is the outbox hash the previous batch ended on (0 for the first);
///         - c's operator signed commitDigest(batch) (EIP-191 personal sign):
///             keccak256(abi.encode(keccak256("xrelay.Hub.commitBatch.v2"), block.chainid, hub,
///                                  uint32 capacity, uint256[22] publicInputs,
///                                  uint64 priorityCursor, bytes32 priorityHash))
///         - the Groth16 proof verifies for the public inputs, in the circuit's order;
///         - c is not frozen, its priority cursor and hash are a prefix of its priority queue (below),
///           and no operation at or after the cursor is overdue;
///         - every value slot (amount != 0) moves value that c holds to a registered chain or to L1:
///             debit  unless assetOrigin[asset] == c:    balances[c][asset] -= amount (never below 0)
///             credit unless assetOrigin[asset] == dest: balances[dest][asset] += amount
///           (value of L1 origin sent to L1 is released from `locked` by finalizeWithdrawal).
///         It then appends aggLeaf(c, k, log2(capacity), batchRoot) to the aggregated tree.
///
///         deposit(dest, target, data) sends L1's native token (msg.value, possibly 0) to a chain:
///         the value is locked here and credited to the destination, and the message (source = L1,
///         nonce = the deposit count) is appended as aggLeaf(L1, nonce, 0, leaf).
///
///         finalizeWithdrawal(message, proof) executes a message a chain sent to L1, once, from a
///         committed batch: it releases L1-origin native value from `locked` and calls the target
///         (a bounce message, from Messages.BOUNCE_SENDER, is a bounced deposit coming back: its value
///         is paid to the target with empty calldata, never a call with the message's data).
///
///         Forced inclusion. requestPriorityOp(leaf, batchNumber, index, batchSiblings, encryptedBody,
///         signature), sent by anyone with the source operator's signature of the request, queues a
///         message of a settled batch for its destination chain d when its leaf (recomputed from the
///         leaf fields) is at `index` of that batch's tree: its priority id
///         (Messages.priorityIdOf) is appended to d's priority queue, once, with
///             deadline = max(block.timestamp + priorityWindow(d), the previous operation's deadline)
///             rollingHash = keccak256(abi.encode(previous rollingHash (0 at first), priorityId))
///         and the event carries the body sealed to d's bus key, opaque here. d's Inbox processes its
///         queue in order; d's operator reports how far (the cursor: operations processed; and the
///         rolling hash there) in every commitBatch, or alone in reportPriority. While an operation at
///         or after the reported cursor is past its deadline, d's batches are refused and anyone may
///         freeze(d): a frozen chain settles no batch and takes no deposit until governance unfreezes it.
contract Hub is Ownable2Step {
    using KeccakMerkle for KeccakMerkle.Tree;

    /// @notice Value slots per batch proof; a proof has 6 + 4 * SLOTS public inputs.
    uint256 public constant SLOTS = 4;
    uint256 public constant PUBLIC_INPUTS = 6 + 4 * SLOTS;
    /// @notice Stand-in address for the native base token (as in AssetRouter).
    address public constant NATIVE_TOKEN = address(1);
    bytes32 public constant COMMIT_TYPEHASH = keccak256("xrelay.Hub.commitBatch.v2");
    bytes32 public constant PRIORITY_TYPEHASH = keccak256("xrelay.Hub.reportPriority.v1");
    bytes32 public constant FORCE_TYPEHASH = keccak256("xrelay.Hub.requestPriorityOp.v1");
    /// @notice A new chain's priority window (ZKsync's PRIORITY_EXPIRATION); governance sets another.
    uint64 public constant DEFAULT_PRIORITY_WINDOW = 4 days;
    uint64 public constant MAX_PRIORITY_WINDOW = 365 days;
    /// @notice The largest amount a message carries (the batch circuit's 128-bit bound).
    uint256 public constant MAX_AMOUNT = type(uint128).max;
    uint32 public constant MIN_CAPACITY = 8;
    uint32 public constant MAX_CAPACITY = 1024;

    struct ChainInfo {
        bool registered;
        bool validium;
        address operator;
        /// @dev The number the next batch must have; also the number of batches settled.
        uint64 nextBatch;
        /// @dev The outbox hash the last settled batch ended on (hEnd): the next batch's hStart.
        uint256 outboxHash;
    }

    /// @notice A batch as its proof states it (its public inputs) and the capacity of its circuit.
    struct BatchCommitment {
        uint64 chainId;
        uint64 batchNumber;
        uint32 capacity;
        uint256 count;
        uint256 hStart;
        uint256 hEnd;
        uint256 batchRoot;
        uint256[SLOTS] slotDest;
        uint256[SLOTS] slotAssetHi;
        uint256[SLOTS] slotAssetLo;
        uint256[SLOTS] slotAmount;
        /// @dev Operations of the chain's priority queue its Inbox has processed, and the queue's
        ///      rolling hash after them: attested by the operator's signature, not by the proof.
        uint64 priorityCursor;
        bytes32 priorityHash;
    }

    /// @notice One operation of a chain's priority queue.
    struct PriorityOp {
        bytes32 priorityId;
        /// @dev The queue's rolling hash after this operation.
        bytes32 rollingHash;
        uint64 deadline;
    }

    /// @notice A chain's forced-inclusion state: its window, the cursor its operator last reported,
    ///         and whether it is frozen.
    struct PriorityState {
        uint64 window;
        uint64 cursor;
        bool frozen;
    }

    /// @notice A Groth16 proof as verifier_gen.calldata gives it: b's Fp2 halves imaginary part first.
    struct Groth16Proof {
        uint256[2] a;
        uint256[2][2] b;
        uint256[2] c;
    }

    /// @notice A chain's bus encryption key (X25519, as NaCl sealed boxes use it): peers seal the
    ///         envelopes they send the chain's institution to `current`. `previous` is the key it
    ///         replaced at `changedAt` (a timestamp), which receivers keep opening for a grace period of
    ///         their own choosing.
    struct BusKey {
        bytes32 current;
        bytes32 previous;
        uint64 changedAt;
    }

    struct BatchRecord {
        uint256 batchRoot;
        uint32 depth;
        /// @dev The batch's position in the aggregated tree.
        uint64 leafIndex;
        bool committed;
    }

    /// @notice This chain's id (the L1's), the source of deposits and the destination of withdrawals.
    uint64 public immutable l1ChainId;
    /// @notice The asset id of L1's native token: assetId(l1ChainId, NATIVE_TOKEN).
    bytes32 public immutable nativeAssetId;

    mapping(uint64 chainId => ChainInfo) public chains;
    mapping(uint64 chainId => BusKey) public busKeys;
    mapping(uint64 chainId => PriorityState) public priority;
    /// @notice Where each priority id ever queued is in its destination's queue, plus one (0: never
    ///         queued; a message is forced once).
    mapping(bytes32 priorityId => uint64) public queuePosition;
    mapping(uint64 chainId => mapping(uint32 capacity => address)) public verifiers;
    /// @notice The origin chain of every registered asset; 0 for an unknown asset.
    mapping(bytes32 assetId => uint64) public assetOrigin;
    /// @notice What each chain holds of each asset of another origin, as settled batches and deposits left it.
    mapping(uint64 chainId => mapping(bytes32 assetId => uint256)) public balances;
    /// @notice L1-origin value held by the Hub: what chains hold of it plus withdrawals not yet finalized.
    mapping(bytes32 assetId => uint256) public locked;
    mapping(uint64 chainId => mapping(uint64 batchNumber => BatchRecord)) public batches;
    /// @notice Messages to L1 already finalized, by message id.
    mapping(bytes32 messageId => bool) public withdrawn;
    /// @notice Every root the aggregated tree has had, including the empty tree's.
    mapping(bytes32 root => bool) public isAggregatedRoot;
    /// @notice The current root of the aggregated tree.
    bytes32 public aggregatedRoot;
    /// @notice The nonce the next deposit gets; also the number of deposits so far.
    uint64 public depositCount;

    KeccakMerkle.Tree private _tree;
    mapping(uint64 chainId => PriorityOp[]) private _queues;
    mapping(uint256 size => bytes32) private _roots;

    event ChainRegistered(uint64 indexed chainId, address operator, bool validium);
    event OperatorChanged(uint64 indexed chainId, address operator);
    event BusKeyChanged(uint64 indexed chainId, bytes32 key, bytes32 previous);
    event VerifierSet(uint64 indexed chainId, uint32 indexed capacity, address verifier);
    event AssetRegistered(bytes32 indexed assetId, uint64 originChainId, address originToken);
    event BatchCommitted(
        uint64 indexed chainId,
        uint64 indexed batchNumber,
        uint256 count,
        uint256 hEnd,
        uint256 batchRoot,
        uint32 depth,
        uint256 leafIndex,
        bytes32 aggregatedRoot
    );
    event BalanceChanged(uint64 indexed chainId, bytes32 indexed assetId, uint256 balance);
    event AggregatedLeafAppended(uint256 indexed leafIndex, bytes32 leaf, bytes32 root);
    event DepositQueued(
        uint64 indexed destChainId,
        uint64 indexed nonce,
        uint256 leaf,
        uint256 leafIndex,
        bytes32 aggregatedRoot,
        Messages.Message message
    );
    event PriorityWindowSet(uint64 indexed chainId, uint64 window);
    /// @dev encryptedBody: the message and its batch path, sealed to the destination's bus key.
    event PriorityOpQueued(
        uint64 indexed destChainId,
        uint64 indexed index,
        bytes32 priorityId,
        uint64 sourceChainId,
        uint64 batchNumber,
        uint256 indexInBatch,
        uint64 deadline,
        bytes32 rollingHash,
        bytes encryptedBody
    );
    event PriorityCursorReported(uint64 indexed chainId, uint64 cursor, bytes32 rollingHash);
    event ChainFrozen(uint64 indexed chainId, uint64 overdueIndex, uint64 deadline);
    event ChainUnfrozen(uint64 indexed chainId);
    event WithdrawalFinalized(bytes32 indexed id, uint64 sourceChainId, uint64 nonce, address target, uint256 amount);

    error ChainIdTooLarge(uint256 chainId);
    error BadChainId(uint64 chainId);
    error AlreadyRegistered(uint64 chainId);
    error ZeroAddress();
    error ZeroKey();
    error SameKey(bytes32 key);
    error NotChainOperator(uint64 chainId, address caller);
    error BadCapacity(uint32 capacity);
    error UnknownChain(uint64 chainId);
    error NoVerifier(uint64 chainId, uint32 capacity);
    error BadBatchNumber(uint64 expected, uint64 got);
    error BadHStart(uint256 expected, uint256 got);
    error BadCount(uint256 count, uint32 capacity);
    error BadSignature(address recovered, address operator);
    error InvalidProof();
    error AssetIdHalfTooLarge(uint256 half);
    error UnknownDestination(uint256 destChainId);
    error Overdraft(uint64 chainId, bytes32 assetId, uint256 balance, uint256 amount);
    error ZeroTarget();
    error AmountTooLarge(uint256 amount, uint256 max);
    error WrongDestination(uint64 destChainId);
    error UnknownBatch(uint64 chainId, uint64 batchNumber);
    error BadPath();
    error AlreadyWithdrawn(bytes32 id);
    error NotWithdrawable(bytes32 assetId);
    error InsufficientLocked(bytes32 assetId, uint256 locked, uint256 requested);
    error WithdrawalCallFailed(bytes32 id, bytes reason);
    error UnknownSize(uint256 size, uint256 aggregatedSize);
    error DestinationIsL1();
    error BadLeaf();
    error EmptyBody();
    error AlreadyQueued(bytes32 priorityId);
    error BadPriorityWindow(uint64 window);
    error BadPriorityCursor(uint64 cursor, uint64 reported, uint256 queueLength);
    error BadPriorityHash(bytes32 expected, bytes32 got);
    error PriorityOpOverdue(uint64 chainId, uint64 index, uint64 deadline);
    error Frozen(uint64 chainId);
    error NotFrozen(uint64 chainId);
    error NothingOverdue(uint64 chainId);

    constructor(address owner_) Ownable(owner_) {
        if (block.chainid > type(uint64).max) revert ChainIdTooLarge(block.chainid);
        l1ChainId = uint64(block.chainid);
        nativeAssetId = _registerAsset(uint64(block.chainid), NATIVE_TOKEN);
        bytes32 emptyRoot = _tree.root();
        aggregatedRoot = emptyRoot;
        _roots[0] = emptyRoot;
        isAggregatedRoot[emptyRoot] = true;
    }

    // --- governance ------------------------------------------------------------------------------

    /// @notice Registers an institution chain with its operator (who signs its batches); its native
    ///         token is registered as an asset of that origin.
    function registerChain(uint64 chainId, address operator, bool validium) external onlyOwner {
        if (chainId == 0 || chainId == l1ChainId) revert BadChainId(chainId);
        if (chains[chainId].registered) revert AlreadyRegistered(chainId);
        if (operator == address(0)) revert ZeroAddress();
        chains[chainId] = ChainInfo(true, validium, operator, 0, 0);
        priority[chainId].window = DEFAULT_PRIORITY_WINDOW;
        _registerAsset(chainId, NATIVE_TOKEN);
        emit ChainRegistered(chainId, operator, validium);
        emit PriorityWindowSet(chainId, DEFAULT_PRIORITY_WINDOW);
    }

    /// @notice Sets how long a chain has to process an operation forced into its priority queue (from
    ///         1 second to MAX_PRIORITY_WINDOW); operations already queued keep their deadlines.
    function setPriorityWindow(uint64 chainId, uint64 window) external onlyOwner {
        _registered(chainId);
        if (window == 0 || window > MAX_PRIORITY_WINDOW) revert BadPriorityWindow(window);
        priority[chainId].window = window;
        emit PriorityWindowSet(chainId, window);
    }

    /// @notice Lifts a chain's freeze. Governance does it once the chain reported its cursor past every
    ///         overdue operation: while one is left, anyone may freeze the chain again at once.
    function unfreeze(uint64 chainId) external onlyOwner {
        if (!priority[chainId].frozen) revert NotFrozen(chainId);
        priority[chainId].frozen = false;
        emit ChainUnfrozen(chainId);
    }

    /// @notice Registers a chain's new bus encryption key; the one it replaces stays readable as
    ///         `previous`. Set by the chain's operator or by governance.
    function setBusKey(uint64 chainId, bytes32 key) external {
        _registered(chainId);
        if (msg.sender != owner() && msg.sender != chains[chainId].operator) {
            revert NotChainOperator(chainId, msg.sender);
        }
        if (key == bytes32(0)) revert ZeroKey();
        BusKey storage busKey = busKeys[chainId];
        if (key == busKey.current) revert SameKey(key);
        emit BusKeyChanged(chainId, key, busKey.current);
        busKeys[chainId] = BusKey(key, busKey.current, uint64(block.timestamp));
    }

    /// @notice Replaces a chain's operator: batches from now on must carry the new one's signature.
    function setOperator(uint64 chainId, address operator) external onlyOwner {
        _registered(chainId);
        if (operator == address(0)) revert ZeroAddress();
        chains[chainId].operator = operator;
        emit OperatorChanged(chainId, operator);
    }

    /// @notice Sets (or, with address 0, removes) the verifier of a chain's batch proofs for one
    ///         circuit capacity, a power of two from MIN_CAPACITY to MAX_CAPACITY.
    function setVerifier(uint64 chainId, uint32 capacity, address verifier) external onlyOwner {
        _registered(chainId);
        if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || capacity & (capacity - 1) != 0) {
            revert BadCapacity(capacity);
        }
        verifiers[chainId][capacity] = verifier;
        emit VerifierSet(chainId, capacity, verifier);
    }

    /// @notice Records the origin of an asset; anyone may call it (the origin is part of the id, so
    ///         there is nothing to decide). Idempotent.
    function registerAsset(uint64 originChainId, address originToken) external returns (bytes32 assetId) {
        return _registerAsset(originChainId, originToken);
    }

    // --- batches ---------------------------------------------------------------------------------

    /// @notice The batch proof's public inputs, in the circuit's order.
    function publicInputs(BatchCommitment calldata batch) public pure returns (uint256[PUBLIC_INPUTS] memory inputs) {
        inputs[0] = batch.chainId;
        inputs[1] = batch.batchNumber;
        inputs[2] = batch.count;
        inputs[3] = batch.hStart;
        inputs[4] = batch.hEnd;
        inputs[5] = batch.batchRoot;
        for (uint256 k; k < SLOTS; ++k) {
            inputs[6 + k] = batch.slotDest[k];
            inputs[6 + SLOTS + k] = batch.slotAssetHi[k];
            inputs[6 + 2 * SLOTS + k] = batch.slotAssetLo[k];
            inputs[6 + 3 * SLOTS + k] = batch.slotAmount[k];
        }
    }

    /// @notice What the chain's operator signs (EIP-191 personal sign) to commit `batch` on this Hub.
    function commitDigest(BatchCommitment calldata batch) public view returns (bytes32) {
        return _commitDigest(batch, publicInputs(batch));
    }

    /// @notice Settles the chain's next batch: see the contract's notice for every check. Anyone may
    ///         send it; the operator's signature and the proof are what count.
    function commitBatch(BatchCommitment calldata batch, Groth16Proof calldata proof, bytes calldata signature)
        external
    {
        ChainInfo storage info = _checkCommit(batch, proof, signature);
        uint64 chainId = batch.chainId;
        _checkPriority(chainId, batch.priorityCursor, batch.priorityHash);
        for (uint256 k; k < SLOTS; ++k) {
            uint256 amount = batch.slotAmount[k];
            if (amount != 0) _move(chainId, batch.slotDest[k], batch.slotAssetHi[k], batch.slotAssetLo[k], amount);
        }
        info.nextBatch = batch.batchNumber + 1;
        info.outboxHash = batch.hEnd;
        uint32 depth = _log2(batch.capacity);
        (uint256 leafIndex, bytes32 root) =
            _append(Messages.aggregatedLeaf(chainId, batch.batchNumber, depth, batch.batchRoot));
        batches[chainId][batch.batchNumber] = BatchRecord(batch.batchRoot, depth, uint64(leafIndex), true);
        emit BatchCommitted(chainId, batch.batchNumber, batch.count, batch.hEnd, batch.batchRoot, depth, leafIndex, root);
    }

    // --- deposits and withdrawals ----------------------------------------------------------------

    /// @notice Sends a message from L1 to chain `destChainId`, carrying msg.value of L1's native token
    ///         (none: a message without value, assetId 0). The value stays locked here; the
    ///         destination is credited with it and its Inbox mints it there as a BridgedToken.
    function deposit(uint64 destChainId, address target, bytes calldata data) external payable returns (uint64 nonce) {
        if (!chains[destChainId].registered) revert UnknownDestination(destChainId);
        if (priority[destChainId].frozen) revert Frozen(destChainId);
        if (target == address(0)) revert ZeroTarget();
        uint256 amount = msg.value;
        if (amount > MAX_AMOUNT) revert AmountTooLarge(amount, MAX_AMOUNT);
        bytes32 assetId;
        bytes memory assetData;
        if (amount != 0) {
            assetId = nativeAssetId;
            assetData = abi.encode(uint256(block.chainid), NATIVE_TOKEN, "Ether", "ETH", uint8(18));
            locked[assetId] += amount;
            _credit(destChainId, assetId, amount);
        }
        nonce = depositCount++;
        Messages.Message memory message =
            Messages.Message(l1ChainId, destChainId, nonce, msg.sender, target, assetId, amount, data, assetData);
        uint256 leaf = Messages.leafOf(message);
        (uint256 leafIndex, bytes32 root) = _append(Messages.aggregatedLeaf(l1ChainId, nonce, 0, leaf));
        emit DepositQueued(destChainId, nonce, leaf, leafIndex, root, message);
    }

    /// @notice Executes a message a chain sent to L1, once: from a committed batch of its source
    ///         chain (proof.batchNumber, proof.index, proof.batchSiblings; the aggregated path is not
    ///         needed here), it releases the message's value of L1 origin from `locked` and calls the
    ///         target with it and the message's data; a bounce message (a deposit's value coming back
    ///         to its sender) pays the target with empty calldata instead. A failing call reverts the
    ///         whole finalization, which can be retried.
    function finalizeWithdrawal(Messages.Message calldata message, Messages.MessageProof calldata proof) external {
        if (message.destChainId != l1ChainId) revert WrongDestination(message.destChainId);
        BatchRecord memory batch = batches[message.sourceChainId][proof.batchNumber];
        if (!batch.committed) revert UnknownBatch(message.sourceChainId, proof.batchNumber);
        if (proof.batchSiblings.length != batch.depth) revert BadPath();
        Messages.Message memory m = message;
        if (PoseidonMerkle.rootOf(Messages.leafOf(m), proof.index, proof.batchSiblings) != batch.batchRoot) {
            revert BadPath();
        }
        bytes32 id = Messages.idOf(message.sourceChainId, message.nonce);
        if (withdrawn[id]) revert AlreadyWithdrawn(id);
        withdrawn[id] = true;
        uint256 amount = message.amount;
        if (amount != 0) {
            if (message.assetId != nativeAssetId) revert NotWithdrawable(message.assetId);
            uint256 available = locked[message.assetId];
            if (amount > available) revert InsufficientLocked(message.assetId, available, amount);
            locked[message.assetId] = available - amount;
        }
        emit WithdrawalFinalized(id, message.sourceChainId, message.nonce, message.target, amount);
        bytes memory data = Messages.isBounce(message) ? bytes("") : message.data;
        (bool ok, bytes memory reason) = message.target.call{value: amount}(data);
        if (!ok) revert WithdrawalCallFailed(id, reason);
    }

    // --- forced inclusion -----------------------------------------------------------------------

    /// @notice Forces a message of a settled batch into its destination's priority queue (see the
    ///         contract's notice). Anyone may send it, with the source chain's operator's signature of
    ///         forceDigest(priorityId, keccak256(encryptedBody)): the body the destination gets is the
    ///         one the source vouches for, and nobody else can queue the message first with another.
    ///         `leaf` shows nothing of the message's body.
    /// @param encryptedBody The message and its batch path sealed to the destination's bus key (the
    ///        destination needs it to execute the message; L1 cannot check it).
    /// @return queueIndex The operation's position in the destination's queue.
    function requestPriorityOp(
        Messages.LeafFields calldata leaf,
        uint64 batchNumber,
        uint256 index,
        uint256[] calldata batchSiblings,
        bytes calldata encryptedBody,
        bytes calldata signature
    ) external returns (uint64 queueIndex) {
        bytes32 priorityId = _settledLeaf(leaf, batchNumber, index, batchSiblings);
        if (encryptedBody.length == 0) revert EmptyBody();
        _checkForceSignature(leaf.sourceChainId, priorityId, keccak256(encryptedBody), signature);
        if (queuePosition[priorityId] != 0) revert AlreadyQueued(priorityId);
        return _queue(leaf, batchNumber, index, priorityId, encryptedBody);
    }

    /// @notice Reports how far a chain's Inbox has processed its priority queue, signed by its
    ///         operator: for a chain with no batch to commit. Also while it is frozen (so governance
    ///         sees it caught up).
    function reportPriority(uint64 chainId, uint64 cursor, bytes32 rollingHash, bytes calldata signature) external {
        _registered(chainId);
        address operator = chains[chainId].operator;
        bytes32 digest = priorityDigest(chainId, cursor, rollingHash);
        (address recovered,,) = ECDSA.tryRecover(MessageHashUtils.toEthSignedMessageHash(digest), signature);
        if (recovered == address(0) || recovered != operator) revert BadSignature(recovered, operator);
        _reportPriority(chainId, cursor, rollingHash);
    }

    /// @notice What a source chain's operator signs (EIP-191 personal sign) to force one of its messages
    ///         with a sealed body: keccak256(abi.encode(FORCE_TYPEHASH, block.chainid, hub, bytes32
    ///         priorityId, bytes32 keccak256(encryptedBody))).
    function forceDigest(bytes32 priorityId, bytes32 bodyHash) public view returns (bytes32) {
        return keccak256(abi.encode(FORCE_TYPEHASH, block.chainid, address(this), priorityId, bodyHash));
    }

    /// @notice What a chain's operator signs (EIP-191 personal sign) to report its priority cursor:
    ///         keccak256(abi.encode(PRIORITY_TYPEHASH, block.chainid, hub, uint64 chainId, uint64 cursor,
    ///         bytes32 rollingHash)).
    function priorityDigest(uint64 chainId, uint64 cursor, bytes32 rollingHash) public view returns (bytes32) {
        return keccak256(abi.encode(PRIORITY_TYPEHASH, block.chainid, address(this), chainId, cursor, rollingHash));
    }

    /// @notice Freezes a chain that left a priority operation past its deadline. Anyone may send it.
    function freeze(uint64 chainId) external {
        _registered(chainId);
        if (priority[chainId].frozen) revert Frozen(chainId);
        (bool late, uint64 index, uint64 deadline) = overdue(chainId);
        if (!late) revert NothingOverdue(chainId);
        priority[chainId].frozen = true;
        emit ChainFrozen(chainId, index, deadline);
    }

    /// @notice Whether the first operation of a chain's queue that it has not reported processed is
    ///         past its deadline; that operation's index and deadline (none: the cursor, 0).
    function overdue(uint64 chainId) public view returns (bool late, uint64 index, uint64 deadline) {
        index = priority[chainId].cursor;
        PriorityOp[] storage queue = _queues[chainId];
        if (index < queue.length) {
            deadline = queue[index].deadline;
            late = deadline < block.timestamp;
        }
    }

    /// @notice The number of operations ever queued for a chain.
    function priorityQueueLength(uint64 chainId) external view returns (uint256) {
        return _queues[chainId].length;
    }

    /// @notice Operation `index` of a chain's priority queue.
    function priorityOp(uint64 chainId, uint256 index) external view returns (PriorityOp memory) {
        return _queues[chainId][index];
    }

    /// @notice The rolling hash of a chain's priority queue after its first `count` operations.
    function priorityHashAt(uint64 chainId, uint256 count) public view returns (bytes32) {
        return count == 0 ? bytes32(0) : _queues[chainId][count - 1].rollingHash;
    }

    // --- the aggregated tree ---------------------------------------------------------------------

    /// @notice The number of leaves appended so far.
    function aggregatedSize() external view returns (uint256) {
        return _tree.size;
    }

    /// @notice The aggregated root after the first `size` leaves (size 0: the empty tree's root).
    function rootAt(uint256 size) external view returns (bytes32) {
        uint256 current = _tree.size;
        if (size > current) revert UnknownSize(size, current);
        return _roots[size];
    }

    // --- internals -------------------------------------------------------------------------------

    /// @dev Every check of commitBatch before value moves; returns the chain's registry entry.
    function _checkCommit(BatchCommitment calldata batch, Groth16Proof calldata proof, bytes calldata signature)
        private
        view
        returns (ChainInfo storage info)
    {
        uint64 chainId = batch.chainId;
        info = chains[chainId];
        if (!info.registered) revert UnknownChain(chainId);
        address verifier = verifiers[chainId][batch.capacity];
        if (verifier == address(0)) revert NoVerifier(chainId, batch.capacity);
        if (batch.batchNumber != info.nextBatch) revert BadBatchNumber(info.nextBatch, batch.batchNumber);
        if (batch.hStart != info.outboxHash) revert BadHStart(info.outboxHash, batch.hStart);
        if (batch.count == 0 || batch.count > batch.capacity) revert BadCount(batch.count, batch.capacity);
        if (priority[chainId].frozen) revert Frozen(chainId);

        uint256[PUBLIC_INPUTS] memory inputs = publicInputs(batch);
        bytes32 digest = _commitDigest(batch, inputs);
        (address recovered,,) = ECDSA.tryRecover(MessageHashUtils.toEthSignedMessageHash(digest), signature);
        if (recovered == address(0) || recovered != info.operator) revert BadSignature(recovered, info.operator);
        if (!IBatchVerifier(verifier).verifyProof(proof.a, proof.b, proof.c, inputs)) revert InvalidProof();
    }

    function _commitDigest(BatchCommitment calldata batch, uint256[PUBLIC_INPUTS] memory inputs)
        private
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                COMMIT_TYPEHASH,
                block.chainid,
                address(this),
                batch.capacity,
                inputs,
                batch.priorityCursor,
                batch.priorityHash
            )
        );
    }

    /// @dev Records a chain's reported priority cursor: never backwards, within its queue, with the
    ///      queue's rolling hash there.
    function _reportPriority(uint64 chainId, uint64 cursor, bytes32 rollingHash) private {
        PriorityState storage state = priority[chainId];
        uint256 length = _queues[chainId].length;
        if (cursor < state.cursor || cursor > length) revert BadPriorityCursor(cursor, state.cursor, length);
        bytes32 expected = priorityHashAt(chainId, cursor);
        if (rollingHash != expected) revert BadPriorityHash(expected, rollingHash);
        if (cursor != state.cursor) {
            state.cursor = cursor;
            emit PriorityCursorReported(chainId, cursor, rollingHash);
        }
    }

    /// @dev The priority id of a leaf at `index` of a settled batch of its source chain, addressed to a
    ///      registered chain; reverts with what is wrong otherwise.
    function _settledLeaf(
        Messages.LeafFields calldata leaf,
        uint64 batchNumber,
        uint256 index,
        uint256[] calldata batchSiblings
    ) private view returns (bytes32) {
        uint64 dest = leaf.destChainId;
        if (dest == l1ChainId) revert DestinationIsL1();
        if (!chains[dest].registered) revert UnknownDestination(dest);
        if (leaf.amount > MAX_AMOUNT || leaf.body >> 248 != 0) revert BadLeaf();
        BatchRecord memory batch = batches[leaf.sourceChainId][batchNumber];
        if (!batch.committed) revert UnknownBatch(leaf.sourceChainId, batchNumber);
        if (batchSiblings.length != batch.depth) revert BadPath();
        uint256 leafHash = Messages.leafOf(dest, leaf.assetId, leaf.amount, leaf.body);
        if (PoseidonMerkle.rootOf(leafHash, index, batchSiblings) != batch.batchRoot) revert BadPath();
        return Messages.priorityIdOf(leaf.sourceChainId, batchNumber, index, leafHash);
    }

    /// @dev Queues a checked request: appended to its destination's queue, its position kept, the event.
    function _queue(
        Messages.LeafFields calldata leaf,
        uint64 batchNumber,
        uint256 index,
        bytes32 priorityId,
        bytes calldata encryptedBody
    ) private returns (uint64 queueIndex) {
        uint64 deadline;
        bytes32 rolling;
        (queueIndex, deadline, rolling) = _enqueue(leaf.destChainId, priorityId);
        queuePosition[priorityId] = queueIndex + 1;
        emit PriorityOpQueued(
            leaf.destChainId,
            queueIndex,
            priorityId,
            leaf.sourceChainId,
            batchNumber,
            index,
            deadline,
            rolling,
            encryptedBody
        );
    }

    /// @dev Appends an operation to a chain's priority queue: its index, deadline and rolling hash.
    function _enqueue(uint64 chainId, bytes32 priorityId)
        private
        returns (uint64 index, uint64 deadline, bytes32 rolling)
    {
        PriorityOp[] storage queue = _queues[chainId];
        index = uint64(queue.length);
        deadline = uint64(block.timestamp) + priority[chainId].window;
        if (index != 0) {
            PriorityOp storage last = queue[index - 1];
            rolling = last.rollingHash;
            if (last.deadline > deadline) deadline = last.deadline;
        }
        rolling = Messages.nextPriorityHash(rolling, priorityId);
        queue.push(PriorityOp(priorityId, rolling, deadline));
    }

    /// @dev The source chain's operator signed forceDigest(priorityId, bodyHash).
    function _checkForceSignature(uint64 source, bytes32 priorityId, bytes32 bodyHash, bytes calldata signature)
        private
        view
    {
        address operator = chains[source].operator;
        bytes32 digest = MessageHashUtils.toEthSignedMessageHash(forceDigest(priorityId, bodyHash));
        (address recovered,,) = ECDSA.tryRecover(digest, signature);
        if (recovered == address(0) || recovered != operator) revert BadSignature(recovered, operator);
    }

    /// @dev A commit's priority cursor: recorded, and then nothing may be overdue.
    function _checkPriority(uint64 chainId, uint64 cursor, bytes32 rollingHash) private {
        _reportPriority(chainId, cursor, rollingHash);
        (bool late, uint64 index, uint64 deadline) = overdue(chainId);
        if (late) revert PriorityOpOverdue(chainId, index, deadline);
    }

    function _registered(uint64 chainId) private view {
        if (!chains[chainId].registered) revert UnknownChain(chainId);
    }

    function _registerAsset(uint64 originChainId, address originToken) private returns (bytes32 assetId) {
        assetId = keccak256(abi.encode(uint256(originChainId), originToken));
        if (assetOrigin[assetId] == 0) {
            assetOrigin[assetId] = originChainId;
            emit AssetRegistered(assetId, originChainId, originToken);
        }
    }

    /// @dev One value slot of a batch of `source`: `amount` of the asset (hi, lo) to `dest`.
    function _move(uint64 source, uint256 dest, uint256 hi, uint256 lo, uint256 amount) private {
        if (hi > type(uint128).max) revert AssetIdHalfTooLarge(hi);
        if (lo > type(uint128).max) revert AssetIdHalfTooLarge(lo);
        if (dest == source || (dest != l1ChainId && (dest > type(uint64).max || !chains[uint64(dest)].registered))) {
            revert UnknownDestination(dest);
        }
        bytes32 assetId = bytes32((hi << 128) | lo);
        uint64 origin = assetOrigin[assetId];
        if (origin != source) {
            uint256 balance = balances[source][assetId];
            if (balance < amount) revert Overdraft(source, assetId, balance, amount);
            balances[source][assetId] = balance - amount;
            emit BalanceChanged(source, assetId, balance - amount);
        }
        if (origin != dest) _credit(uint64(dest), assetId, amount);
    }

    function _credit(uint64 chainId, bytes32 assetId, uint256 amount) private {
        uint256 balance = balances[chainId][assetId] + amount;
        balances[chainId][assetId] = balance;
        emit BalanceChanged(chainId, assetId, balance);
    }

    function _append(bytes32 leaf) private returns (uint256 leafIndex, bytes32 root) {
        (leafIndex, root) = _tree.append(leaf);
        aggregatedRoot = root;
        _roots[leafIndex + 1] = root;
        isAggregatedRoot[root] = true;
        emit AggregatedLeafAppended(leafIndex, leaf, root);
    }

    /// @dev log2 of a power of two.
    function _log2(uint32 capacity) private pure returns (uint32 depth) {
        while (capacity > 1) {
            capacity >>= 1;
            ++depth;
        }
    }
}
