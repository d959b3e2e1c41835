"""The proof market (``verifier_contracts/ProofMarket.sol``): requests for a proof of a
registered circuit on a committed input, priced by a reverse Dutch auction in ETH, locked
with collateral, paid on a proof that ProvenResults accepts. A thin binding: each function
is one transaction or one read; a revert is a ``ChainError`` naming the contract's error.

A request commits to the input by the proof's input instances (a proof's public instances
begin with them): ``input_count`` says how many a circuit has, ``input_commitment`` is
what the contract compares.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak

from prover.chain.client import Chain
from prover.chain.contracts import compiled, contract, infrastructure, transact
from prover.chain.deployments import deploy_once
from prover.store import ArtifactStore

MARKET = "ProofMarket"
STATUSES = ("none", "open", "locked", "fulfilled", "expired")  # ProofMarket.Status
# What a provider fetches to prove a request: a circuit's proving files, and its SRS
# (served under this name beside them).
PROVING_FILES = ("model.compiled", "pk.key", "vk.key", "settings.json")
SRS_FILE = "srs"


@dataclass(frozen=True)
class Offer:
    """Prices in wei. The price ramps from ``min_price`` at ``ramp_start`` (unix seconds)
    to ``max_price`` ``ramp_period`` seconds later; the lock deadline is ``lock_timeout``
    and the final deadline ``timeout`` seconds after ``ramp_start``."""

    min_price: int
    max_price: int
    ramp_start: int
    ramp_period: int
    lock_timeout: int
    timeout: int
    lock_collateral: int

    def price_at(self, timestamp: int) -> int:
        """The price a lock (or an unlocked fulfilment) fixes in a block of ``timestamp``."""
        if timestamp <= self.ramp_start:
            return self.min_price
        if timestamp >= self.ramp_start + self.ramp_period:
            return self.max_price
        rise = (self.max_price - self.min_price) * (timestamp - self.ramp_start)
        return self.min_price + rise // self.ramp_period

    @property
    def lock_deadline(self) -> int:
        return self.ramp_start + self.lock_timeout

    @property
    def deadline(self) -> int:
        return self.ramp_start + self.timeout


def market_address(store: ArtifactStore, chain: Chain) -> str:
    """The market bound to this chain's ProvenResults, deployed (with them) if missing."""
    results = infrastructure(store, chain)["results_address"]
    kind = {"market_address": compiled()[MARKET]}
    return str(deploy_once(store, chain, kind, bound=(results,))["market_address"])


def input_count(circuit: dict[str, Any]) -> int:
    """How many of a circuit's proof instances are its input's: every value of a public
    input, one Poseidon hash per hashed input tensor, none for a private one."""
    visibility = circuit["visibility"]["input"]
    if visibility == "public":
        return sum(math.prod(int(d) for d in spec["shape"]) for spec in circuit["inputs"])
    return len(circuit["inputs"]) if visibility == "hashed" else 0


def input_commitment(input_instances: list[int]) -> bytes:
    """keccak256(abi.encode(input instances)), as the market compares them."""
    return keccak(encode(["uint256[]"], [input_instances]))


def _market(chain: Chain, address: str) -> Any:
    return contract(chain, MARKET, address)


def open_request(
    chain: Chain, address: str, circuit_id: str, input_instances: list[int], offer: Offer
) -> tuple[int, Any]:
    """Open a request for a proof of ``circuit_id`` on the input whose instances are
    ``input_instances``, escrowing the offer's max price; (its id, the receipt)."""
    market = _market(chain, address)
    commitment = input_commitment(input_instances)
    call = market.functions.open(
        bytes.fromhex(circuit_id), commitment, len(input_instances), astuple(offer)
    )
    receipt = transact(chain, call, value=offer.max_price)
    (event,) = market.events.RequestOpened().process_receipt(receipt)
    return int(event["args"]["requestId"]), receipt


def lock(chain: Chain, address: str, request_id: int) -> Any:
    """Lock a request, posting its collateral; the receipt."""
    collateral = request_state(chain, address, request_id)["offer"].lock_collateral
    market = _market(chain, address)
    return transact(chain, market.functions.lock(request_id), value=collateral)


