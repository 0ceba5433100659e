// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title DevToken — DEVNET AND TESTS ONLY
/// @notice An ERC-20 whose deployer mints freely: the institutions' tokenized assets on the devnet.
///         A non-zero transferFeeBps makes it a fee-on-transfer token (the fee is burned), so tests
///         can show that the AssetRouter refuses tokens that deliver less than they say.
contract DevToken is ERC20 {
    address public immutable minter;
    uint16 public immutable transferFeeBps;
    uint8 private immutable _decimals;

    error OnlyMinter(address caller);
    error FeeTooHigh(uint16 transferFeeBps);

    constructor(string memory name_, string memory symbol_, uint8 decimals_, uint16 transferFeeBps_)
        ERC20(name_, symbol_)
    {
        if (transferFeeBps_ > 10_000) revert FeeTooHigh(transferFeeBps_);
        minter = msg.sender;
        transferFeeBps = transferFeeBps_;
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert OnlyMinter(msg.sender);
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0) || transferFeeBps == 0) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = value * transferFeeBps / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
