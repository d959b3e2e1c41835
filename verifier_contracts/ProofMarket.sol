// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import {ProofRegistry} from "./ProofRegistry.sol";
import {ProvenResults} from "./ProvenResults.sol";

/// @title ProofMarket: an open market for proofs of registered circuits, paid in ETH.
/// @notice A reverse Dutch auction after RISC Zero Boundless's market.
///
///         Open: a requester asks for a proof of a registered circuit on an input, given as
///         a commitment: keccak256(abi.encode(inputInstances)) and their number n. A proof's
///         public instances begin with the input's (the input values when the circuit's
///         input visibility is public, their Poseidon hashes when hashed; n = 0 for a private
///         input, which binds the circuit only). The requester escrows `maxPrice`.
///
///         Price: `minPrice` until `rampStart`, rising linearly to `maxPrice` at
///         `rampStart + rampPeriod`, then `maxPrice`. Deadlines count from `rampStart`: the
///         lock deadline after `lockTimeout` seconds, the final deadline after `timeout`.
///
///         Lock: until the lock deadline the first prover to post `lockCollateral` fixes the
///         price at the ramp's current value and alone may fulfil until the lock deadline.
///         An unlocked request may be fulfilled by anyone at the current price.
///
///         Fulfil: the proof goes through ProvenResults.submit, so the result is recorded
///         there exactly as any result is (keyed keccak256(circuitId, instances), with this
///         market as its submitter; `RequestFulfilled` names the prover), is verified by the
///         circuit's registered verifier (InvalidProof, WrongVka, UnknownCircuit otherwise),
///         and the instances must open with the request's input (InputMismatch). The
///         prover is paid the price, the requester refunded `maxPrice - price`, the
///         locker's collateral returned (each claims its share; see Payments).
///
///         Replays: a result is accepted once (ProvenResults' AlreadyAccepted), so a proof
///         earns once. Two requests for the same circuit and input are both legitimate, but
///         once one is fulfilled the other cannot be: its requester reads the result from
///         ProvenResults and takes the escrow back after the final deadline.
///
///         Lapsed lock: after the lock deadline the locker may no longer fulfil (LockLapsed);
///         anyone else may, until the final deadline, and is paid from the locker's
///         collateral: half is burned (BURN_BPS), half paid to the late prover, and the
///         requester is refunded all of `maxPrice` (the late prover is paid no price, as in
///         Boundless). Unfulfilled at the final deadline, `expire` (anyone may call it)
///         refunds the escrow; a lapsed lock's collateral is then half burned, half paid to
///         the requester for the wait.
///
///         Payments are pulled, per request: once a request is fulfilled or expired, its
///         prover and its requester each `claim(id)` their share (`owed` says how much).
///         A fulfilment writes no slot per account, only the request's own (its status and
///         prover; the price too where no lock fixed it), so it costs the same whoever is
///         paid: about 21k over ProvenResults.submit for a locked request.
///         Burned wei stays in this contract, counted in `burned`, claimable by no one.
///         So at every moment: this contract's balance = the unclaimed shares of settled
///         requests + escrow of open and locked requests + collateral of locked requests
///         + burned.
///
///         Reentrancy: effects come before interactions. `fulfil` settles the request
///         before its one external call (ProvenResults, which calls the verifier); a revert
///         there undoes it. `claim` marks the shares paid before sending them.
///
///         Front-running: a lock is exclusive, so during it a copied proof is worthless to a
///         copier; a late fulfilment (after the lock deadline) can be copied from the mempool.
contract ProofMarket {
    enum Status {
        None,
        Open,
        Locked,
        Fulfilled,
        Expired
    }

    struct Offer {
        uint96 minPrice;
        uint96 maxPrice;
        uint64 rampStart;
        uint32 rampPeriod;
        uint32 lockTimeout;
        uint32 timeout;
        uint96 lockCollateral;
    }

    /// A request as stored, packed so that a timely fulfilment of a lock reads four slots
    /// (0-3) and writes one (0).
    struct Request {
        address prover; // the locker while locked; whoever fulfilled once fulfilled
        Status status;
        bool locked; // a collateral was posted
        bool slashed; // the lock lapsed: its collateral was split (half burned)
        bool proverPaid;
        bool requesterPaid;
        uint32 inputCount;
        bytes32 circuitId;
        bytes32 inputCommitment;
        uint64 rampStart;
        uint32 rampPeriod;
        uint32 lockTimeout;
        uint32 timeout;
        uint96 price; // fixed by the lock, or by an unlocked fulfilment
        address requester;
        uint96 maxPrice;
        uint96 minPrice;
        uint96 lockCollateral;
    }

    uint256 public constant BURN_BPS = 5000; // of a slashed collateral

    ProvenResults public immutable results;
    ProofRegistry public immutable registry; // the results' registry
    uint256 public requestCount; // ids are 1, 2, ...
    uint256 public burned;
    mapping(uint256 => Request) private requests;

    event RequestOpened(
        uint256 indexed requestId,
        address indexed requester,
        bytes32 indexed circuitId,
        bytes32 inputCommitment,
        uint256 inputCount,
        Offer offer
    );
    event RequestLocked(uint256 indexed requestId, address indexed prover, uint256 price, uint256 collateral);
    // The requester's refund is always maxPrice - price.
    event RequestFulfilled(uint256 indexed requestId, address indexed prover, bytes32 indexed resultKey, uint256 price);
    event CollateralSlashed(
        uint256 indexed requestId, address indexed locker, uint256 burned, address recipient, uint256 reward
    );
    event RequestExpired(uint256 indexed requestId);
    event Claimed(uint256 indexed requestId, address indexed account, uint256 amount);

    error BadOffer();
    error UnknownCircuit(bytes32 circuitId);
    error WrongValue(uint256 expected, uint256 sent);
    error NotOpen(uint256 requestId, Status status);
    error LockDeadlinePassed(uint256 requestId, uint256 lockDeadline);
    error RequestIsLocked(uint256 requestId, address locker);
    error LockLapsed(uint256 requestId, uint256 lockDeadline);
    error DeadlinePassed(uint256 requestId, uint256 deadline);
    error NotExpired(uint256 requestId, uint256 deadline);
    error InputMismatch(uint256 requestId);
    error NothingToClaim(uint256 requestId, address account);
    error TransferFailed(address account);

    constructor(ProvenResults results_) {
        results = results_;
        registry = results_.registry();
    }

    /// Open a request, escrowing exactly `offer.maxPrice`; returns its id.
    function open(bytes32 circuitId, bytes32 inputCommitment, uint32 inputCount, Offer calldata offer)
        external
        payable
        returns (uint256 id)
    {
        if (offer.minPrice > offer.maxPrice || offer.lockTimeout > offer.timeout) revert BadOffer();
        if (uint256(offer.rampStart) + offer.timeout <= block.timestamp) revert BadOffer();
        if (msg.value != offer.maxPrice) revert WrongValue(offer.maxPrice, msg.value);
        (address verifier,,) = registry.verifierOf(circuitId);
        if (verifier == address(0)) revert UnknownCircuit(circuitId);
        id = ++requestCount;
        Request storage r = requests[id];
        r.status = Status.Open;
        r.inputCount = inputCount;
        r.circuitId = circuitId;
        r.inputCommitment = inputCommitment;
        r.rampStart = offer.rampStart;
        r.rampPeriod = offer.rampPeriod;
        r.lockTimeout = offer.lockTimeout;
        r.timeout = offer.timeout;
        r.requester = msg.sender;
        r.maxPrice = offer.maxPrice;
        r.minPrice = offer.minPrice;
        r.lockCollateral = offer.lockCollateral;
        emit RequestOpened(id, msg.sender, circuitId, inputCommitment, inputCount, offer);
    }

    /// Lock an open request before its lock deadline, posting exactly its collateral.
    function lock(uint256 id) external payable {
        Request storage r = requests[id];
        if (r.status != Status.Open) revert NotOpen(id, r.status);
        uint256 lockDeadline = _lockDeadline(r);
        if (block.timestamp > lockDeadline) revert LockDeadlinePassed(id, lockDeadline);
        if (msg.value != r.lockCollateral) revert WrongValue(r.lockCollateral, msg.value);
        uint96 price = _priceNow(r);
        r.status = Status.Locked;
        r.prover = msg.sender;
        r.locked = true;
        r.price = price;
        emit RequestLocked(id, msg.sender, price, msg.value);
    }

    /// Fulfil a request with a proof whose instances open with the request's input; `vka` as
    /// for ProvenResults.submit. Returns the result's key in ProvenResults.
    function fulfil(uint256 id, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bytes32 key)
    {
        Request storage r = requests[id];
        uint256 price = _settle(id, r);
        uint256 n = r.inputCount;
        if (instances.length < n || keccak256(abi.encode(instances[:n])) != r.inputCommitment) {
            revert InputMismatch(id);
        }
        key = results.submit(r.circuitId, proof, instances, vka);
        emit RequestFulfilled(id, msg.sender, key, price);
    }

    /// Close a request unfulfilled at its final deadline; its requester may then claim the
    /// escrow (and, if it was locked, half the slashed collateral). Anyone may call it.
    function expire(uint256 id) external {
        Request storage r = requests[id];
        Status status = r.status;
        if (status != Status.Open && status != Status.Locked) revert NotOpen(id, status);
        uint256 deadline = _deadline(r);
        if (block.timestamp <= deadline) revert NotExpired(id, deadline);
        r.status = Status.Expired;
        if (status == Status.Locked) _slash(id, r, r.requester);
        emit RequestExpired(id);
    }

    /// Send the sender its unclaimed share of a settled request (its shares are final, so
    /// each of its roles is paid once).
    function claim(uint256 id) external {
        Request storage r = requests[id];
        uint256 amount = _owed(r, msg.sender);
        if (amount == 0) revert NothingToClaim(id, msg.sender);
        if (msg.sender == r.prover) r.proverPaid = true;
        if (msg.sender == r.requester) r.requesterPaid = true;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender);
        emit Claimed(id, msg.sender, amount);
    }

    /// What `account` may claim from request `id` now.
    function owed(uint256 id, address account) external view returns (uint256) {
        return _owed(requests[id], account);
    }

    function get(uint256 id) external view returns (Request memory) {
        return requests[id];
    }

    /// The price a lock or an unlocked fulfilment would fix now.
    function priceNow(uint256 id) external view returns (uint256) {
        return _priceNow(requests[id]);
    }

    /// Mark a request fulfilled by the sender; the price it pays.
    function _settle(uint256 id, Request storage r) private returns (uint256 price) {
        Status status = r.status;
        if (status != Status.Open && status != Status.Locked) revert NotOpen(id, status);
        uint256 deadline = _deadline(r);
        if (block.timestamp > deadline) revert DeadlinePassed(id, deadline);
        if (status == Status.Open) {
            price = _priceNow(r);
            r.price = uint96(price);
        } else {
            price = _settleLock(id, r);
        }
        r.status = Status.Fulfilled;
        r.prover = msg.sender;
    }

    /// The price of fulfilling a locked request: before its lock deadline, by the locker
    /// only, the locked price; after it, by anyone but the locker, none (the lapsed lock's
    /// collateral is slashed, its reward the sender's, and the requester refunded in full).
    function _settleLock(uint256 id, Request storage r) private returns (uint256) {
        address locker = r.prover;
        uint256 lockDeadline = _lockDeadline(r);
        if (block.timestamp <= lockDeadline) {
            if (msg.sender != locker) revert RequestIsLocked(id, locker);
            return r.price;
        }
        if (msg.sender == locker) revert LockLapsed(id, lockDeadline);
        r.price = 0;
        _slash(id, r, msg.sender);
        return 0;
    }

    /// Burn BURN_BPS of a lapsed lock's collateral; the rest becomes `recipient`'s share.
    function _slash(uint256 id, Request storage r, address recipient) private {
        uint256 collateral = r.lockCollateral;
        uint256 burn = collateral * BURN_BPS / 10_000;
        burned += burn;
        r.slashed = true;
        emit CollateralSlashed(id, r.prover, burn, recipient, collateral - burn);
    }

    function _owed(Request storage r, address account) private view returns (uint256 amount) {
        (uint256 toProver, uint256 toRequester) = _shares(r);
        if (account == r.prover && !r.proverPaid) amount = toProver;
        if (account == r.requester && !r.requesterPaid) amount += toRequester;
    }

    /// (the prover's, the requester's) shares of a request, paid or not.
    function _shares(Request storage r) private view returns (uint256, uint256) {
        Status status = r.status;
        if (status != Status.Fulfilled && status != Status.Expired) return (0, 0);
        uint256 collateral = r.locked ? r.lockCollateral : 0;
        uint256 reward = r.slashed ? collateral - collateral * BURN_BPS / 10_000 : 0;
        if (status == Status.Expired) return (0, r.maxPrice + reward);
        if (r.slashed) return (reward, r.maxPrice);
        return (r.price + collateral, r.maxPrice - r.price);
    }

    function _priceNow(Request storage r) private view returns (uint96) {
        uint256 t = block.timestamp;
        uint256 start = r.rampStart;
        if (t <= start) return r.minPrice;
        if (t >= start + r.rampPeriod) return r.maxPrice;
        return uint96(r.minPrice + uint256(r.maxPrice - r.minPrice) * (t - start) / r.rampPeriod);
    }

    function _lockDeadline(Request storage r) private view returns (uint256) {
        return uint256(r.rampStart) + r.lockTimeout;
    }

    function _deadline(Request storage r) private view returns (uint256) {
        return uint256(r.rampStart) + r.timeout;
    }
}
