"""The proof market through the service, on a real stack and anvil: a requester asks for a
proof with ``market`` over HTTP; ``prover provide`` (the CLI, another account, its own
data directory, no key of the service) locks, proves and is paid to the wei; a cheating
prover's proof of another input and a locker past its deadline are refused, and a second
provider fulfils the lapsed lock for its share of the collateral; an open request past its
lock deadline is fulfilled unlocked; an unfulfilled request expires and is refunded; a
hashed input is bound by its hash. The job's phases follow the request throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from eth_account import Account
from web3.types import RPCEndpoint

from helpers.chain import OTHER_KEY, THIRD_KEY
from helpers.cli import one_json, run_cli
from helpers.models import calibration_data, make_mlp
from helpers.stack import Service, compile_model, poll, running_service, wait_job
from prover.chain import market
from prover.chain.client import Chain, connect
from prover.chain.onchain import verifier_arguments
from prover.client import Client, ServiceError
from prover.errors import ChainError
from prover.provider import Pricing, Provider
from prover.proving.plans import ProofPlan
from prover.proving.proofs import prove_circuit

pytestmark = pytest.mark.slow

GWEI = 10**9
# Each test asks about its own input: ProvenResults accepts a result once.
INPUT = [[0.5, -1.25, 0.75, 2.0]]
OTHER_INPUT = [[0.3, -0.2, 0.9, 1.1]]
LAPSED_INPUT = [[1.5, 0.5, -0.5, 0.25]]
EXPIRED_INPUT = [[-0.5, 0.25, 1.0, -1.0]]
UNLOCKED_INPUT = [[0.1, 0.2, -0.3, 0.4]]
HONEST = Account.from_key(OTHER_KEY).address


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("market"), 2, chain=True) as svc:
        yield svc


@pytest.fixture(scope="module")
def key(service: Service) -> str:
    return service.key("requester")


@pytest.fixture(scope="module")
def api(service: Service, key: str) -> Client:
    return service.connect(key)


@pytest.fixture(scope="module")
def circuit_id(api: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    model = make_mlp(tmp_path_factory.mktemp("model") / "mlp.onnx")
    return str(compile_model(api, model, calibration_data())["circuit_id"])


@pytest.fixture(scope="module")
def chain(service: Service) -> Chain:
    return connect(service.env["PROVER_RPC_URL"], OTHER_KEY)


def _offer(**changes: int) -> dict[str, int]:
    base = {
        "max_price": 5_000 * GWEI,
        "min_price": 1_000 * GWEI,
        "ramp_s": 100,
        "lock_timeout_s": 300,
        "timeout_s": 600,
        "collateral": 2_000 * GWEI + 1,
    }
    return {**base, **changes}


def _requested(
    api: Client, circuit_id: str, offer: dict[str, int], values: list[list[float]]
) -> tuple[str, dict]:
    """Ask for a market proof; (its job id, the request as providers see it) once open."""
    job_id = api.request_proof(circuit_id, values, market=offer)["job_id"]
    poll(lambda: api.job(job_id)["phase"] == "requested", 120, "the market request")
    newest = api.market_requests()["requests"][0]  # newest first
    return job_id, newest


def _provide(service: Service, key: str, data: Path) -> dict[str, Any]:
    """One round of ``prover provide`` as a provider runs it; its JSON report."""
    result = run_cli(data, *_provide_args(service, key, data))
    assert result.returncode == 0, result.stderr
    return one_json(result)


def _buy(
    service: Service, key: str, circuit_id: str, values: list[list[float]], tmp: Path
) -> subprocess.Popen[str]:
    """``prover prove --remote --market-max-price`` as a requester runs it (waiting)."""
    values_file = tmp / "input.json"
    values_file.write_text(json.dumps({"input_data": values}))
    args = ["prove", circuit_id, "--input", str(values_file), "--remote", "--json"]
    args += ["--market-max-price", str(5_000 * GWEI)]
    env = {**os.environ, "PROVER_API_URL": service.url, "PROVER_API_KEY": key}
    command = [sys.executable, "-m", "prover", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _listed(api: Client, values: list[list[float]]) -> bool:
    return any(r["input"] == values for r in api.market_requests()["requests"])


def _provide_args(service: Service, key: str, data: Path) -> list[str]:
    rpc = service.env["PROVER_RPC_URL"]
    where = ["--data-dir", str(data / "provider")]
    return [
        "provide",
        "--rpc",
        rpc,
        "--key",
        key,
        "--service",
        service.url,
        *where,
        "--once",
        "--json",
    ]


def _spent(chain: Chain, account: str, from_block: int) -> int:
    """Every fee ``account`` paid in blocks after ``from_block``."""
    fees = 0
    for number in range(from_block + 1, chain.w3.eth.block_number + 1):
        block: Any = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == account:
                receipt = chain.w3.eth.get_transaction_receipt(tx["hash"])
                fees += receipt["gasUsed"] * receipt["effectiveGasPrice"]
    return fees


def _statuses(api: Client, job_id: str) -> list[str]:
    """The request's statuses the requester's event stream told, up to the last one."""
    told = []
    for event in api.events(after=0):
        if event["subject_id"] == job_id and event["type"].startswith("market."):
            told.append(event["type"])
            if event["type"] in ("market.fulfilled", "market.expired"):
                return told
    raise AssertionError("the stream ended")


def _proof(provider: Provider, plan: ProofPlan) -> tuple[bytes, list[int]]:
    """A proof made with the files the service served, as the fulfilment sends it."""
    prove_circuit(provider.store, plan)
    return verifier_arguments(provider.store.path("proofs", plan.proof_id) / "proof.json")


def _later(chain: Chain, seconds: int) -> None:
    """Move the chain's clock on and mine a block at the new time."""
    chain.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
    chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def test_an_honest_provider_is_paid_exactly(
    service: Service, api: Client, circuit_id: str, chain: Chain, tmp_path: Path
) -> None:
    offer = _offer()
    job_id, request = _requested(api, circuit_id, offer, INPUT)
    assert request["input_count"] == 4 and request["offer"]["max_price"] == offer["max_price"]
    start, before = chain.w3.eth.block_number, chain.w3.eth.get_balance(HONEST)

    report = _provide(service, OTHER_KEY, tmp_path)

    (done,) = report["fulfilled"]
    job = api.wait(job_id, timeout=120)
    result = job["result"]
    assert result["status"] == "fulfilled" and result["prover"] == HONEST
    told = _statuses(api, job_id)  # each once; a lock may be too brief to be seen
    assert told[0] == "market.requested" and told[-1] == "market.fulfilled"
    assert len(set(told)) == len(told)
    assert result["transaction"] == done["transaction"]
    price = result["price_wei"]
    assert offer["min_price"] <= price <= offer["max_price"]
    assert result["refund_wei"] == offer["max_price"] - price
    assert done["earned_wei"] == price + offer["collateral"]
    spent = _spent(chain, HONEST, start)
    assert chain.w3.eth.get_balance(HONEST) == before + price - spent
    address = request["market_address"]
    refund = market.owed(chain, address, request["request_id"], service_account(service))
    assert refund == 0  # claimed by the job
    pool = api.wait(api.request_proof(circuit_id, INPUT)["job_id"])["result"]
    # The outputs read back from the accepted instances are the pool's proof's.
    assert np.array_equal(np.asarray(result["outputs"]), np.asarray(pool["outputs"]))


