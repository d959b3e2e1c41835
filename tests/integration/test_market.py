"""The proof market on a real anvil node with real proofs of the session's circuit: honest
payment to the wei, every refusal by its error, lapsed locks, expiry, a lock race, and a
property test of the market's accounting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple, dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD
from web3.types import RPCEndpoint

from helpers.chain import OTHER_KEY, THIRD_KEY, latest_timestamp, next_block_at, revert, snapshot
from helpers.market import Model
from prover.chain.client import Chain, connect
from prover.chain.contracts import contract, transact
from prover.chain.market import (
    Offer,
    claim,
    expire,
    fulfil,
    input_commitment,
    input_count,
    lock,
    market_address,
    open_request,
    owed,
    request_state,
)
from prover.chain.onchain import deploy_circuit, verifier_arguments
from prover.config import Settings
from prover.errors import ChainError
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow

INPUTS = ([0.5, -1.25, 0.75, 2.0], [0.3, -0.2, 0.9, 1.1], [1.5, 0.5, -0.5, 0.25])
GWEI = 10**9
Proof = tuple[bytes, list[int]]


@dataclass(frozen=True)
class Market:
    address: str
    circuit_id: str
    inputs: int  # how many instances are the input's
    proofs: list[Proof]  # one per INPUTS

    def input_of(self, index: int) -> list[int]:
        return self.proofs[index][1][: self.inputs]


@pytest.fixture(scope="module")
def market(chain: Chain, compiled: dict, session_settings: Settings) -> Market:
    """The market on this module's chain, the circuit registered, a proof of each input."""
    store = ArtifactStore(session_settings.data_dir)
    deploy_circuit(store, compiled["id"], chain)
    proofs = []
    for values in INPUTS:
        record = prove_input(store, compiled["id"], [values])
        proofs.append(verifier_arguments(store.path("proofs", record["id"]) / "proof.json"))
    return Market(market_address(store, chain), compiled["id"], input_count(compiled), proofs)


@pytest.fixture(scope="module")
def provers(chain: Chain) -> tuple[Chain, Chain]:
    url = chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    return connect(url, OTHER_KEY), connect(url, THIRD_KEY)


@pytest.fixture(autouse=True)
def fresh(chain: Chain, market: Market) -> Iterator[None]:
    """Each test starts from the deployed market, no request, no result accepted."""
    state = snapshot(chain)
    yield
    revert(chain, state)


def _offer(start: int, **changes: int) -> Offer:
    # An odd collateral: the burned half is rounded down, the paid half up.
    base = {
        "min_price": 1_000 * GWEI,
        "max_price": 5_000 * GWEI,
        "ramp_start": start,
        "ramp_period": 100,
        "lock_timeout": 200,
        "timeout": 400,
        "lock_collateral": 2_000 * GWEI + 1,
    }
    return Offer(**{**base, **changes})


def _refusal(call: Any) -> str:
    """The contract's error name of a call that must be refused."""
    with pytest.raises(ChainError) as refused:
        call()
    return str(refused.value.details["revert"]).split("(")[0]


def _market_contract(chain: Chain, market: Market) -> Any:
    return contract(chain, "ProofMarket", market.address)


def _fee(receipt: Any) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def _eth(chain: Chain, account: str) -> int:
    return int(chain.w3.eth.get_balance(account))  # type: ignore[arg-type]


