// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import {VerifierCall} from "./VerifierCall.sol";

/// @title TrainingLedger: training runs advanced only by proven SGD steps (or rounds).
/// @notice A run is identified by a bytes32 id and holds the Poseidon commitment of its
///         current weights. A step proof of the run's step circuit has public instances
///         [H(weights_in), H(x), H(y), H(weights_out), H(loss)] (uint256 values of the
///         big-endian field elements, as ezkl's verifiers take them). A step is accepted
///         only if it verifies and starts from the current weights; the run then moves to
///         its weights_out. A step that does not start from the current weights (submitted
///         out of order, replayed, or forked from an earlier state) is refused.
///
///         A federated run advances by rounds: `clients` step proofs, each from the current
///         global weights, and one proof of the aggregation circuit, whose public instances
///         are [H(w_0), ..., H(w_{clients-1}), H(global)], where w_k is client k's
///         weights_out. The run then moves to H(global).
///
///         A circuit is checked by its own verifier contract (`verifyProof(bytes,uint256[])`),
///         or, when that is too big for EIP-170 (step circuits usually are), by ezkl's shared
///         reusable verifier given the circuit's verifying-key artifact (VKA). A VKA is
///         stored once on the ledger (`storeVka`, as the code of a data contract, so a step
///         does not pay for it in calldata or storage reads) and named when a run starts.
///
///         A run may pin its batch schedule: the Merkle root of the batches its steps must
///         use, in order (for a federated run, round r's client k uses batch r*clients+k).
///         A leaf is keccak256(abi.encode(H(x), H(y))); an inner node keccak256(abi.encode(
///         left, right)); the leaves are padded with zero words to a power of two. A step
///         then carries the sibling path of its leaf, and is refused if its batch is not the
///         scheduled one or the schedule is used up. A zero root accepts any batch.
///
///         The first caller to start a run owns it; only the owner submits its steps or
///         rounds (so a copied proof cannot be replayed by someone else, and nobody else can
///         advance the run from weights they happen to know) or hands the run over (to the
///         zero address: the run is frozen; its id stays taken). The ledger trusts the
///         verifiers and VKAs the owner names: readers should check them against the
///         circuits they expect (e.g. in the ProofRegistry, whose vkDigest for a reusable
///         circuit is the VKA digest `vkaDigestOf` gives).
contract TrainingLedger {
    struct Run {
        address owner;
        uint64 clients; // step proofs per round; zero for a run of single steps
        address stepVerifier;
        uint64 steps; // steps (or rounds) accepted so far
        address stepVka; // VKA data contract for ezkl's reusable verifier; zero: own verifier
        uint64 batchCount; // batches in the schedule
        address aggregationVerifier; // zero for a run of single steps
        address aggregationVka;
        bytes32 current; // commitment of the current (global) weights
        bytes32 batchRoot; // Merkle root of the batch schedule; zero: any batch
    }

    /// How a run starts. A zero stepVka or aggregationVka: that circuit has its own
    /// verifier; zero clients and aggregationVerifier: a run of single steps; a zero
    /// batchRoot (and batchCount): no batch schedule.
    struct RunSpec {
        address stepVerifier;
        address stepVka;
        address aggregationVerifier;
        address aggregationVka;
        uint256 clients;
        bytes32 initialWeights;
        bytes32 batchRoot;
        uint256 batchCount;
    }

    mapping(bytes32 => Run) private runs;
    mapping(bytes32 => address) public vkaData; // VKA digest => its data contract
    mapping(address => bytes32) public vkaDigestOf; // data contract => keccak256 of the words

    event RunStarted(
        bytes32 indexed runId,
        address owner,
        address stepVerifier,
        address stepVka,
        address aggregationVerifier,
        address aggregationVka,
        uint256 clients,
        bytes32 initialWeights,
        bytes32 batchRoot,
        uint256 batchCount
    );
    event StepAccepted(
        bytes32 indexed runId,
        uint256 index,
        bytes32 weightsIn,
        bytes32 batchX,
        bytes32 batchY,
        bytes32 weightsOut,
        bytes32 loss
    );
    event RoundAccepted(bytes32 indexed runId, uint256 round, bytes32 weightsIn, bytes32 weightsOut);
    event OwnershipTransferred(bytes32 indexed runId, address from, address to);
    event VkaStored(bytes32 indexed digest, address data);

    error UnknownRun(bytes32 runId);
    error RunExists(bytes32 runId);
    error NotOwner(bytes32 runId, address caller);
    error NoVerifierCode(address verifier);
    error UnknownVka(address data);
    error VkaNotStored(bytes32 digest);
    /// The run is federated and takes rounds, or is not and takes steps.
    error WrongRunKind(bytes32 runId, bool federated);
    /// A step does not start from the run's current weights.
    error OutOfOrder(bytes32 expected, bytes32 got);
    /// Proof `index` does not verify: a step proof, or in a round the step proof of
    /// client `index`, or the aggregation proof when `index` equals the client count.
    error InvalidProof(bytes32 runId, uint256 index);
    /// Proof `index` (as for InvalidProof) has `got` public instances, not `expected`.
    error BadInstances(uint256 index, uint256 expected, uint256 got);
    error WrongClientCount(uint256 expected, uint256 got);
    /// The aggregation proof's input `client` is not that client's weights_out.
    error AggregationMismatch(uint256 client);
    /// A batch schedule needs a root and at least one batch, or neither.
    error BadSchedule(bytes32 batchRoot, uint256 batchCount);
    /// Proof `index` (as for InvalidProof) is not on batch `position` of the schedule.
    error UnscheduledBatch(uint256 index, uint256 position);
    /// The schedule's `count` batches are used up.
    error ScheduleEnded(uint256 count);
    /// A batch path has `got` siblings; the schedule's tree needs `expected`.
    error BadBatchPath(uint256 expected, uint256 got);

    // verifyProof of a circuit's own verifier, and of ezkl's reusable verifier (with the VKA).
    bytes4 private constant VERIFY = bytes4(keccak256("verifyProof(bytes,uint256[])"));
    bytes4 private constant VERIFY_WITH_VKA = bytes4(keccak256("verifyProof(bytes,uint256[],bytes32[])"));
    uint256 private constant STEP_INSTANCES = 5;

    /// Start a run (see RunSpec); the caller owns it.
    function startRun(bytes32 runId, RunSpec calldata spec) external {
        if (runs[runId].stepVerifier != address(0)) revert RunExists(runId);
        _checkVerifier(spec.stepVerifier, spec.stepVka);
        uint256 clients = spec.clients;
        if (clients != 0 || spec.aggregationVerifier != address(0)) {
            if (clients == 0 || clients > type(uint64).max) revert WrongClientCount(1, clients);
            _checkVerifier(spec.aggregationVerifier, spec.aggregationVka);
        }
        if ((spec.batchRoot == bytes32(0)) != (spec.batchCount == 0) || spec.batchCount > type(uint64).max) {
            revert BadSchedule(spec.batchRoot, spec.batchCount);
        }
        runs[runId] = Run(
            msg.sender,
            uint64(clients),
            spec.stepVerifier,
            0,
            spec.stepVka,
            uint64(spec.batchCount),
            spec.aggregationVerifier,
            spec.aggregationVka,
            spec.initialWeights,
            spec.batchRoot
        );
        emit RunStarted(
            runId,
            msg.sender,
            spec.stepVerifier,
            spec.stepVka,
            spec.aggregationVerifier,
            spec.aggregationVka,
            clients,
            spec.initialWeights,
            spec.batchRoot,
            spec.batchCount
        );
    }

    /// Store a VKA (once per VKA; later calls return the same data contract).
    function storeVka(bytes32[] calldata vka) external returns (address data) {
        bytes32 digest = keccak256(abi.encodePacked(vka));
        data = vkaData[digest];
        if (data != address(0)) return data;
        // The data contract's code is a STOP byte (it cannot be called) and then the words.
        bytes memory code = abi.encodePacked(hex"00", vka);
        bytes memory creation = abi.encodePacked(hex"63", uint32(code.length), hex"80600e6000396000f3", code);
        assembly {
            data := create(0, add(creation, 0x20), mload(creation))
        }
        if (data == address(0)) revert VkaNotStored(digest);
        vkaData[digest] = data;
        vkaDigestOf[data] = digest;
        emit VkaStored(digest, data);
    }

    /// Accept the run's next step: a proof of the step circuit from the current weights
    /// (and, if the run pins a schedule, on the scheduled batch: `batchPath` is its leaf's
    /// sibling path, empty otherwise).
    function submitStep(bytes32 runId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata batchPath)
        external
    {
        Run storage run = _owned(runId);
        if (run.clients != 0) revert WrongRunKind(runId, true);
        uint256 index = run.steps;
        _checkStep(runId, run, proof, instances, 0);
        _checkBatch(run, instances, 0, index, batchPath);
        run.current = bytes32(instances[3]);
        run.steps = uint64(index + 1);
        emit StepAccepted(
            runId,
            index,
            bytes32(instances[0]),
            bytes32(instances[1]),
            bytes32(instances[2]),
            bytes32(instances[3]),
            bytes32(instances[4])
        );
    }

    /// Accept the run's next federated round: one step proof per client, all from the
    /// current global weights (each on its scheduled batch, if the run pins a schedule:
    /// `batchPaths[k]` is client k's sibling path), and the aggregation of their weights_out.
    function submitRound(
        bytes32 runId,
        bytes[] calldata stepProofs,
        uint256[][] calldata stepInstances,
        bytes calldata aggregationProof,
        uint256[] calldata aggregationInstances,
        bytes32[][] calldata batchPaths
    ) external {
        Run storage run = _owned(runId);
        _checkClients(runId, run, stepProofs, stepInstances, aggregationInstances);
        uint256 clients = run.clients;
        if (batchPaths.length != clients) revert WrongClientCount(clients, batchPaths.length);
        for (uint256 k = 0; k < clients; ++k) {
            _checkBatch(run, stepInstances[k], k, run.steps * clients + k, batchPaths[k]);
        }
        if (!_verifies(run.aggregationVerifier, run.aggregationVka, aggregationProof, aggregationInstances)) {
            revert InvalidProof(runId, clients);
        }
        uint256 round = run.steps;
        bytes32 weightsIn = run.current;
        bytes32 weightsOut = bytes32(aggregationInstances[clients]);
        run.current = weightsOut;
        run.steps = uint64(round + 1);
        emit RoundAccepted(runId, round, weightsIn, weightsOut);
    }

    function transferOwnership(bytes32 runId, address newOwner) external {
        _owned(runId).owner = newOwner;
        emit OwnershipTransferred(runId, msg.sender, newOwner);
    }

    function get(bytes32 runId) external view returns (Run memory) {
        return runs[runId];
    }

    function _checkVerifier(address verifier, address vka) private view {
        if (verifier.code.length == 0) revert NoVerifierCode(verifier);
        if (vka != address(0) && vkaDigestOf[vka] == bytes32(0)) revert UnknownVka(vka);
    }

    function _owned(bytes32 runId) private view returns (Run storage run) {
        run = runs[runId];
        if (run.stepVerifier == address(0)) revert UnknownRun(runId);
        if (run.owner != msg.sender) revert NotOwner(runId, msg.sender);
    }

    /// Reverts unless a round has one step proof per client, each checked as by
    /// `_checkStep`, and the aggregation proof's inputs are the clients' weights_out.
    function _checkClients(
        bytes32 runId,
        Run storage run,
        bytes[] calldata stepProofs,
        uint256[][] calldata stepInstances,
        uint256[] calldata aggregationInstances
    ) private view {
        uint256 clients = run.clients;
        if (clients == 0) revert WrongRunKind(runId, false);
        if (stepProofs.length != clients) revert WrongClientCount(clients, stepProofs.length);
        if (stepInstances.length != clients) revert WrongClientCount(clients, stepInstances.length);
        if (aggregationInstances.length != clients + 1) {
            revert BadInstances(clients, clients + 1, aggregationInstances.length);
        }
        for (uint256 k = 0; k < clients; ++k) {
            _checkStep(runId, run, stepProofs[k], stepInstances[k], k);
            if (aggregationInstances[k] != stepInstances[k][3]) revert AggregationMismatch(k);
        }
    }

    /// Reverts unless step proof `index` has five instances, starts from the run's current
    /// weights and verifies with the run's step verifier.
    function _checkStep(
        bytes32 runId,
        Run storage run,
        bytes calldata proof,
        uint256[] calldata instances,
        uint256 index
    ) private view {
        if (instances.length != STEP_INSTANCES) revert BadInstances(index, STEP_INSTANCES, instances.length);
        bytes32 weightsIn = run.current;
        if (bytes32(instances[0]) != weightsIn) revert OutOfOrder(weightsIn, bytes32(instances[0]));
        if (!_verifies(run.stepVerifier, run.stepVka, proof, instances)) revert InvalidProof(runId, index);
    }

    /// Reverts unless the run pins no schedule, or proof `index`'s batch (instances 1 and
    /// 2: H(x), H(y)) is leaf `position` of the schedule's Merkle tree by `path`.
    function _checkBatch(
        Run storage run,
        uint256[] calldata instances,
        uint256 index,
        uint256 position,
        bytes32[] calldata path
    ) private view {
        bytes32 root = run.batchRoot;
        if (root == bytes32(0)) return;
        uint256 count = run.batchCount;
        if (position >= count) revert ScheduleEnded(count);
        uint256 depth = 0;
        while ((uint256(1) << depth) < count) ++depth;
        if (path.length != depth) revert BadBatchPath(depth, path.length);
        bytes32 node = keccak256(abi.encode(instances[1], instances[2]));
        for (uint256 level = 0; level < depth; ++level) {
            node = (position >> level) & 1 == 0
                ? keccak256(abi.encode(node, path[level]))
                : keccak256(abi.encode(path[level], node));
        }
        if (node != root) revert UnscheduledBatch(index, position);
    }

    /// Both verifiers answer with a first word of 1 for a valid proof, and revert or answer
    /// 0 otherwise; a revert counts as invalid. (The reusable verifier reads the VKA's
    /// rescaling data from calldata right after the instances: the standard encoding of
    /// (proof, instances, vka) puts it there.)
    function _verifies(address verifier, address vka, bytes calldata proof, uint256[] calldata instances)
        private
        view
        returns (bool)
    {
        bytes memory request;
        if (vka == address(0)) {
            request = abi.encodeWithSelector(VERIFY, proof, instances);
        } else {
            request = abi.encodeWithSelector(VERIFY_WITH_VKA, proof, instances, _loadVka(vka));
        }
        return VerifierCall.accepts(verifier, request);
    }

    function _loadVka(address data) private view returns (bytes32[] memory vka) {
        uint256 size = data.code.length - 1; // after the STOP byte
        vka = new bytes32[](size / 32);
        assembly {
            extcodecopy(data, add(vka, 0x20), 1, size)
        }
    }
}