def service_account(service: Service) -> str:
    return str(Account.from_key(service.env["PROVER_PRIVATE_KEY"]).address)


def test_cheats_are_refused_and_a_lapsed_lock_goes_to_another(
    service: Service, api: Client, circuit_id: str, chain: Chain, tmp_path: Path
) -> None:
    offer = _offer(lock_timeout_s=120)
    job_id, request = _requested(api, circuit_id, offer, LAPSED_INPUT)
    address, request_id = request["market_address"], request["request_id"]
    # A provider whose floor the offer never reaches leaves it open.
    dear = run_cli(
        tmp_path, *_provide_args(service, OTHER_KEY, tmp_path), "--floor-wei", str(10**30)
    )
    cheat_chain = connect(service.env["PROVER_RPC_URL"], THIRD_KEY)
    cheat = Provider(service.url, cheat_chain, tmp_path / "cheat", Pricing(), lambda _m: None)
    state = market.request_state(chain, address, request_id)
    honest_plan = cheat.prepare(request, state)  # the service's files and input check out
    assert one_json(dear)["fulfilled"] == [] and "needs" in dear.stderr
    market.lock(cheat_chain, address, request_id)
    poll(lambda: api.job(job_id)["phase"] == "locked", 30, "the job to show the lock")

    # A proof of another input, through the served circuit: refused by the input check.
    other = ProofPlan(honest_plan.circuit, [np.asarray(OTHER_INPUT[0])], "other", "other-proof")
    with pytest.raises(ChainError, match="InputMismatch"):
        market.fulfil(cheat_chain, address, request_id, *_proof(cheat, other))
    # Another provider meanwhile: the lock is not its to fulfil; it moves on.
    assert _provide(service, OTHER_KEY, tmp_path)["fulfilled"] == []

    # The locker past its lock deadline: refused, even with the right proof.
    _later(chain, offer["lock_timeout_s"] + 1)
    with pytest.raises(ChainError, match="LockLapsed"):
        market.fulfil(cheat_chain, address, request_id, *_proof(cheat, honest_plan))

    # A second provider fulfils the lapsed lock: half the collateral, the requester refunded.
    report = _provide(service, OTHER_KEY, tmp_path)
    (done,) = report["fulfilled"]
    assert done["earned_wei"] == offer["collateral"] - offer["collateral"] * 5000 // 10_000
    job = api.wait(job_id, timeout=120)
    assert job["result"]["prover"] == HONEST and job["result"]["price_wei"] == 0
    assert job["result"]["refund_wei"] == offer["max_price"]
    assert _statuses(api, job_id) == ["market.requested", "market.locked", "market.fulfilled"]


