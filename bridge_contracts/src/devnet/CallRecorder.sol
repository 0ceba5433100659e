// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice What an Inbox tells the target it is calling (Inbox.context()).
interface IInboxContext {
    function context() external view returns (uint64 sourceChainId, address sender, bytes32 assetId, uint256 amount);
}

/// @title CallRecorder — DEVNET AND TESTS ONLY
/// @notice A message target that records every call it receives from an Inbox: the message's
///         context (source chain, sender, asset, amount), the native value that came with the call
///         and a note. setFailing(true) makes it revert, to show a failed and retried message.
///         Anyone can flip it: it is not meant to hold anything.
contract CallRecorder {
    struct Record {
        uint64 sourceChainId;
        address sender;
        bytes32 assetId;
        uint256 amount;
        uint256 msgValue;
        bytes note;
    }

    /// @notice Every call received, in order.
    Record[] public records;
    /// @notice While true, receiveMessage reverts TargetFailing().
    bool public failing;

    event Received(
        address indexed inbox,
        uint64 indexed sourceChainId,
        address indexed sender,
        bytes32 assetId,
        uint256 amount,
        uint256 msgValue,
        bytes note
    );
    event FailingSet(bool failing);

    error TargetFailing();

    /// @notice The call a message makes: msg.sender must be an Inbox executing a message.
    function receiveMessage(bytes calldata note) external payable {
        if (failing) revert TargetFailing();
        (uint64 sourceChainId, address sender, bytes32 assetId, uint256 amount) = IInboxContext(msg.sender).context();
        records.push(Record(sourceChainId, sender, assetId, amount, msg.value, note));
        emit Received(msg.sender, sourceChainId, sender, assetId, amount, msg.value, note);
    }

    function setFailing(bool failing_) external {
        failing = failing_;
        emit FailingSet(failing_);
    }

    /// @notice The number of calls recorded.
    function count() external view returns (uint256) {
        return records.length;
    }
}
