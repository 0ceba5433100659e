// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {BridgedToken} from "./BridgedToken.sol";

/// @title AssetRouter
/// @notice The asset layer of one chain. Every asset has one origin chain and one id,
///         assetId = keccak256(abi.encode(originChainId, originToken)); the chain's native base
///         token is the origin token NATIVE_TOKEN. On its origin chain an asset is locked in this
///         router's vault when sent and released from it on receipt; on every other chain it is a
///         BridgedToken that this router mints on receipt and burns when sent. Only the chain's
///         Outbox may lock or burn, and only its Inbox may release or mint.
contract AssetRouter is ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Stand-in address for the native base token (ZKsync's ETH_TOKEN_ADDRESS convention).
    address public constant NATIVE_TOKEN = address(1);

    struct Asset {
        uint256 originChainId;
        address originToken;
        /// @dev The token on this chain: originToken on the origin chain, else a BridgedToken.
        address token;
    }

    /// @notice May call connect() once; has no other power.
    address public immutable deployer;
    address public outbox;
    address public inbox;

    mapping(bytes32 assetId => Asset) public assets;
    /// @notice The reverse of assets[id].token, for every registered token of this chain.
    mapping(address token => bytes32 assetId) public assetIdOfToken;
    /// @notice abi.encode(originChainId, originToken, name, symbol, decimals), fixed at registration:
    ///         sent with every transfer so the destination can deploy the BridgedToken.
    mapping(bytes32 assetId => bytes) public assetDataOf;
    /// @notice Origin assets held in the vault: the most that can ever be released.
    mapping(bytes32 assetId => uint256) public locked;

    event Connected(address outbox, address inbox);
    event AssetRegistered(bytes32 indexed assetId, uint256 originChainId, address originToken, address token);
    event Locked(bytes32 indexed assetId, address indexed from, uint256 amount);
    event Burned(bytes32 indexed assetId, address indexed from, uint256 amount);
    event Released(bytes32 indexed assetId, address indexed to, uint256 amount);
    event Minted(bytes32 indexed assetId, address indexed to, uint256 amount);

    error OnlyDeployer(address caller);
    error AlreadyConnected();
    error ZeroAddress();
    error OnlyOutbox(address caller);
    error OnlyInbox(address caller);
    error UnknownAsset(bytes32 assetId);
    error AlreadyRegistered(bytes32 assetId);
    error NotAContract(address token);
    error BridgedTokenNotOrigin(address token);
    error ZeroAmount();
    error NativeValueMismatch(uint256 expected, uint256 received);
    error TransferShortfall(uint256 expected, uint256 received);
    error InsufficientLocked(bytes32 assetId, uint256 locked, uint256 requested);
    error AssetDataMismatch(bytes32 assetId, bytes32 computed);
    error NativeTransferFailed(address to, uint256 amount);

    constructor(string memory nativeName, string memory nativeSymbol) {
        deployer = msg.sender;
        _register(
            block.chainid, NATIVE_TOKEN, NATIVE_TOKEN, abi.encode(block.chainid, NATIVE_TOKEN, nativeName, nativeSymbol, uint8(18))
        );
    }

    modifier onlyOutbox() {
        if (msg.sender != outbox) revert OnlyOutbox(msg.sender);
        _;
    }

    modifier onlyInbox() {
        if (msg.sender != inbox) revert OnlyInbox(msg.sender);
        _;
    }

    /// @notice Binds the chain's Outbox and Inbox, once; afterwards no one can change them.
    function connect(address outbox_, address inbox_) external {
        if (msg.sender != deployer) revert OnlyDeployer(msg.sender);
        if (outbox != address(0)) revert AlreadyConnected();
        if (outbox_ == address(0) || inbox_ == address(0)) revert ZeroAddress();
        outbox = outbox_;
        inbox = inbox_;
        emit Connected(outbox_, inbox_);
    }

    function assetIdOf(uint256 originChainId, address originToken) public pure returns (bytes32) {
        return keccak256(abi.encode(originChainId, originToken));
    }

    /// @notice The asset id of this chain's native base token.
    function nativeAssetId() external view returns (bytes32) {
        return assetIdOf(block.chainid, NATIVE_TOKEN);
    }

    /// @notice Registers an ERC-20 of this chain as an origin asset. Anyone may call it.
    function registerToken(address token) external returns (bytes32 assetId) {
        if (token.code.length == 0) revert NotAContract(token);
        bytes32 existing = assetIdOfToken[token];
        if (existing != bytes32(0)) {
            // A BridgedToken of ours has its origin elsewhere; wrapping it again would give one value two ids.
            if (assets[existing].originChainId != block.chainid) revert BridgedTokenNotOrigin(token);
            revert AlreadyRegistered(existing);
        }
        _register(block.chainid, token, token, _tokenAssetData(IERC20Metadata(token)));
        return assetIdOf(block.chainid, token);
    }

    /// @notice Takes `amount` of an asset from `from` for sending: locks it in the vault on its
    ///         origin chain, burns it elsewhere. Native value arrives as msg.value.
    /// @return assetData abi.encode(originChainId, originToken, name, symbol, decimals): what the
    ///         destination router needs to deploy the BridgedToken on the asset's first arrival.
    function lockOrBurn(bytes32 assetId, address from, uint256 amount)
        external
        payable
        onlyOutbox
        nonReentrant
        returns (bytes memory assetData)
    {
        if (amount == 0) revert ZeroAmount();
        Asset memory asset = _known(assetId);
        if (asset.originChainId == block.chainid) {
            if (asset.token == NATIVE_TOKEN) {
                if (msg.value != amount) revert NativeValueMismatch(amount, msg.value);
            } else {
                if (msg.value != 0) revert NativeValueMismatch(0, msg.value);
                uint256 before = IERC20(asset.token).balanceOf(address(this));
                IERC20(asset.token).safeTransferFrom(from, address(this), amount);
                uint256 received = IERC20(asset.token).balanceOf(address(this)) - before;
                if (received != amount) revert TransferShortfall(amount, received);
            }
            locked[assetId] += amount;
            emit Locked(assetId, from, amount);
        } else {
            if (msg.value != 0) revert NativeValueMismatch(0, msg.value);
            BridgedToken(asset.token).burn(from, amount);
            emit Burned(assetId, from, amount);
        }
        return assetDataOf[assetId];
    }

    /// @notice Gives `amount` of an asset to `to` on receipt: releases it from the vault on its
    ///         origin chain, mints it elsewhere (deploying the BridgedToken on first arrival).
    function releaseOrMint(bytes32 assetId, address to, uint256 amount, bytes calldata assetData)
        external
        onlyInbox
        nonReentrant
    {
        if (amount == 0) revert ZeroAmount();
        if (to == address(0)) revert ZeroAddress();
        Asset memory asset = assets[assetId];
        if (asset.token == address(0)) asset = _deployBridged(assetId, assetData);
        if (asset.originChainId == block.chainid) {
            uint256 available = locked[assetId];
            if (amount > available) revert InsufficientLocked(assetId, available, amount);
            locked[assetId] = available - amount;
            emit Released(assetId, to, amount);
            if (asset.token == NATIVE_TOKEN) {
                (bool ok,) = to.call{value: amount}("");
                if (!ok) revert NativeTransferFailed(to, amount);
            } else {
                IERC20(asset.token).safeTransfer(to, amount);
            }
        } else {
            BridgedToken(asset.token).mint(to, amount);
            emit Minted(assetId, to, amount);
        }
    }

    function _known(bytes32 assetId) private view returns (Asset memory asset) {
        asset = assets[assetId];
        if (asset.token == address(0)) revert UnknownAsset(assetId);
    }

    function _register(uint256 originChainId, address originToken, address token, bytes memory assetData) private {
        bytes32 assetId = assetIdOf(originChainId, originToken);
        assets[assetId] = Asset(originChainId, originToken, token);
        assetIdOfToken[token] = assetId;
        assetDataOf[assetId] = assetData;
        emit AssetRegistered(assetId, originChainId, originToken, token);
    }

    function _deployBridged(bytes32 assetId, bytes calldata assetData) private returns (Asset memory) {
        (uint256 originChainId, address originToken, string memory name, string memory symbol, uint8 decimals_) =
            abi.decode(assetData, (uint256, address, string, string, uint8));
        bytes32 computed = assetIdOf(originChainId, originToken);
        if (computed != assetId) revert AssetDataMismatch(assetId, computed);
        // An asset of this chain that was never registered was never locked: nothing to release.
        if (originChainId == block.chainid) revert UnknownAsset(assetId);
        BridgedToken token =
            new BridgedToken{salt: assetId}(name, symbol, decimals_, assetId, originChainId, originToken);
        _register(originChainId, originToken, address(token), assetData);
        return assets[assetId];
    }

    /// @dev Metadata is optional in ERC-20: a token without it still moves, under empty names.
    function _tokenAssetData(IERC20Metadata token) private view returns (bytes memory) {
        string memory name;
        string memory symbol;
        uint8 decimals_ = 18;
        try token.name() returns (string memory n) {
            name = n;
        } catch {}
        try token.symbol() returns (string memory s) {
            symbol = s;
        } catch {}
        try token.decimals() returns (uint8 d) {
            decimals_ = d;
        } catch {}
        return abi.encode(block.chainid, address(token), name, symbol, decimals_);
    }
}