def test_a_result_already_on_chain_is_not_locked(
    service: Service, key: str, api: Client, circuit_id: str, chain: Chain, tmp_path: Path
) -> None:
    """A request whose result ProvenResults holds could never be fulfilled: a provider
    that locked it would lose its collateral, so it leaves it."""
    values = [[0.0, 1.0, -1.0, 0.5]]
    # Bought first through the CLI (`prove --remote --market-max-price`), which waits.
    buyer = _buy(service, key, circuit_id, values, tmp_path)
    poll(lambda: _listed(api, values), 120, "the CLI's market request")
    assert len(_provide(service, OTHER_KEY, tmp_path)["fulfilled"]) == 1
    out, err = buyer.communicate(timeout=120)
    assert buyer.returncode == 0, err
    bought = json.loads(out)
    assert bought["status"] == "fulfilled" and bought["prover"] == HONEST
    _job_id, request = _requested(api, circuit_id, _offer(), values)
    result = run_cli(tmp_path, *_provide_args(service, OTHER_KEY, tmp_path))
    assert one_json(result)["fulfilled"] == [] and "on chain already" in result.stderr
    state = market.request_state(chain, request["market_address"], request["request_id"])
    assert state["status"] == "open"


def test_an_open_request_past_its_lock_deadline_is_fulfilled_unlocked(
    service: Service, api: Client, circuit_id: str, chain: Chain, tmp_path: Path
) -> None:
    offer = _offer(lock_timeout_s=30)
    job_id, request = _requested(api, circuit_id, offer, UNLOCKED_INPUT)
    _later(chain, offer["lock_timeout_s"] + 1)

    report = _provide(service, OTHER_KEY, tmp_path)

    (done,) = report["fulfilled"]
    result = api.wait(job_id, timeout=120)["result"]
    assert result["prover"] == HONEST and result["transaction"] == done["transaction"]
    price = result["price_wei"]
    assert offer["min_price"] < price < offer["max_price"]  # the ramp's, at fulfilment
    assert done["earned_wei"] == price  # no collateral was posted
    assert _statuses(api, job_id) == ["market.requested", "market.fulfilled"]
    address, request_id = request["market_address"], request["request_id"]
    assert market.owed(chain, address, request_id, HONEST) == 0


def test_an_unfulfilled_request_expires_and_is_refunded(
    service: Service, key: str, api: Client, circuit_id: str, chain: Chain
) -> None:
    offer = _offer(lock_timeout_s=30, timeout_s=60)
    job_id, request = _requested(api, circuit_id, offer, EXPIRED_INPUT)
    _later(chain, offer["timeout_s"] + 1)
    job = wait_job(service.client(key), job_id, timeout=120)
    assert job["state"] == "failed" and job["phase"] == "expired"
    assert job["error"]["code"] == "market_expired"
    assert _statuses(api, job_id) == ["market.requested", "market.expired"]
    state = market.request_state(chain, request["market_address"], request["request_id"])
    assert state["status"] == "expired"
    address, request_id = request["market_address"], request["request_id"]
    assert market.owed(chain, address, request_id, service_account(service)) == 0  # claimed


def test_a_hashed_input_is_bound_by_its_hash_and_a_private_one_refused(
    service: Service, api: Client, chain: Chain, tmp_path: Path
) -> None:
    """A circuit whose input is hashed: the request commits to the input's Poseidon hash
    (one instance), which the provider's own witness reproduces before it locks."""
    model = make_mlp(tmp_path / "hashed.onnx")
    hashed = compile_model(api, model, calibration_data(), input_visibility="hashed")
    job_id, request = _requested(api, hashed["circuit_id"], _offer(), INPUT)
    assert request["input_count"] == 1

    (done,) = _provide(service, OTHER_KEY, tmp_path)["fulfilled"]

    result = api.wait(job_id, timeout=120)["result"]
    assert result["prover"] == HONEST and result["transaction"] == done["transaction"]
    pool = api.wait(api.request_proof(hashed["circuit_id"], INPUT)["job_id"])["result"]
    assert np.array_equal(np.asarray(result["outputs"]), np.asarray(pool["outputs"]))

    private = compile_model(api, model, calibration_data(), input_visibility="private")
    with pytest.raises(ServiceError, match="public or hashed input") as refused:
        api.request_proof(private["circuit_id"], INPUT, market=_offer())
    assert refused.value.status == 422


def test_the_market_reads_need_no_key_and_serve_only_market_circuits(
    service: Service, circuit_id: str
) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as anyone:
        listing = anyone.get(f"/v1/market/circuits/{circuit_id}")
        assert listing.status_code == 200 and set(listing.json()["files"]) == {
            "model.compiled",
            "pk.key",
            "vk.key",
            "settings.json",
            "srs",
        }
        assert anyone.get(f"/v1/market/circuits/{'0' * 64}").status_code == 404
        assert anyone.get(f"/v1/market/circuits/{circuit_id}/files/record.json").status_code == 422
        assert anyone.get(f"/v1/proofs?circuit_id={circuit_id}").status_code == 401
        request = anyone.post(f"/v1/circuits/{circuit_id}/proofs", json={"input": INPUT})
        assert request.status_code == 401
