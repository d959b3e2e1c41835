"""Dynamic batching through the service: single requests of one key for a batch circuit,
sent at once, proven in one or two batch proofs, each request with its own proof id,
outputs, verification, export and on-chain result; keys never mixed; a lone request waits
the window at most. Real Redis, two workers, HTTP, ezkl and anvil."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helpers.models import calibration_data, make_mlp
from helpers.stack import Service, compile_model, running_service, wait_job
from prover.circuits.intake import FloatReference
from prover.circuits.tensors import TensorSpec

pytestmark = pytest.mark.slow

N = 16
WINDOW_S = 4.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    window = {"PROVER_BATCH_WINDOW_MS": str(int(WINDOW_S * 1000))}
    with running_service(tmp_path_factory.mktemp("batching"), chain=True, env=window) as svc:
        yield svc


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("batching-model") / "mlp.onnx")


@pytest.fixture(scope="module")
def circuits(service: Service, model: Path) -> dict[str, str]:
    """The model's batch-16 circuit (hashed inputs and outputs) and its single circuit,
    compiled by the key "owner" (and visible to "other", which compiles the same)."""
    made = {}
    forms: dict[str, dict[str, Any]] = {
        "batch": {
            "batch_size": N,
            "input_visibility": "hashed",
            "output_visibility": "hashed",
            "reusable_verifier": True,  # its own verifier is over EIP-170's 24 KB
        },
        "single": {},
    }
    keys = {"owner": service.key("owner"), "other": service.key("other")}
    for name, form in forms.items():
        for key in keys.values():
            with service.connect(key) as api:
                made[name] = compile_model(api, model, calibration_data(), **form)["circuit_id"]
    return {**made, **keys}


def _inputs(count: int, seed: int) -> list[list[list[float]]]:
    rng = np.random.default_rng(seed)
    return [[rng.uniform(-1.5, 1.5, 4).round(3).tolist()] for _ in range(count)]


def _ask_at_once(
    service: Service, key: str, circuit_id: str, inputs: list[Any], settle: bool = False
) -> list[dict]:
    """Every input as its own batching request, sent at the same time."""

    def ask(item: Any) -> dict:
        with service.client(key) as client:
            body = {"input": item, "batching": True, "settle": settle}
            answer = client.post(f"/v1/circuits/{circuit_id}/proofs", json=body)
            assert answer.status_code == 202, answer.text
            return answer.json()

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(ask, inputs))


def _finished(client: httpx.Client, accepted: list[dict]) -> list[dict]:
    for job_id in {a["job_id"] for a in accepted}:
        job = wait_job(client, job_id, 600)
        assert job["state"] == "succeeded", job
    return [client.get(f"/v1/proofs/{a['proof_id']}").json() for a in accepted]


def test_sixteen_requests_are_one_or_two_batch_proofs_each_result_its_own(
    service: Service, circuits: dict[str, str], model: Path
) -> None:
    inputs = _inputs(N, seed=7)
    accepted = _ask_at_once(service, circuits["owner"], circuits["batch"], inputs)
    assert len({a["proof_id"] for a in accepted}) == N
    assert 1 <= len({a["job_id"] for a in accepted}) <= 2
    reference = FloatReference(model, [TensorSpec("input", (1, 4), "float32")])
    with service.client(circuits["owner"]) as client:
        proofs = _finished(client, accepted)
        assert 1 <= len({p["batch"]["proof_id"] for p in proofs}) <= 2
        for item, proof in zip(inputs, proofs, strict=True):
            expected = reference.run([np.asarray(item[0])])[0].reshape(-1)
            assert np.allclose(np.asarray(proof["outputs"][0]).reshape(-1), expected, atol=0.05)
            verdict = client.post(f"/v1/proofs/{proof['proof_id']}/verify").json()
            assert verdict["valid"] and verdict["position"] == proof["batch"]["position"], verdict
        exported = client.get(f"/v1/proofs/{proofs[0]['proof_id']}/ezkl")
        batch_proof = proofs[0]["batch"]["proof_id"]
        assert exported.content == client.get(f"/v1/proofs/{batch_proof}/ezkl").content
        assert len(client.get(f"/v1/proofs/{batch_proof}").json()["results"]) == N

        deployed = wait_job(
            client, client.post(f"/v1/circuits/{circuits['batch']}/deployments").json()["job_id"]
        )
        assert deployed["state"] == "succeeded", deployed
        same_batch = [p for p in proofs if p["batch"]["proof_id"] == batch_proof]
        first, second = (_submit(client, p["proof_id"]) for p in same_batch[:2])
        assert first["accepted"] and not first["already_settled"], first
        assert len(first["results"]) == N and first["gas_per_result"] * N <= first["gas_used"] + N
        assert second["accepted"] and second["already_settled"], second  # no second transaction
        assert second["batch_key"] == first["batch_key"] and second["tx_hash"] is None
        keys = {r["result_key"] for r in first["results"]}
        assert {p["batch"]["result_key"] for p in same_batch} <= keys


def _submit(client: httpx.Client, proof_id: str) -> dict:
    job = wait_job(client, client.post(f"/v1/proofs/{proof_id}/submissions").json()["job_id"])
    assert job["state"] == "succeeded", job
    return job["result"]


def test_two_keys_requests_are_never_batched_together(
    service: Service, circuits: dict[str, str]
) -> None:
    with ThreadPoolExecutor(2) as pool:
        mine, theirs = pool.map(
            lambda args: _ask_at_once(service, *args),
            [
                (circuits["owner"], circuits["batch"], _inputs(3, seed=11)),
                (circuits["other"], circuits["batch"], _inputs(3, seed=12)),
            ],
        )
    assert not {a["batch_id"] for a in mine} & {a["batch_id"] for a in theirs}
    with service.client(circuits["owner"]) as owner, service.client(circuits["other"]) as other:
        my_batches = {p["batch"]["proof_id"] for p in _finished(owner, mine)}
        their_batches = {p["batch"]["proof_id"] for p in _finished(other, theirs)}
        assert not my_batches & their_batches
        for accepted in theirs:  # another key's request does not exist for this key
            assert owner.get(f"/v1/proofs/{accepted['proof_id']}").status_code == 404


def test_a_lone_request_waits_the_window_at_most_and_settles_by_itself(
    service: Service, circuits: dict[str, str]
) -> None:
    """(The circuit was deployed by the first test.)"""
    with service.client(circuits["owner"]) as client:
        started = time.monotonic()
        (accepted,) = _ask_at_once(
            service, circuits["owner"], circuits["batch"], _inputs(1, 21), settle=True
        )
        job = wait_job(client, accepted["job_id"])
        elapsed = time.monotonic() - started
        assert job["state"] == "succeeded" and job["result"]["size"] == 1, job
        proving = sum(job["result"]["timings"].values())  # the one batch proof
        assert WINDOW_S * 0.9 <= elapsed <= WINDOW_S + proving + 10, (elapsed, proving)
        proof = client.get(f"/v1/proofs/{accepted['proof_id']}").json()
        assert proof["batch"]["requests"] == 1
        assert client.post(f"/v1/proofs/{accepted['proof_id']}/verify").json()["valid"]
        settled = wait_job(client, job["result"]["submit_job_id"])  # the queue's settler
        assert settled["state"] == "succeeded" and settled["result"]["accepted"], settled
        assert proof["batch"]["result_key"] in {
            r["result_key"] for r in settled["result"]["results"]
        }


def test_batching_needs_a_batch_circuit_and_one_input(
    service: Service, circuits: dict[str, str]
) -> None:
    (item,) = _inputs(1, 31)
    with service.client(circuits["owner"]) as client:
        single = client.post(
            f"/v1/circuits/{circuits['single']}/proofs", json={"input": item, "batching": True}
        )
        assert single.status_code == 422 and "batch_size" in single.json()["error"]["message"]
        unbatched = client.post(f"/v1/circuits/{circuits['batch']}/proofs", json={"input": item})
        assert unbatched.status_code == 422, unbatched.text
        assert "batching" in unbatched.json()["error"]["message"]
        both = client.post(
            f"/v1/circuits/{circuits['batch']}/proofs",
            json={"items": [item] * N, "batching": True},
        )
        assert both.status_code == 422
        alone = client.post(
            f"/v1/circuits/{circuits['batch']}/proofs", json={"input": item, "settle": True}
        )
        assert alone.status_code == 422 and "settle" in alone.text