def test_honest_prover_is_paid_exactly(
    chain: Chain, market: Market, provers: tuple[Chain, Chain]
) -> None:
    prover = provers[0]
    requester_start, prover_start = (
        _eth(chain, chain.account.address),
        _eth(prover, prover.account.address),
    )
    now = latest_timestamp(chain)
    offer = _offer(now + 10)
    next_block_at(chain, now + 1)
    request, opened = open_request(
        chain, market.address, market.circuit_id, market.input_of(0), offer
    )
    requester_fees = _fee(opened)
    assert request_state(chain, market.address, request)["status"] == "open"

    next_block_at(chain, now + 10 + 37)
    fees = _fee(lock(prover, market.address, request))
    price = offer.price_at(now + 10 + 37)
    assert offer.min_price < price < offer.max_price
    state = request_state(chain, market.address, request)
    assert (state["status"], state["prover"], state["price"]) == (
        "locked",
        prover.account.address,
        price,
    )
    proof, instances = market.proofs[0]
    receipt = fulfil(prover, market.address, request, proof, instances)
    fees += _fee(receipt)
    assert owed(chain, market.address, request, prover.account.address) == (
        price + offer.lock_collateral
    )
    assert owed(chain, market.address, request, chain.account.address) == offer.max_price - price

    fees += _fee(claim(prover, market.address, request))
    assert _eth(prover, prover.account.address) == prover_start - fees + price
    assert owed(chain, market.address, request, prover.account.address) == 0
    assert _refusal(lambda: claim(prover, market.address, request)) == "NothingToClaim"
    requester_fees += _fee(claim(chain, market.address, request))
    assert _eth(chain, chain.account.address) == requester_start - requester_fees - price
    assert _eth(chain, market.address) == 0
    market_contract = _market_contract(chain, market)
    (event,) = market_contract.events.RequestFulfilled().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["price"] == price
    results = contract(chain, "ProvenResults", market_contract.functions.results().call())
    recorded = results.functions.results(event["args"]["resultKey"]).call()
    assert tuple(recorded) == (market.address, receipt["blockNumber"])
    assert request_state(chain, market.address, request)["status"] == "fulfilled"


def test_refusals_name_the_contracts_error(
    chain: Chain, market: Market, provers: tuple[Chain, Chain]
) -> None:
    locker, other = provers
    now = latest_timestamp(chain)
    offer = _offer(now)
    request, _ = open_request(chain, market.address, market.circuit_id, market.input_of(0), offer)
    underpaid = _market_contract(chain, market).functions.open(
        bytes.fromhex(market.circuit_id),
        input_commitment(market.input_of(0)),
        market.inputs,
        astuple(offer),
    )
    assert _refusal(lambda: transact(chain, underpaid, value=1)) == "WrongValue"
    lock(locker, market.address, request)
    assert _refusal(lambda: lock(other, market.address, request)) == "NotOpen"

    proof, instances = market.proofs[0]
    flipped = bytearray(proof)
    flipped[200] ^= 0x01
    assert (
        _refusal(lambda: fulfil(locker, market.address, request, bytes(flipped), instances))
        == "InvalidProof"
    )
    assert _refusal(lambda: fulfil(locker, market.address, request, *market.proofs[1])) == (
        "InputMismatch"
    )
    assert _refusal(lambda: fulfil(other, market.address, request, proof, instances)) == (
        "RequestIsLocked"
    )
    fulfil(locker, market.address, request, proof, instances)
    assert _refusal(lambda: fulfil(locker, market.address, request, proof, instances)) == (
        "NotOpen"
    )
    # A second request for the same input: legitimate, but the proof earns once.
    again, _ = open_request(chain, market.address, market.circuit_id, market.input_of(0), offer)
    assert _refusal(lambda: fulfil(other, market.address, again, proof, instances)) == (
        "AlreadyAccepted"
    )


def test_lapsed_lock_pays_the_late_prover_from_the_collateral(
    chain: Chain, market: Market, provers: tuple[Chain, Chain]
) -> None:
    locker, late = provers
    now = latest_timestamp(chain)
    offer = _offer(now)
    request, _ = open_request(chain, market.address, market.circuit_id, market.input_of(2), offer)
    lock(locker, market.address, request)
    next_block_at(chain, offer.lock_deadline + 1)
    proof, instances = market.proofs[2]
    assert _refusal(lambda: fulfil(locker, market.address, request, proof, instances)) == (
        "LockLapsed"
    )
    receipt = fulfil(late, market.address, request, proof, instances)

    burn = offer.lock_collateral // 2
    assert owed(chain, market.address, request, late.account.address) == (
        offer.lock_collateral - burn
    )
    assert owed(chain, market.address, request, locker.account.address) == 0
    assert owed(chain, market.address, request, chain.account.address) == offer.max_price
    assert _refusal(lambda: claim(locker, market.address, request)) == "NothingToClaim"
    market_contract = _market_contract(chain, market)
    assert market_contract.functions.burned().call() == burn
    (slashed,) = market_contract.events.CollateralSlashed().process_receipt(receipt, errors=DISCARD)
    assert slashed["args"]["locker"] == locker.account.address
    assert slashed["args"]["recipient"] == late.account.address