def fulfil(
    chain: Chain,
    address: str,
    request_id: int,
    proof: bytes,
    instances: list[int],
    vka: list[bytes] | None = None,
) -> Any:
    """Fulfil a request with a proof (as ``onchain.verifier_arguments`` reads one, ``vka``
    for a circuit on ezkl's reusable verifier); the receipt."""
    call = _market(chain, address).functions.fulfil(request_id, proof, instances, vka or [])
    return transact(chain, call)


def expire(chain: Chain, address: str, request_id: int) -> Any:
    """Close a request past its final deadline (its requester may then claim); the
    receipt."""
    return transact(chain, _market(chain, address).functions.expire(request_id))


def claim(chain: Chain, address: str, request_id: int) -> Any:
    """Send the sender its share of a settled request; the receipt."""
    return transact(chain, _market(chain, address).functions.claim(request_id))


def owed(chain: Chain, address: str, request_id: int, account: str) -> int:
    """What ``account`` may claim from a request now (wei)."""
    return int(_market(chain, address).functions.owed(request_id, account).call())


def request_state(chain: Chain, address: str, request_id: int) -> dict[str, Any]:
    """A request as the market holds it (status ``none`` for an unknown id). ``prover``
    is the locker while it is locked and whoever fulfilled it once fulfilled; ``price``
    what the lock or the fulfilment fixed."""
    r = _market(chain, address).functions.get(request_id).call()
    prover, status, _locked, slashed, _paid, _refunded, count, circuit, commitment = r[:9]
    ramp_start, ramp_period, lock_timeout, timeout, price = r[9:14]
    requester, max_price, min_price, collateral = r[14:]
    offer = Offer(min_price, max_price, ramp_start, ramp_period, lock_timeout, timeout, collateral)
    return {
        "requester": requester,
        "status": STATUSES[status],
        "input_count": count,
        "circuit_id": circuit.hex(),
        "input_commitment": "0x" + commitment.hex(),
        "offer": offer,
        "prover": None if int(prover, 16) == 0 else prover,
        "price": price,
        "slashed": slashed,
    }


def chain_time(chain: Chain) -> int:
    """The latest block's timestamp: the clock the market's deadlines are read against."""
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def fulfilment(chain: Chain, address: str, request_id: int, from_block: int) -> dict[str, Any]:
    """How a fulfilled request was fulfilled: its prover and price (the requester's
    refund is the max price less it), the transaction, and the proof's instances (read
    back from that transaction's input). The logs are searched from ``from_block`` on
    (the block the request was opened in)."""
    market = _market(chain, address)
    (log,) = market.events.RequestFulfilled().get_logs(
        from_block=from_block, argument_filters={"requestId": request_id}
    )
    tx = chain.w3.eth.get_transaction(log["transactionHash"])
    _fn, arguments = market.decode_function_input(tx["input"])
    return {
        "prover": log["args"]["prover"],
        "price_wei": int(log["args"]["price"]),
        "result_key": "0x" + bytes(log["args"]["resultKey"]).hex(),
        "transaction": "0x" + bytes(log["transactionHash"]).hex(),
        "block": int(log["blockNumber"]),
        "instances": [int(i) for i in arguments["instances"]],
    }


def result_accepted(chain: Chain, address: str, circuit_id: str, instances: list[int]) -> bool:
    """Whether ProvenResults holds this result already: a fulfilment of it would revert
    (``AlreadyAccepted``), so a provider must not lock a request for it."""
    results = contract(chain, "ProvenResults", _market(chain, address).functions.results().call())
    key = keccak(encode(["bytes32", "uint256[]"], [bytes.fromhex(circuit_id), instances]))
    prover, _block = results.functions.results(key).call()
    return int(prover, 16) != 0


# BN254's scalar field: instances are its elements, a negative value wrapped around it.
FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def rescaled(felts: list[int], scale: int) -> list[float]:
    """Field elements of a fixed-point tensor (``2**scale`` per unit) as floats."""
    signed = (v - FIELD_MODULUS if v > FIELD_MODULUS // 2 else v for v in felts)
    return [v / 2**scale for v in signed]
