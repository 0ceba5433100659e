// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {PoseidonT2} from "../generated/PoseidonT2.sol";
import {PoseidonT3} from "../generated/PoseidonT3.sol";
import {PoseidonT4} from "../generated/PoseidonT4.sol";
import {PoseidonT5} from "../generated/PoseidonT5.sol";
import {PoseidonT6} from "../generated/PoseidonT6.sol";
import {PoseidonT7} from "../generated/PoseidonT7.sol";

/// @title TESTS AND BENCHMARKS ONLY: calls each linked Poseidon library and reports the gas of the call.
/// @notice `gasUsed` covers the library call as a contract pays it (DELEGATECALL to a warm address,
/// arguments, the hash, the result); the library's address is warmed first, so a transaction's first
/// call to it costs 2,500 gas more (EIP-2929).
contract PoseidonHarness {
    function hashT2(uint256[1] memory inputs) external view returns (uint256 hash, uint256 gasUsed) {
        require(address(PoseidonT2).code.length > 0);
        uint256 before = gasleft();
        hash = PoseidonT2.hash(inputs);
        gasUsed = before - gasleft();
    }

    function hashT3(uint256[2] memory inputs) external view returns (uint256 hash, uint256 gasUsed) {
        require(address(PoseidonT3).code.length > 0);
        uint256 before = gasleft();
        hash = PoseidonT3.hash(inputs);
        gasUsed = before - gasleft();
    }

    function hashT4(uint256[3] memory inputs) external view returns (uint256 hash, uint256 gasUsed) {
        require(address(PoseidonT4).code.length > 0);
        uint256 before = gasleft();
        hash = PoseidonT4.hash(inputs);
        gasUsed = before - gasleft();
    }

    function hashT5(uint256[4] memory inputs) external view returns (uint256 hash, uint256 gasUsed) {
        require(address(PoseidonT5).code.length > 0);
        uint256 before = gasleft();
        hash = PoseidonT5.hash(inputs);
        gasUsed = before - gasleft();
    }

    function hashT6(uint256[5] memory inputs) external view returns (uint256 hash, uint256 gasUsed) {
        require(address(PoseidonT6).code.length > 0);
        uint256 before = gasleft();
        hash = PoseidonT6.hash(inputs);
        gasUsed = before - gasleft();
    }

    function hashT7(uint256[6] memory inputs) external view returns (uint256 hash, uint256 gasUsed) {
        require(address(PoseidonT7).code.length > 0);
        uint256 before = gasleft();
        hash = PoseidonT7.hash(inputs);
        gasUsed = before - gasleft();
    }
}
