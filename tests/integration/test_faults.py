"""Faults the service rides out with no operator: a chain that is down when a job runs,
a transaction whose receipt was lost, a broker that lost its queued messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from web3 import Web3
from web3.types import Wei

from helpers.models import calibration_data, make_mlp
from helpers.stack import Service, compile_model, poll, running_service, wait_job
from prover.chain.client import connect, send, transactions
from prover.chain.node import ANVIL_DEV_KEY, LocalChain, free_port
from prover.errors import ChainUnavailableError

pytestmark = pytest.mark.slow
RPC_PORT = free_port()  # no chain answers here until the outage test starts one


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {
        "PROVER_RPC_URL": f"http://127.0.0.1:{RPC_PORT}",
        "PROVER_TRANSIENT_BACKOFF_S": "0.5",
        "PROVER_TRANSIENT_BACKOFF_MAX_S": "2",
        "PROVER_REQUEUE_AFTER_S": "3",
    }
    with running_service(tmp_path_factory.mktemp("faults"), env=env) as svc:
        yield svc


@pytest.fixture(scope="module")
def circuit(service: Service, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(api key, circuit id) of the tiny MLP compiled through the service."""
    model = make_mlp(tmp_path_factory.mktemp("faults-model") / "mlp.onnx")
    key = service.key("faults")
    with service.connect(key) as api:
        return key, compile_model(api, model, calibration_data())["circuit_id"]


def test_a_deploy_queued_during_a_chain_outage_succeeds_once_the_chain_is_back(
    service: Service, circuit: tuple[str, str]
) -> None:
    key, circuit_id = circuit
    with service.client(key) as client:
        accepted = client.post(f"/v1/circuits/{circuit_id}/deployments")
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]

        def waiting_on_the_chain() -> bool:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["state"] in ("queued", "running"), job
            error = job["error"] or {}
            return error.get("code") == "chain_unavailable" and error.get("retries", 0) >= 3

        poll(waiting_on_the_chain, 60, "three retries while the chain is down", every=0.2)
        with LocalChain(port=RPC_PORT):
            job = wait_job(client, job_id, timeout=120)
            assert job["state"] == "succeeded", job
            assert (job["attempts"], job["error"]) == (1, None) and job["retries"] >= 3
            w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{RPC_PORT}"))
            assert len(w3.eth.get_code(job["result"]["verifier_address"])) > 0


def test_a_transaction_whose_receipt_was_lost_is_found_again_not_sent_twice(
    tmp_path: Path,
) -> None:
    with LocalChain() as node:
        chain = connect(node.rpc_url, ANVIL_DEV_KEY)
        chain.receipt_timeout_s = 1
        w3, me = chain.w3, chain.account.address
        payee = Web3.to_checksum_address("0x" + "42" * 20)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        journal = tmp_path / "journal.json"
        nonce = w3.eth.get_transaction_count(me)
        with transactions(journal):
            # Sent, but no receipt comes: the job would be retried.
            with pytest.raises(ChainUnavailableError):
                send(chain, {"to": payee, "value": Wei(1)})
            # The node forgets it (a restart, a full pool): the retry sends the same bytes.
            (noted,) = json.loads(journal.read_text()).values()
            w3.provider.make_request("anvil_dropTransaction", [noted["hash"]])  # type: ignore[arg-type]
            w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
            receipt = send(chain, {"to": payee, "value": Wei(1)})
            assert receipt["transactionHash"].to_0x_hex() == noted["hash"]
            # Pending when retried: the retry waits for that one.
            w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
            with pytest.raises(ChainUnavailableError):
                send(chain, {"to": payee, "value": Wei(2)})
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            again = send(chain, {"to": payee, "value": Wei(2)})
            assert again["status"] == 1
        assert w3.eth.get_transaction_count(me) == nonce + 2
        assert w3.eth.get_balance(payee) == 3


def test_jobs_whose_messages_the_broker_lost_finish_with_no_operator(
    service: Service, circuit: tuple[str, str]
) -> None:
    key, circuit_id = circuit
    for name in list(service.workers):
        service.kill_worker(name)
    with service.client(key) as client:
        job_ids = []
        for i in range(6):
            body = {"input": [[i / 7, 0.5, -0.25, 1.0 + i]]}
            accepted = client.post(f"/v1/circuits/{circuit_id}/proofs", json=body)
            assert accepted.status_code == 202, accepted.text
            job_ids.append(accepted.json()["job_id"])
        # Redis loses every message (as a restart of the local Redis does).
        broker = redis.Redis.from_url(service.redis_url)
        assert broker.llen("prove") == 6
        broker.flushall()
        for name in ("w1", "w2"):
            service.start_worker(name)
        finals = [wait_job(client, job_id, timeout=180) for job_id in job_ids]
    assert [job["state"] for job in finals] == ["succeeded"] * 6, finals
    logs = service.log("w1") + service.log("w2")
    assert logs.count("no message in the broker; sent again") == 6
    assert httpx.get(f"{service.url}/health").status_code == 200
