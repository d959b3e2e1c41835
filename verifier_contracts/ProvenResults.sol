// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import {ProofRegistry} from "./ProofRegistry.sol";
import {VerifierCall} from "./VerifierCall.sol";

/// @title ProvenResults: accepts a computation's result only with a valid proof.
/// @notice A result is the public instances of a proof (inputs, outputs or their hashes, as
///         the circuit's visibility says) for a registered circuit. Each result is accepted
///         once, keyed by keccak256(circuitId, instances). `vka` is the circuit's
///         verifying-key artifact when it uses ezkl's reusable verifier, else empty.
///
///         Gas: a result is one storage slot (its prover and block: the key binds the
///         circuit and the instances), `ResultAccepted` carries no instances (they are in
///         the transaction's calldata; whoever holds them checks them by their key), and
///         the verifier is asked without a second copy of the request (VerifierCall), so
///         accepting a result costs about 40k over its verifier, and about 20 gas more per
///         instance.
///
///         Front-running: a proof seen in the mempool can be copied. `submit` credits the
///         sender, so a copier could take the credit. Where credit matters (payment for
///         proven work), use commit-then-reveal: `commit` a hash binding the proof, the
///         instances, the sender and a salt; after at least one block, `reveal` accepts
///         the result and credits the committer. A copier sees the proof only at reveal,
///         when the committer's earlier commitment already holds the credit.
///
///         Batches: a batch circuit proves N inferences in one proof. Its registry owner
///         sets N once (`setBatchSize`); from then on every accepted proof of that circuit
///         (by `submitBatch`, `submit` or `reveal`) is stored once, under the same key as a
///         single result, and emits one `BatchResultAccepted` per result, keyed
///         keccak256(batchKey, index). One storage write per batch, not per result, is what
///         makes a result's share of the gas small; the results' values stay off-chain
///         (the instances commit to them: in full, or as hashes).
contract ProvenResults {
    ProofRegistry public immutable registry;

    struct Result {
        address prover;
        uint64 blockNumber;
    }

    mapping(bytes32 => Result) public results;
    mapping(bytes32 => uint256) public commitments; // commitment => block it was made in
    mapping(bytes32 => uint256) public batchSizes; // circuit => results per proof (0: single)

    // The instances are in the transaction's calldata (as a batch's are); not in the log.
    event ResultAccepted(bytes32 indexed circuitId, bytes32 indexed resultKey, address indexed prover);
    event Committed(bytes32 indexed commitment, address indexed prover);
    event BatchSizeSet(bytes32 indexed circuitId, uint256 size);
    event BatchAccepted(bytes32 indexed circuitId, bytes32 indexed batchKey, address indexed prover, uint256 size);
    event BatchResultAccepted(
        bytes32 indexed circuitId, bytes32 indexed resultKey, address indexed prover, bytes32 batchKey, uint256 index
    );

    error UnknownCircuit(bytes32 circuitId);
    error InvalidProof(bytes32 circuitId);
    error AlreadyAccepted(bytes32 resultKey);
    error NoCommitment(bytes32 commitment);
    error RevealTooEarly(bytes32 commitment);
    error WrongVka(bytes32 circuitId);
    error NotBatchCircuit(bytes32 circuitId);
    error NotCircuitOwner(bytes32 circuitId, address caller);
    error BatchSizeFixed(bytes32 circuitId, uint256 size);

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

    /// The key of result `index` of the batch accepted under `batchKey` (its resultKey).
    function batchResultKey(bytes32 batchKey, uint256 index) public pure returns (bytes32) {
        return keccak256(abi.encode(batchKey, index));
    }

    /// Declare a registered circuit a batch circuit of `size` results per proof; only the
    /// circuit's registry owner may, once (the same size again is a no-op). Set it before
    /// any result of the circuit is submitted: earlier ones were accepted as single results.
    function setBatchSize(bytes32 circuitId, uint256 size) external {
        ProofRegistry.Entry memory entry = registry.get(circuitId);
        if (entry.verifier == address(0)) revert UnknownCircuit(circuitId);
        if (entry.owner != msg.sender) revert NotCircuitOwner(circuitId, msg.sender);
        uint256 current = batchSizes[circuitId];
        if (current == size) return;
        if (current != 0 || size == 0) revert BatchSizeFixed(circuitId, current);
        batchSizes[circuitId] = size;
        emit BatchSizeSet(circuitId, size);
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

    /// Accept every result of a batch proof in one transaction, credited to the sender
    /// (open to front-running like `submit`; `commit`/`reveal` protect batches too).
    /// Returns the batch key; result i is keyed `batchResultKey(batchKey, i)`.
    function submitBatch(bytes32 circuitId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bytes32)
    {
        if (batchSizes[circuitId] == 0) revert NotBatchCircuit(circuitId);
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
        key = resultKey(circuitId, instances);
        if (results[key].prover != address(0)) revert AlreadyAccepted(key);
        _verify(circuitId, proof, instances, vka);
        results[key] = Result(prover, uint64(block.number));
        uint256 size = batchSizes[circuitId];
        if (size == 0) {
            emit ResultAccepted(circuitId, key, prover);
            return key;
        }
        emit BatchAccepted(circuitId, key, prover, size);
        for (uint256 i = 0; i < size; ++i) {
            emit BatchResultAccepted(circuitId, batchResultKey(key, i), prover, key, i);
        }
    }

    function _verify(bytes32 circuitId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        private
    {
        (address verifier, bool reusable, bytes32 vkDigest) = registry.verifierOf(circuitId);
        if (verifier == address(0)) revert UnknownCircuit(circuitId);
        if (reusable && keccak256(abi.encodePacked(vka)) != vkDigest) revert WrongVka(circuitId);
        bytes memory request = reusable
            ? abi.encodeWithSelector(VERIFY_WITH_VKA, proof, instances, vka)
            : abi.encodeWithSelector(VERIFY, proof, instances);
        if (!VerifierCall.accepts(verifier, request)) revert InvalidProof(circuitId);
    }
}
