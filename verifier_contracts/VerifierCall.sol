// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

/// @title VerifierCall: how this project's contracts ask an ezkl verifier about a proof.
library VerifierCall {
    /// Whether `verifier` answers `request` (an encoded verifyProof call) with a first word
    /// of 1, as both ezkl verifiers (own and reusable) do for a valid proof; they revert or
    /// answer 0 otherwise. In assembly: Solidity 0.8.20's `staticcall(bytes)` copies the
    /// request again a word at a time, about 80 gas per instance.
    function accepts(address verifier, bytes memory request) internal view returns (bool valid) {
        assembly ("memory-safe") {
            let ok := staticcall(gas(), verifier, add(request, 0x20), mload(request), 0, 0x20)
            valid := and(and(ok, gt(returndatasize(), 0x1f)), eq(mload(0), 1))
        }
    }
}
