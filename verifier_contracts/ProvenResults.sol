// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import {ProofRegistry} from "./ProofRegistry.sol";

/// @title ProvenResults: accepts a computation's result only with a valid proof.
/// @notice A result is the public instances of a proof (inputs, outputs or their hashes, as
///         the circuit's visibility says) for a registered circuit. Each result is accepted
///         once, keyed by keccak256(circuitId, instances). `vka` is the circuit's
///         verifying-key artifact when it uses ezkl's reusable verifier, else empty.
///
///         Front-running: a proof seen in the mempool can be copied. `submit` credits the
///         sender, so a copier could take the credit. Where credit matters (payment for
///         proven work), use commit-then-reveal: `commit` a hash binding the proof, the
///         instances, the sender and a salt; after at least one block, `reveal` accepts
///         the result and credits the committer. A copier sees the proof only at reveal,
///         when the committer's earlier commitment already holds the credit.
contract ProvenResults {
    ProofRegistry public immutable registry;

    struct Result {
        bytes32 circuitId;
        address prover;
        uint64 blockNumber;
    }

    mapping(bytes32 => Result) public results;
    mapping(bytes32 => uint256) public commitments; // commitment => block it was made in

    event ResultAccepted(bytes32 indexed circuitId, bytes32 indexed resultKey, address indexed prover, uint256[] instances);
    event Committed(bytes32 indexed commitment, address indexed prover);

    error UnknownCircuit(bytes32 circuitId);
    error InvalidProof(bytes32 circuitId);
    error AlreadyAccepted(bytes32 resultKey);
    error NoCommitment(bytes32 commitment);
    error RevealTooEarly(bytes32 commitment);
    error WrongVka(bytes32 circuitId);

    // verifyProof(bytes,uint256[]) of a circuit's own verifier, and
    // verifyProof(bytes,uint256[],bytes32[]) of ezkl's reusable verifier.
    bytes4 private constant VERIFY = bytes4(keccak256("verifyProof(bytes,uint256[])"));
    bytes4 private constant VERIFY_WITH_VKA = bytes4(keccak256("verifyProof(bytes,uint256[],bytes32[])"));

    constructor(ProofRegistry registry_) {
        registry = registry_;
    }

    function resultKey(bytes32 circuitId, uint256[] calldata instances) public pure returns (bytes32) {
        return keccak256(abi.encode(circuitId, instances));
    }

    function commitment(
        bytes32 circuitId,
        bytes calldata proof,
        uint256[] calldata instances,
        address prover,
        bytes32 salt
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(circuitId, keccak256(proof), instances, prover, salt));
    }

    /// Accept a result now, credited to the sender (open to front-running; see above).
    function submit(bytes32 circuitId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bytes32)
    {
        return _accept(circuitId, proof, instances, vka, msg.sender);
    }

    function commit(bytes32 commitment_) external {
        if (commitments[commitment_] == 0) {
            commitments[commitment_] = block.number;
            emit Committed(commitment_, msg.sender);
        }
    }

    /// Accept a committed result, credited to the committer (the sender of both calls).
    function reveal(
        bytes32 circuitId,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes32 salt
    ) external returns (bytes32) {
        bytes32 c = commitment(circuitId, proof, instances, msg.sender, salt);
        uint256 madeAt = commitments[c];
        if (madeAt == 0) revert NoCommitment(c);
        if (madeAt >= block.number) revert RevealTooEarly(c);
        delete commitments[c];
        return _accept(circuitId, proof, instances, vka, msg.sender);
    }

    function _accept(
        bytes32 circuitId,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        address prover
    ) private returns (bytes32 key) {
        ProofRegistry.Entry memory entry = registry.get(circuitId);
        if (entry.verifier == address(0)) revert UnknownCircuit(circuitId);
        key = resultKey(circuitId, instances);
        if (results[key].prover != address(0)) revert AlreadyAccepted(key);
        bytes memory request;
        if (entry.reusable) {
            if (keccak256(abi.encodePacked(vka)) != entry.vkDigest) revert WrongVka(circuitId);
            request = abi.encodeWithSelector(VERIFY_WITH_VKA, proof, instances, vka);
        } else {
            request = abi.encodeWithSelector(VERIFY, proof, instances);
        }
        // Both verifiers answer with a first word of 1 for a valid proof, and revert or
        // answer 0 otherwise.
        (bool ok, bytes memory answer) = entry.verifier.call(request);
        if (!ok || answer.length < 32 || abi.decode(answer, (uint256)) != 1) revert InvalidProof(circuitId);
        results[key] = Result(circuitId, prover, uint64(block.number));
        emit ResultAccepted(circuitId, key, prover, instances);
    }
}
