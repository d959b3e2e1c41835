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
///         locker's collateral returned.
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
///         Payments are pulled: every payment credits `balanceOf`, and `withdraw` sends it.
///         Burned wei stays in this contract, counted in `burned`, withdrawable by no one.
///         So at every moment: this contract's balance = sum of balanceOf + escrow of open
///         and locked requests + collateral of locked requests + burned.
///
///         Reentrancy: effects come before interactions. `fulfil` settles every balance
///         before its one external call (ProvenResults, which calls the verifier); a revert
///         there undoes them. `withdraw` zeroes the balance before sending it.
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

    struct Request {
        address requester;
        Status status;
        uint32 inputCount;
        bytes32 circuitId;
        bytes32 inputCommitment;
        Offer offer;
        address locker;
        uint96 lockPrice;
    }

    uint256 public constant BURN_BPS = 5000; // of a slashed collateral

    ProvenResults public immutable results;
    ProofRegistry public immutable registry; // the results' registry
    uint256 public requestCount; // ids are 1, 2, ...
    uint256 public burned;
    mapping(address => uint256) public balanceOf;
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
    event RequestFulfilled(
        uint256 indexed requestId, address indexed prover, bytes32 indexed resultKey, uint256 price, uint256 refund
    );
    event CollateralSlashed(
        uint256 indexed requestId, address indexed locker, uint256 burned, address recipient, uint256 reward
    );
    event RequestExpired(uint256 indexed requestId, uint256 refund);
    event Withdrawn(address indexed account, uint256 amount);

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
    error NothingToWithdraw(address account);
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
        if (registry.get(circuitId).verifier == address(0)) revert UnknownCircuit(circuitId);
        id = ++requestCount;
        Request storage r = requests[id];
        r.requester = msg.sender;
        r.status = Status.Open;
        r.inputCount = inputCount;
        r.circuitId = circuitId;
        r.inputCommitment = inputCommitment;
        r.offer = offer;
        emit RequestOpened(id, msg.sender, circuitId, inputCommitment, inputCount, offer);
    }

    /// Lock an open request before its lock deadline, posting exactly its collateral.
    function lock(uint256 id) external payable {
        Request storage r = requests[id];
        if (r.status != Status.Open) revert NotOpen(id, r.status);
        Offer memory offer = r.offer;
        uint256 lockDeadline = _lockDeadline(offer);
        if (block.timestamp > lockDeadline) revert LockDeadlinePassed(id, lockDeadline);
        if (msg.value != offer.lockCollateral) revert WrongValue(offer.lockCollateral, msg.value);
        uint96 price = uint96(_priceAt(offer, block.timestamp));
        r.status = Status.Locked;
        r.locker = msg.sender;
        r.lockPrice = price;
        emit RequestLocked(id, msg.sender, price, msg.value);
    }

    /// Fulfil a request with a proof whose instances open with the request's input; `vka` as
    /// for ProvenResults.submit. Returns the result's key in ProvenResults.
    function fulfil(uint256 id, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bytes32 key)
    {
        Request storage r = requests[id];
        (uint256 price, uint256 refund) = _settle(id, r);
        uint256 n = r.inputCount;
        if (instances.length < n || keccak256(abi.encode(instances[:n])) != r.inputCommitment) {
            revert InputMismatch(id);
        }
        key = results.submit(r.circuitId, proof, instances, vka);
        emit RequestFulfilled(id, msg.sender, key, price, refund);
    }

    /// Close a request unfulfilled at its final deadline: refund the escrow (and, if it was
    /// locked, half the slashed collateral) to the requester. Anyone may call it.
    function expire(uint256 id) external {
        Request storage r = requests[id];
        Status status = r.status;
        if (status != Status.Open && status != Status.Locked) revert NotOpen(id, status);
        Offer memory offer = r.offer;
        uint256 deadline = _deadline(offer);
        if (block.timestamp <= deadline) revert NotExpired(id, deadline);
        r.status = Status.Expired;
        uint256 refund = offer.maxPrice;
        if (status == Status.Locked) refund += _slash(id, r.locker, offer.lockCollateral, r.requester);
        balanceOf[r.requester] += refund;
        emit RequestExpired(id, refund);
    }

    /// Send the sender everything credited to it.
    function withdraw() external {
        uint256 amount = balanceOf[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        balanceOf[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender);
        emit Withdrawn(msg.sender, amount);
    }

    function get(uint256 id) external view returns (Request memory) {
        return requests[id];
    }

    /// The price a lock or an unlocked fulfilment would fix now.
    function priceNow(uint256 id) external view returns (uint256) {
        return _priceAt(requests[id].offer, block.timestamp);
    }

    /// Mark a request fulfilled by the sender and credit everyone; (price, refund).
    function _settle(uint256 id, Request storage r) private returns (uint256 price, uint256 refund) {
        Status status = r.status;
        if (status != Status.Open && status != Status.Locked) revert NotOpen(id, status);
        Offer memory offer = r.offer;
        uint256 deadline = _deadline(offer);
        if (block.timestamp > deadline) revert DeadlinePassed(id, deadline);
        r.status = Status.Fulfilled;
        price = _priceAt(offer, block.timestamp);
        uint256 earned = price;
        if (status == Status.Locked) (price, earned) = _settleLock(id, r, offer);
        balanceOf[msg.sender] += earned;
        refund = offer.maxPrice - price;
        balanceOf[r.requester] += refund;
    }

    /// (price, what the sender earns) of fulfilling a locked request: before its lock
    /// deadline the locker's price and collateral back; after it, no price and the
    /// slashed collateral's reward (the requester is refunded in full).
    function _settleLock(uint256 id, Request storage r, Offer memory offer) private returns (uint256, uint256) {
        address locker = r.locker;
        uint256 lockDeadline = _lockDeadline(offer);
        if (block.timestamp <= lockDeadline) {
            if (msg.sender != locker) revert RequestIsLocked(id, locker);
            return (r.lockPrice, r.lockPrice + offer.lockCollateral);
        }
        if (msg.sender == locker) revert LockLapsed(id, lockDeadline);
        return (0, _slash(id, locker, offer.lockCollateral, msg.sender));
    }

    /// Burn BURN_BPS of a lapsed lock's collateral; the rest is `recipient`'s (returned, for
    /// the caller to credit).
    function _slash(uint256 id, address locker, uint256 collateral, address recipient) private returns (uint256) {
        uint256 burn = collateral * BURN_BPS / 10_000;
        burned += burn;
        emit CollateralSlashed(id, locker, burn, recipient, collateral - burn);
        return collateral - burn;
    }

    function _priceAt(Offer memory offer, uint256 t) private pure returns (uint256) {
        if (t <= offer.rampStart) return offer.minPrice;
        if (t >= uint256(offer.rampStart) + offer.rampPeriod) return offer.maxPrice;
        return offer.minPrice + uint256(offer.maxPrice - offer.minPrice) * (t - offer.rampStart) / offer.rampPeriod;
    }

    function _lockDeadline(Offer memory offer) private pure returns (uint256) {
        return uint256(offer.rampStart) + offer.lockTimeout;
    }

    function _deadline(Offer memory offer) private pure returns (uint256) {
        return uint256(offer.rampStart) + offer.timeout;
    }
}
