// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title BridgedToken
/// @notice An asset whose origin is another chain. Only this chain's AssetRouter, which deploys
///         it on the asset's first arrival, can mint (on receipt) and burn (on sending back).
contract BridgedToken is ERC20 {
    /// @notice The AssetRouter that deployed this token and alone controls its supply.
    address public immutable router;
    /// @notice keccak256(abi.encode(originChainId, originToken)).
    bytes32 public immutable assetId;
    uint256 public immutable originChainId;
    address public immutable originToken;
    uint8 private immutable _decimals;

    error OnlyRouter(address caller);

    constructor(
        string memory name_,
        string memory symbol_,
        uint8 decimals_,
        bytes32 assetId_,
        uint256 originChainId_,
        address originToken_
    ) ERC20(name_, symbol_) {
        router = msg.sender;
        assetId = assetId_;
        originChainId = originChainId_;
        originToken = originToken_;
        _decimals = decimals_;
    }

    modifier onlyRouter() {
        if (msg.sender != router) revert OnlyRouter(msg.sender);
        _;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external onlyRouter {
        _mint(to, amount);
    }

    /// @dev The router burns on the holder's behalf when the Outbox sends for that holder;
    ///      no allowance is needed because the router is the supply's only authority.
    function burn(address from, uint256 amount) external onlyRouter {
        _burn(from, amount);
    }
}
