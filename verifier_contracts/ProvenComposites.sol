// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import {VerifierCall} from "./VerifierCall.sol";

/// @title ProvenComposites: accepts the result of a model proven in segments, in one call.
/// @notice A segmented model is split at cut tensors into K segments, each its own circuit
///         with its own ezkl verifier. Segment i's outputs at a cut are segment i+1's
///         inputs; the proofs show this only if the contract checks that both proofs speak
///         of the same tensor:
///           * hashed links: segment i publishes the Poseidon hash of its output as a public
///             instance and segment i+1 the hash of its input, so two instances must be equal
///             (`Check.source` INSTANCE, positions are instance indices);
///           * polycommit links: each proof carries the KZG commitment (a G1 point, 64 bytes)
///             to the cut tensor, so two 64-byte pieces of the proofs must be equal
///             (`Check.source` PROOF_POINT, positions are byte offsets into the proofs).
///         A composite is registered once under its id (prover's composite circuit id) with
///         its segment verifiers and its checks; every link must have at least one check,
///         else the segments would be unrelated proofs. The first registrant owns the entry
///         and only the owner may re-register it (after a redeployment of a verifier).
///
///         `submit` verifies every segment proof with its verifier, then every check, and
///         accepts the result once: its key is keccak256(compositeId, all instances).
///         Errors name the failing segment, or the link and the check.
contract ProvenComposites {
    uint8 public constant INSTANCE = 0;
    uint8 public constant PROOF_POINT = 1;
    uint256 private constant POINT_BYTES = 64;

    /// One equality between segment `link` and segment `link + 1`.
    struct Check {
        uint32 link;
        uint8 source;
        uint32 fromPos;
        uint32 toPos;
    }

    struct Composite {
        address owner;
        address[] verifiers;
        Check[] checks;
    }

    struct Result {
        bytes32 compositeId;
        address prover;
        uint64 blockNumber;
    }

    mapping(bytes32 => Composite) private composites;
    mapping(bytes32 => Result) public results;

    event CompositeRegistered(bytes32 indexed compositeId, address[] verifiers, uint256 checks, address owner);
    event CompositeAccepted(
        bytes32 indexed compositeId, bytes32 indexed resultKey, address indexed prover, uint256[][] instances
    );

    error NotOwner(bytes32 compositeId, address caller);
    error NoVerifierCode(uint256 segment, address verifier);
    error BadCheck(uint256 check);
    error UnlinkedSegments(uint256 link);
    error UnknownComposite(bytes32 compositeId);
    error WrongSegmentCount(uint256 expected, uint256 proofs, uint256 instances);
    error InvalidSegmentProof(uint256 segment);
    error LinkMismatch(uint256 link, uint256 check);
    error AlreadyAccepted(bytes32 resultKey);

    bytes4 private constant VERIFY = bytes4(keccak256("verifyProof(bytes,uint256[])"));

    function register(bytes32 compositeId, address[] calldata verifiers, Check[] calldata checks) external {
        Composite storage entry = composites[compositeId];
        if (entry.owner != address(0) && entry.owner != msg.sender) revert NotOwner(compositeId, msg.sender);
        for (uint256 i = 0; i < verifiers.length; i++) {
            if (verifiers[i].code.length == 0) revert NoVerifierCode(i, verifiers[i]);
        }
        bool[] memory linked = new bool[](verifiers.length);
        delete entry.checks;
        for (uint256 j = 0; j < checks.length; j++) {
            Check calldata c = checks[j];
            if (c.link + 1 >= verifiers.length || c.source > PROOF_POINT) revert BadCheck(j);
            linked[c.link] = true;
            entry.checks.push(c);
        }
        for (uint256 k = 0; k + 1 < verifiers.length; k++) {
            if (!linked[k]) revert UnlinkedSegments(k);
        }
        entry.owner = msg.sender;
        entry.verifiers = verifiers;
        emit CompositeRegistered(compositeId, verifiers, checks.length, msg.sender);
    }

    function get(bytes32 compositeId)
        external
        view
        returns (address owner, address[] memory verifiers, Check[] memory checks)
    {
        Composite storage entry = composites[compositeId];
        return (entry.owner, entry.verifiers, entry.checks);
    }

    function resultKey(bytes32 compositeId, uint256[][] calldata instances) public pure returns (bytes32) {
        return keccak256(abi.encode(compositeId, instances));
    }

    /// The whole check without recording: true, or the same error `submit` would raise.
    function check(bytes32 compositeId, bytes[] calldata proofs, uint256[][] calldata instances)
        public
        view
        returns (bool)
    {
        Composite storage entry = composites[compositeId];
        uint256 n = entry.verifiers.length;
        if (n == 0) revert UnknownComposite(compositeId);
        if (proofs.length != n || instances.length != n) {
            revert WrongSegmentCount(n, proofs.length, instances.length);
        }
        for (uint256 i = 0; i < n; i++) {
            bytes memory request = abi.encodeWithSelector(VERIFY, proofs[i], instances[i]);
            if (!VerifierCall.accepts(entry.verifiers[i], request)) revert InvalidSegmentProof(i);
        }
        Check[] storage checks = entry.checks;
        for (uint256 j = 0; j < checks.length; j++) {
            Check memory c = checks[j];
            if (!_holds(c, proofs, instances)) revert LinkMismatch(c.link, j);
        }
        return true;
    }

    function submit(bytes32 compositeId, bytes[] calldata proofs, uint256[][] calldata instances)
        external
        returns (bytes32 key)
    {
        key = resultKey(compositeId, instances);
        if (results[key].prover != address(0)) revert AlreadyAccepted(key);
        check(compositeId, proofs, instances);
        results[key] = Result(compositeId, msg.sender, uint64(block.number));
        emit CompositeAccepted(compositeId, key, msg.sender, instances);
    }

    function _holds(Check memory c, bytes[] calldata proofs, uint256[][] calldata instances)
        private
        pure
        returns (bool)
    {
        if (c.source == INSTANCE) {
            uint256[] calldata a = instances[c.link];
            uint256[] calldata b = instances[c.link + 1];
            return c.fromPos < a.length && c.toPos < b.length && a[c.fromPos] == b[c.toPos];
        }
        bytes calldata p = proofs[c.link];
        bytes calldata q = proofs[c.link + 1];
        if (c.fromPos + POINT_BYTES > p.length || c.toPos + POINT_BYTES > q.length) return false;
        return keccak256(p[c.fromPos:c.fromPos + POINT_BYTES]) == keccak256(q[c.toPos:c.toPos + POINT_BYTES]);
    }
}
