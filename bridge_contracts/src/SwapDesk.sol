// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {AssetRouter} from "./AssetRouter.sol";
import {Inbox} from "./Inbox.sol";
import {Outbox} from "./Outbox.sol";
import {Messages} from "./lib/Messages.sol";

/// @title SwapDesk
/// @notice Three-phase atomic swaps between two institutions' chains, under terms both operators agreed
///         (docs/protocol.md, "Atomic swaps"). One desk on each chain; the same contract plays side A
///         (where the user starts, with asset X) or side B (whose operator sells asset Y), by terms.
///
///         Phase 1, on A: initiate(termsId, amountX, minAmountY) takes X from the user and sends it
///         through the Outbox (locked or burned) to B's desk, with the call receiveSwap(order).
///         Phase 2, on B, in the Inbox's execution of that message: the desk swaps (B's quoted price
///         inside the band, amountY >= minAmountY, not past the deadline by B's clock, inventory
///         enough: it keeps X and sends Y to A's desk) or refunds (it sends X back) — exactly one
///         result message, receiveResult(...), in the same transaction, whatever fails.
///         Phase 3, on A, in the Inbox's execution of the result: the user is paid Y, or gets X back.
///         If B's operator bounces the phase-1 message instead, its value comes home to this desk (a
///         refund, Inbox.refunded: from chain B, exactly X) and reclaim(swapId) returns it to the user.
///
///         termsId   = keccak256(abi.encode(Terms))
///         swapId    = keccak256(abi.encode(uint64 chainA, address deskA, uint64 swapNonce))
///         amountY   = floor(floor(amountX * price / 1e18) * (10000 - feeBps) / 10000)
///         price     = Y base units per 1e18 X base units (B's quote for the pair; the band bounds it)
///
///         The desk owns only what `held` says (B's inventory, X it kept, fees): value in a swap is the
///         user's until the swap ends, and the owner can never withdraw it. Assets are ERC-20 tokens
///         (neither chain's native token is swapped: wrap it).
contract SwapDesk is Ownable2Step {
    using SafeERC20 for IERC20;

    /// @notice What both operators sign: the termsId is its hash, identical on both desks.
    struct Terms {
        uint64 chainA;
        address deskA;
        uint64 chainB;
        address deskB;
        /// @dev What A's users pay (an asset id of the AssetRouters).
        bytes32 assetX;
        /// @dev What they receive, B's inventory.
        bytes32 assetY;
        /// @dev The band B's quoted price must be inside for a swap (Y base units per 1e18 of X).
        uint128 priceMin;
        uint128 priceMax;
        /// @dev B's fee, taken from the Y paid, in basis points.
        uint16 feeBps;
        uint128 minAmountX;
        uint128 maxAmountX;
        /// @dev The last time (A's clock) a swap may start.
        uint64 lastStart;
        /// @dev The phase-2 window W: a swap's deadline is its start plus W (B's clock decides).
        uint64 window;
    }

    /// @notice What phase 1 tells B's desk (the call in the phase-1 message).
    struct Order {
        uint64 swapNonce;
        bytes32 termsId;
        address user;
        uint128 amountX;
        uint128 minAmountY;
        uint64 deadline;
    }

    enum State {
        None,
        /// @dev A: phase 1 sent, waiting for B's result.
        Initiated,
        /// @dev B: swapped, Y sent to A; A: the user was paid Y.
        Completed,
        /// @dev B: X sent back to A; A: the user got X back.
        Refunded
    }

    enum Reason {
        None,
        /// @dev amountY at B's price is below the user's minAmountY.
        Slippage,
        /// @dev B executed phase 1 after the deadline (by B's clock).
        Expired,
        /// @dev B's desk holds less Y than the swap pays.
        InventoryShort,
        /// @dev B's quoted price is outside the terms' band (or B quotes none).
        PriceOutsideBand,
        /// @dev B's desk has no such terms.
        UnknownTerms,
        /// @dev Sending Y failed on B (e.g. the token refused the transfer).
        SendFailed,
        /// @dev B's operator bounced the phase-1 message: the value came home without a result.
        Bounced
    }

    /// @notice One swap as this desk sees it (A and B record the same swapId).
    struct Swap {
        bytes32 termsId;
        address user;
        uint128 amountX;
        uint128 minAmountY;
        /// @dev The Y paid: set by B when it swaps, by A when the result arrives.
        uint128 amountY;
        uint64 deadline;
        /// @dev A: the phase-1 message's nonce in A's Outbox; B: the result's in B's Outbox.
        uint64 messageNonce;
        State state;
        Reason reason;
    }

    uint256 public constant PRICE_ONE = 1e18;
    uint16 public constant MAX_FEE_BPS = 10_000;
    /// @notice The least gas phase 2 (receiveSwap) starts with: well above what any of its paths uses (a
    ///         swap, a refund, a swap whose send fails and is refunded: about 0.3M to 0.4M). With less it
    ///         reverts NotEnoughGas, which the Inbox takes for an execution that ran out of gas (the
    ///         transaction reverts). Without it, a call that runs out deep inside phase 2 (the Outbox's
    ///         hashing, in the refund's send) reverts with no reason and hands gas back on its way up, and
    ///         the Inbox would record the message as failed, at the very limits a gas estimate settles on.
    uint256 public constant PHASE2_GAS = 800_000;

    Outbox public immutable outbox;
    Inbox public immutable inbox;
    AssetRouter public immutable router;
    uint64 public immutable chainId;

    mapping(bytes32 termsId => Terms) private _terms;
    /// @notice B: the quoted price per pair (assetX => assetY), set by the owner; 0: no quote.
    mapping(bytes32 assetX => mapping(bytes32 assetY => uint256)) public price;
    /// @notice What of each token belongs to the desk's owner (inventory, X kept, fees).
    mapping(address token => uint256) public held;
    mapping(bytes32 swapId => Swap) private _swaps;
    /// @notice A: the nonce the next swap gets.
    uint64 public swapNonce;

    event TermsRegistered(bytes32 indexed termsId, Terms terms);
    event PriceSet(bytes32 indexed assetX, bytes32 indexed assetY, uint256 price);
    event Funded(address indexed token, uint256 amount);
    event Withdrawn(address indexed token, address indexed to, uint256 amount);
    /// @notice Every change of a swap, with the whole record: what the daemons store.
    event SwapRecorded(bytes32 indexed swapId, Swap swap);

    error NotThisDesk(uint64 chainA, address deskA, uint64 chainB, address deskB);
    error BadBand(uint128 priceMin, uint128 priceMax);
    error FeeTooHigh(uint16 feeBps);
    error BadAmounts(uint128 minAmountX, uint128 maxAmountX);
    error ZeroWindow();
    error LastStartPassed(uint64 lastStart);
    error TermsAlreadyRegistered(bytes32 termsId);
    error UnknownTerms(bytes32 termsId);
    error NotSideA(bytes32 termsId);
    error UnknownAsset(bytes32 assetId);
    error NativeNotSwappable();
    error TermsExpired(bytes32 termsId, uint64 lastStart);
    error AmountOutOfRange(uint256 amountX, uint128 minAmountX, uint128 maxAmountX);
    error ZeroMinimum();
    error TransferShortfall(uint256 expected, uint256 received);
    error OnlyInbox(address caller);
    error OnlySelf(address caller);
    error NoValue();
    error DuplicateSwap(bytes32 swapId);
    error NotFromCounterparty(uint64 sourceChainId, address sender);
    error WrongResult(bytes32 swapId);
    error NotInitiated(bytes32 swapId, State state);
    error NotBounced(bytes32 swapId);
    error MoreThanHeld(address token, uint256 held, uint256 requested);
    error ZeroAddress();
    error NotEnoughGas();

    constructor(Outbox outbox_, Inbox inbox_, address owner_) Ownable(owner_) {
        outbox = outbox_;
        inbox = inbox_;
        router = outbox_.router();
        chainId = uint64(block.chainid);
    }

    modifier onlyInbox() {
        if (msg.sender != address(inbox)) revert OnlyInbox(msg.sender);
        _;
    }

    // --- the owner ----------------------------------------------------------------------------

    /// @notice Registers terms both operators signed; this desk must be one of its two sides.
    function registerTerms(Terms calldata terms) external onlyOwner returns (bytes32 termsId) {
        bool sideA = terms.chainA == chainId && terms.deskA == address(this);
        bool sideB = terms.chainB == chainId && terms.deskB == address(this);
        if (sideA == sideB || terms.chainA == terms.chainB) {
            revert NotThisDesk(terms.chainA, terms.deskA, terms.chainB, terms.deskB);
        }
        if (terms.priceMin == 0 || terms.priceMin > terms.priceMax) revert BadBand(terms.priceMin, terms.priceMax);
        if (terms.feeBps >= MAX_FEE_BPS) revert FeeTooHigh(terms.feeBps);
        if (terms.minAmountX == 0 || terms.minAmountX > terms.maxAmountX) {
            revert BadAmounts(terms.minAmountX, terms.maxAmountX);
        }
        if (terms.window == 0) revert ZeroWindow();
        if (terms.lastStart <= block.timestamp) revert LastStartPassed(terms.lastStart);
        // Neither asset may be either chain's native token: it would arrive as msg.value, which no phase
        // takes (X on B's side, or Y on A's: a result that pays A's native token fails on A at every try).
        address native = router.NATIVE_TOKEN();
        bytes32 nativeA = router.assetIdOf(terms.chainA, native);
        bytes32 nativeB = router.assetIdOf(terms.chainB, native);
        if (terms.assetX == nativeA || terms.assetX == nativeB || terms.assetY == nativeA || terms.assetY == nativeB) {
            revert NativeNotSwappable();
        }
        // The asset this side pays out must exist here (X on A, Y on B; the other may arrive later).
        _tokenOf(sideA ? terms.assetX : terms.assetY);
        termsId = keccak256(abi.encode(terms));
        if (_terms[termsId].window != 0) revert TermsAlreadyRegistered(termsId);
        _terms[termsId] = terms;
        emit TermsRegistered(termsId, terms);
    }

    /// @notice B: quotes the price of X in Y for every terms on the pair (0 withdraws the quote). A swap
    ///         happens only at a quote inside its terms' band.
    function setPrice(bytes32 assetX, bytes32 assetY, uint256 newPrice) external onlyOwner {
        price[assetX][assetY] = newPrice;
        emit PriceSet(assetX, assetY, newPrice);
    }

    /// @notice Adds `amount` of the owner's `token` to what the desk holds (B's inventory of Y).
    function fund(address token, uint256 amount) external onlyOwner {
        uint256 received = _pull(token, msg.sender, amount);
        held[token] += received;
        emit Funded(token, received);
    }

    /// @notice Takes out what the desk holds (never a user's value in a swap).
    function withdraw(address token, address to, uint256 amount) external onlyOwner {
        if (to == address(0)) revert ZeroAddress();
        uint256 available = held[token];
        if (amount > available) revert MoreThanHeld(token, available, amount);
        held[token] = available - amount;
        IERC20(token).safeTransfer(to, amount);
        emit Withdrawn(token, to, amount);
    }

    // --- phase 1, on A --------------------------------------------------------------------------

    /// @notice Starts a swap of `amountX` of the terms' X (the caller approved this desk for it) for at
    ///         least `minAmountY` of Y, paid to the caller; its deadline is now plus the terms' window.
    function initiate(bytes32 termsId, uint128 amountX, uint128 minAmountY) external returns (bytes32 swapId) {
        Terms storage terms = _terms[termsId];
        if (terms.window == 0) revert UnknownTerms(termsId);
        if (terms.chainA != chainId || terms.deskA != address(this)) revert NotSideA(termsId);
        if (block.timestamp > terms.lastStart) revert TermsExpired(termsId, terms.lastStart);
        if (amountX < terms.minAmountX || amountX > terms.maxAmountX) {
            revert AmountOutOfRange(amountX, terms.minAmountX, terms.maxAmountX);
        }
        if (minAmountY == 0) revert ZeroMinimum();
        address tokenX = _tokenOf(terms.assetX);
        uint256 received = _pull(tokenX, msg.sender, amountX);
        if (received != amountX) revert TransferShortfall(amountX, received);

        uint64 nonce = swapNonce++;
        swapId = swapIdOf(chainId, address(this), nonce);
        uint64 deadline = uint64(block.timestamp) + terms.window;
        Order memory order = Order(nonce, termsId, msg.sender, amountX, minAmountY, deadline);
        IERC20(tokenX).forceApprove(address(router), amountX);
        (uint64 messageNonce,) = outbox.sendWithAsset(
            terms.chainB, terms.deskB, abi.encodeCall(this.receiveSwap, (order)), terms.assetX, amountX
        );
        Swap memory swap =
            Swap(termsId, msg.sender, amountX, minAmountY, 0, deadline, messageNonce, State.Initiated, Reason.None);
        _swaps[swapId] = swap;
        emit SwapRecorded(swapId, swap);
    }

    // --- phase 2, on B --------------------------------------------------------------------------

    /// @notice Phase 2: called by the Inbox executing a phase-1 message. Sends exactly one result
    ///         message back to the sender: Y (swapped) or its X (refunded, with the reason).
    function receiveSwap(Order calldata order) external onlyInbox {
        if (gasleft() < PHASE2_GAS) revert NotEnoughGas();
        (uint64 source, address sender, bytes32 assetId, uint256 amount) = inbox.context();
        if (amount == 0) revert NoValue();
        bytes32 swapId = swapIdOf(source, sender, order.swapNonce);
        if (_swaps[swapId].state != State.None) revert DuplicateSwap(swapId);

        Terms storage terms = _terms[order.termsId];
        Reason reason = _phase2Refusal(terms, order, source, sender, assetId, amount);
        uint128 amountY;
        if (reason == Reason.None) {
            amountY = quote(order.termsId, order.amountX);
            // The desk catches its own failures: a swap that cannot be sent is refunded instead. One that
            // ran out of gas says nothing about the swap: the transaction reverts (as Inbox does), so no
            // gas estimate settles on a limit that only the refund fits in. (Past PHASE2_GAS, only a Y
            // token that burns gas runs out here.)
            uint256 gasBefore = gasleft();
            try this.sendSwapped(swapId, source, sender, terms.assetY, amountY) returns (uint64 nonce) {
                held[_tokenOf(terms.assetX)] += amount;
                _record(swapId, order, amountY, nonce, State.Completed, Reason.None);
                return;
            } catch {
                if (gasleft() < gasBefore / 32) revert NotEnoughGas();
                reason = Reason.SendFailed;
            }
        }
        uint64 refundNonce = _send(
            source, sender, assetId, amount, abi.encodeCall(this.receiveResult, (swapId, State.Refunded, reason, 0))
        );
        _record(swapId, order, 0, refundNonce, State.Refunded, reason);
    }

    /// @notice The swap's half of phase 2, in a call of its own so that its failure undoes only it.
    function sendSwapped(bytes32 swapId, uint64 source, address sender, bytes32 assetY, uint128 amountY)
        external
        returns (uint64 nonce)
    {
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        address tokenY = _tokenOf(assetY);
        held[tokenY] -= amountY;
        return _send(
            source, sender, assetY, amountY, abi.encodeCall(this.receiveResult, (swapId, State.Completed, Reason.None, amountY))
        );
    }

    /// @notice B's refusal of a swap, or Reason.None if it may be swapped.
    function _phase2Refusal(
        Terms storage terms,
        Order calldata order,
        uint64 source,
        address sender,
        bytes32 assetId,
        uint256 amount
    ) private view returns (Reason) {
        // Not from the desk of registered terms, or not what the order says: never a swap.
        if (
            terms.chainB != chainId || terms.deskB != address(this) || terms.chainA != source
                || terms.deskA != sender || terms.assetX != assetId || order.amountX != amount
                || order.deadline > uint256(terms.lastStart) + terms.window
        ) return Reason.UnknownTerms;
        if (block.timestamp > order.deadline) return Reason.Expired;
        uint256 quoted = price[terms.assetX][terms.assetY];
        if (quoted < terms.priceMin || quoted > terms.priceMax) return Reason.PriceOutsideBand;
        uint128 amountY = quote(order.termsId, order.amountX);
        if (amountY < order.minAmountY) return Reason.Slippage;
        (,, address tokenY) = router.assets(terms.assetY);
        if (tokenY == address(0) || held[tokenY] < amountY) return Reason.InventoryShort;
        return Reason.None;
    }

    // --- phase 3, on A --------------------------------------------------------------------------

    /// @notice Phase 3: called by the Inbox executing B's result. Pays the user Y, or returns X.
    function receiveResult(bytes32 swapId, State outcome, Reason reason, uint128 amountY) external onlyInbox {
        Swap storage swap = _swaps[swapId];
        if (swap.state != State.Initiated) revert NotInitiated(swapId, swap.state);
        Terms storage terms = _terms[swap.termsId];
        (uint64 source, address sender, bytes32 assetId, uint256 amount) = inbox.context();
        if (source != terms.chainB || sender != terms.deskB) revert NotFromCounterparty(source, sender);
        bytes32 paid;
        if (outcome == State.Completed && reason == Reason.None) {
            if (amountY < swap.minAmountY || amount != amountY) revert WrongResult(swapId);
            paid = terms.assetY;
            swap.amountY = amountY;
        } else if (outcome == State.Refunded && reason != Reason.None && reason != Reason.Bounced) {
            if (amount != swap.amountX) revert WrongResult(swapId);
            paid = terms.assetX;
        } else {
            revert WrongResult(swapId);
        }
        if (assetId != paid) revert WrongResult(swapId);
        swap.state = outcome;
        swap.reason = reason;
        IERC20(_tokenOf(paid)).safeTransfer(swap.user, amount);
        emit SwapRecorded(swapId, swap);
    }

    /// @notice A: B's operator bounced the phase-1 message (its value came home to this desk): the user
    ///         gets X back. Anyone may call it.
    function reclaim(bytes32 swapId) external {
        Swap storage swap = _swaps[swapId];
        if (swap.state != State.Initiated) revert NotInitiated(swapId, swap.state);
        // B's bounce of this swap's phase 1, bringing back exactly its X (a bounce from another chain, or
        // of another value, is not this swap's refund).
        bytes32 expected = Messages.refundOf(_terms[swap.termsId].chainB, _terms[swap.termsId].assetX, swap.amountX);
        if (inbox.refunded(Messages.idOf(chainId, swap.messageNonce)) != expected) revert NotBounced(swapId);
        swap.state = State.Refunded;
        swap.reason = Reason.Bounced;
        IERC20(_tokenOf(_terms[swap.termsId].assetX)).safeTransfer(swap.user, swap.amountX);
        emit SwapRecorded(swapId, swap);
    }

    // --- views ----------------------------------------------------------------------------------

    function termsOf(bytes32 termsId) external view returns (Terms memory) {
        return _terms[termsId];
    }

    function swapOf(bytes32 swapId) external view returns (Swap memory) {
        return _swaps[swapId];
    }

    /// @notice The Y a swap of `amountX` pays at B's quote now, after the fee (0 without a quote).
    function quote(bytes32 termsId, uint128 amountX) public view returns (uint128) {
        Terms storage terms = _terms[termsId];
        uint256 gross = Math.mulDiv(amountX, price[terms.assetX][terms.assetY], PRICE_ONE);
        uint256 net = Math.mulDiv(gross, MAX_FEE_BPS - terms.feeBps, MAX_FEE_BPS);
        return net > type(uint128).max ? type(uint128).max : uint128(net);
    }

    function swapIdOf(uint64 chainA, address deskA, uint64 nonce) public pure returns (bytes32) {
        return keccak256(abi.encode(chainA, deskA, nonce));
    }

    // --- internals ------------------------------------------------------------------------------

    function _record(bytes32 swapId, Order calldata order, uint128 amountY, uint64 nonce, State state, Reason reason)
        private
    {
        Swap memory swap =
            Swap(order.termsId, order.user, order.amountX, order.minAmountY, amountY, order.deadline, nonce, state, reason);
        _swaps[swapId] = swap;
        emit SwapRecorded(swapId, swap);
    }

    /// @dev Sends `amount` of an asset this desk holds to `desk` on `chain`, with the call `data`.
    function _send(uint64 chain, address desk, bytes32 assetId, uint256 amount, bytes memory data)
        private
        returns (uint64 nonce)
    {
        IERC20(_tokenOf(assetId)).forceApprove(address(router), amount);
        (nonce,) = outbox.sendWithAsset(chain, desk, data, assetId, amount);
    }

    function _tokenOf(bytes32 assetId) private view returns (address token) {
        (,, token) = router.assets(assetId);
        if (token == address(0)) revert UnknownAsset(assetId);
        if (token == router.NATIVE_TOKEN()) revert NativeNotSwappable();
    }

    /// @dev Takes `amount` of `token` from `from`; returns what arrived (a fee-on-transfer token gives less).
    function _pull(address token, address from, uint256 amount) private returns (uint256) {
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(from, address(this), amount);
        return IERC20(token).balanceOf(address(this)) - before;
    }
}