def test_expiry_refunds_the_requester(
    chain: Chain, market: Market, provers: tuple[Chain, Chain]
) -> None:
    locker, other = provers
    now = latest_timestamp(chain)
    offer = _offer(now)
    unlocked, _ = open_request(chain, market.address, market.circuit_id, market.input_of(0), offer)
    locked, _ = open_request(chain, market.address, market.circuit_id, market.input_of(1), offer)
    lock(locker, market.address, locked)
    assert _refusal(lambda: expire(other, market.address, unlocked)) == "NotExpired"

    next_block_at(chain, offer.deadline + 1)
    proof, instances = market.proofs[1]
    assert _refusal(lambda: fulfil(other, market.address, locked, proof, instances)) == (
        "DeadlinePassed"
    )
    assert _refusal(lambda: lock(other, market.address, unlocked)) == "LockDeadlinePassed"
    expire(other, market.address, unlocked)
    expire(other, market.address, locked)
    reward = offer.lock_collateral - offer.lock_collateral // 2
    assert owed(chain, market.address, unlocked, chain.account.address) == offer.max_price
    assert owed(chain, market.address, locked, chain.account.address) == offer.max_price + reward
    assert request_state(chain, market.address, locked)["status"] == "expired"
    assert _refusal(lambda: expire(other, market.address, locked)) == "NotOpen"
    assert _refusal(lambda: claim(locker, market.address, locked)) == "NothingToClaim"

    before = _eth(chain, chain.account.address)
    fee = _fee(claim(chain, market.address, unlocked)) + _fee(claim(chain, market.address, locked))
    assert _eth(chain, chain.account.address) == before - fee + 2 * offer.max_price + reward
    assert _refusal(lambda: claim(chain, market.address, locked)) == "NothingToClaim"


