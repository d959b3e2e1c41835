// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

/// @title ProofRegistry: which verifier contract checks proofs of which circuit.
/// @notice A circuit id is prover's sha256 digest of (model, calibration, options, SRS, ezkl).
///         The first registrant of a circuit owns its entry; only the owner may repoint it
///         (for example after a redeployment) or hand it over. A circuit is verified either
///         by its own verifier contract (vkDigest: keccak256 of its vk file, informational)
///         or by ezkl's shared reusable verifier given the circuit's verifying-key artifact
///         (reusable; vkDigest: keccak256 of the artifact's words, checked at each use).
contract ProofRegistry {
    // verifier, devSrs and reusable share one slot: verifierOf reads only it for a
    // circuit with its own verifier.
    struct Entry {
        address verifier;
        bool devSrs;
        bool reusable;
        bytes32 vkDigest;
        address owner;
    }

    mapping(bytes32 => Entry) private entries;

    event CircuitRegistered(
        bytes32 indexed circuitId, address verifier, bytes32 vkDigest, address owner, bool devSrs, bool reusable
    );
    event OwnershipTransferred(bytes32 indexed circuitId, address from, address to);

    error NotOwner(bytes32 circuitId, address caller);
    error NoVerifierCode(address verifier);

    function register(bytes32 circuitId, address verifier, bytes32 vkDigest, bool devSrs, bool reusable) external {
        Entry storage entry = entries[circuitId];
        if (entry.owner != address(0) && entry.owner != msg.sender) {
            revert NotOwner(circuitId, msg.sender);
        }
        if (verifier.code.length == 0) {
            revert NoVerifierCode(verifier);
        }
        entries[circuitId] = Entry(verifier, devSrs, reusable, vkDigest, msg.sender);
        emit CircuitRegistered(circuitId, verifier, vkDigest, msg.sender, devSrs, reusable);
    }

    function transferOwnership(bytes32 circuitId, address newOwner) external {
        Entry storage entry = entries[circuitId];
        if (entry.owner != msg.sender) {
            revert NotOwner(circuitId, msg.sender);
        }
        entry.owner = newOwner;
        emit OwnershipTransferred(circuitId, msg.sender, newOwner);
    }

    function get(bytes32 circuitId) external view returns (Entry memory) {
        return entries[circuitId];
    }

    /// What verifying a proof of `circuitId` needs (the digest only for the reusable
    /// verifier): one storage read for a circuit with its own verifier.
    function verifierOf(bytes32 circuitId) external view returns (address verifier, bool reusable, bytes32 vkDigest) {
        Entry storage entry = entries[circuitId];
        (verifier, reusable) = (entry.verifier, entry.reusable);
        if (reusable) vkDigest = entry.vkDigest;
    }
}
