// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Inbox} from "../Inbox.sol";

/// @title ReentrantTarget — TESTS ONLY
/// @notice A message target that, when an Inbox calls it, makes a call armed beforehand (for
///         example Inbox.execute of the message being executed, or of another one) and records
///         whether it succeeded, what it returned, and the Inbox's context after it: tests show
///         that an Inbox refuses to execute a message twice from within its own execution, and
///         that a nested execution leaves the outer message's context as it was.
contract ReentrantTarget {
    address public to;
    bytes public payload;
    bool public lastOk;
    bytes public lastResult;
    uint64 public sourceAfter;
    address public senderAfter;

    function arm(address to_, bytes calldata payload_) external {
        to = to_;
        payload = payload_;
    }

    function receiveMessage(bytes calldata) external payable {
        (lastOk, lastResult) = to.call(payload);
        (sourceAfter, senderAfter,,) = Inbox(payable(msg.sender)).context();
    }
}