def test_two_provers_racing_to_lock_get_one_lock(
    chain: Chain, market: Market, provers: tuple[Chain, Chain]
) -> None:
    offer = _offer(latest_timestamp(chain))
    request, _ = open_request(chain, market.address, market.circuit_id, market.input_of(0), offer)
    chain.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    try:
        hashes = [_send_lock(prover, market, request, offer) for prover in provers]
        chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    finally:
        chain.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
    receipts = [chain.w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"]
    assert sorted(r["status"] for r in receipts) == [0, 1]
    winner, loser = provers if receipts[0]["status"] else provers[::-1]
    assert request_state(chain, market.address, request)["prover"] == winner.account.address
    assert _refusal(lambda: lock(loser, market.address, request)) == "NotOpen"


def _send_lock(prover: Chain, market: Market, request: int, offer: Offer) -> Any:
    """Sign and send a lock without simulating it (both race into the same block)."""
    call = contract(prover, "ProofMarket", market.address).functions.lock(request)
    sender = prover.account.address
    tx = call.build_transaction(
        {
            "from": sender,
            "value": offer.lock_collateral,
            "gas": 200_000,
            "nonce": prover.w3.eth.get_transaction_count(sender, "pending"),
        }
    )
    return prover.w3.eth.send_raw_transaction(prover.account.sign_transaction(tx).raw_transaction)


ACCOUNT = st.integers(0, 2)
# A request: 0 an unknown id, k > 0 the (k - 1 mod count)-th opened.
PICK = st.integers(0, 8)
# A proof: -1 of the request's input (so more fulfilments are of the right input), else of
# that input.
PROOF = st.sampled_from([-1, -1, *range(len(INPUTS))])
OFFERS = st.tuples(
    st.integers(0, 10**6),  # min price
    st.integers(0, 10**6),  # max - min
    st.integers(-10, 10),  # ramp start - now
    st.integers(0, 50),  # ramp period
    st.integers(0, 60),  # lock timeout
    st.integers(11, 60),  # timeout - lock timeout
    st.integers(0, 10**6),  # collateral
)
OPEN = st.tuples(st.just("open"), ACCOUNT, st.integers(0, len(INPUTS) - 1), OFFERS)
LOCK = st.tuples(st.just("lock"), ACCOUNT, PICK)
FULFIL = st.tuples(st.just("fulfil"), ACCOUNT, PICK, PROOF)
# Branches repeated to weigh them: one_of draws each branch equally often.
ACTIONS = st.lists(
    st.one_of(
        OPEN,
        LOCK,
        LOCK,
        FULFIL,
        FULFIL,
        FULFIL,
        st.tuples(st.just("wait"), st.integers(1, 40)),
        st.tuples(st.just("expire"), ACCOUNT, PICK),
        st.tuples(st.just("claim"), ACCOUNT, PICK),
        st.tuples(st.just("claim"), ACCOUNT, PICK),
    ),
    min_size=4,
    max_size=16,
)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(opens=st.lists(OPEN, min_size=1, max_size=3), actions=ACTIONS)
def test_every_wei_is_accounted_for(
    chain: Chain,
    market: Market,
    provers: tuple[Chain, Chain],
    opens: list[tuple],
    actions: list[tuple],
) -> None:
    """Random sequences of actions: each succeeds or fails as the model of the rules says,
    settles what it says, and after each, the market's balance is exactly the unclaimed
    shares + escrow and collateral held + burned = deposited - claimed."""
    accounts = (chain, *provers)
    state = snapshot(chain)
    try:
        model, now = Model(), latest_timestamp(chain)
        for action in opens + actions:
            if action[0] == "wait":
                now += action[1]
                continue
            next_block_at(chain, now + 1)
            expected, step = _step(model, market, accounts, action, now + 1)
            try:
                step()
                outcome = None
            except ChainError as exc:
                outcome = str(exc.details["revert"]).split("(")[0]
            assert outcome == expected, (action, outcome, expected)
            event(f"{action[0]}: {outcome or 'done'}")
            if outcome is None:
                now += 1
            _check_accounts(chain, market, model, accounts)
    finally:
        revert(chain, state)


def _step(
    model: Model, market: Market, accounts: tuple[Chain, ...], action: tuple, t: int
) -> tuple[str | None, Any]:
    """(the model's expected error, or None, having applied it; the call that does it)."""
    kind, who = action[0], accounts[action[1]]
    address = who.account.address
    if kind == "open":
        low, spread, delta, period, lock_timeout, extra, collateral = action[3]
        offer = Offer(
            low, low + spread, t + delta, period, lock_timeout, lock_timeout + extra, collateral
        )
        model.open(address, action[2], offer)
        inputs = market.input_of(action[2])
        return None, lambda: open_request(who, market.address, market.circuit_id, inputs, offer)
    rid = _request_id(model, action[2])
    if kind == "claim":
        return model.claim(address, rid), lambda: claim(who, market.address, rid)
    if kind == "lock":
        return model.lock(address, rid, t), lambda: lock(who, market.address, rid)
    if kind == "fulfil":
        which = model.requests[rid].input if action[3] < 0 and rid in model.requests else action[3]
        proof = market.proofs[which]
        expected = model.fulfil(address, rid, which, t)
        return expected, lambda: fulfil(who, market.address, rid, *proof)
    return model.expire(rid, t), lambda: expire(who, market.address, rid)


def _request_id(model: Model, pick: int) -> int:
    """The request a PICK names (at least one is open: each example opens first)."""
    count = len(model.requests)
    return count + 1 if pick == 0 else (pick - 1) % count + 1


def _check_accounts(
    chain: Chain, market: Market, model: Model, accounts: tuple[Chain, ...]
) -> None:
    burned = _market_contract(chain, market).functions.burned().call()
    assert burned == model.burned
    held = 0
    for rid, expected in model.requests.items():
        state = request_state(chain, market.address, rid)
        assert state["status"] == expected.status
        for a in accounts:
            due = owed(chain, market.address, rid, a.account.address)
            assert due == expected.owed(a.account.address), (rid, a.account.address)
        if state["status"] in ("open", "locked"):
            held += state["offer"].max_price
        if state["status"] == "locked":
            held += state["offer"].lock_collateral
    market_eth = _eth(chain, market.address)
    assert market_eth == model.unclaimed() + held + burned
    assert market_eth == model.deposited - model.claimed
