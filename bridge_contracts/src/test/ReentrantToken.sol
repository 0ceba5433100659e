// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Outbox} from "../Outbox.sol";

/// @title ReentrantToken — TESTS ONLY
/// @notice An ERC-20 that, while the AssetRouter pulls it during Outbox.sendWithAsset, sends a
///         message of its own through the same Outbox: tests show that nonces, the rolling hash and
///         the events stay in one order.
contract ReentrantToken is ERC20 {
    Outbox public outbox;
    uint64 public destChainId;

    constructor() ERC20("Reentrant", "RE") {
        _mint(msg.sender, 1e24);
    }

    function arm(Outbox outbox_, uint64 destChainId_) external {
        outbox = outbox_;
        destChainId = destChainId_;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (address(outbox) != address(0)) outbox.send(destChainId, address(this), "reentered");
        return super.transferFrom(from, to, value);
    }
}
