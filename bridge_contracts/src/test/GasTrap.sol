// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice A hostile target for the tests: any call burns almost all the gas it is given, then reverts
///         with as much data as the rest pays for, so that a caller copying the reason runs out of the
///         1/64 of its gas it kept (EIP-150). Without a budget of its own, a priority round executing
///         it would revert at every gas limit and stop the destination's queue.
contract GasTrap {
    fallback() external payable {
        uint256 kept = gasleft() / 63;
        uint256 words = 64;
        while (3 * words + (words * words) / 512 < kept + kept / 4) words += 64;
        uint256 cost = 3 * words + (words * words) / 512;
        while (gasleft() > cost + 5000) {}
        assembly {
            revert(0, mul(words, 32))
        }
    }
}
