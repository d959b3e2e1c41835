"""Proven training through the service: step circuits compiled by the queue, training runs
as a sequence of step jobs, chains verified over HTTP, runs put on the TrainingLedger;
real Redis, workers, HTTP and anvil."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from helpers.files import write_json
from helpers.models import make_mlp, step_batch, step_model
from helpers.stack import Service, overlapped, poll, running_service, wait_job
from prover.chain.client import connect
from prover.chain.ledger import run_state, schedule_root
from prover.chain.node import ANVIL_DEV_KEY
from prover.service.db import session_scope
from prover.service.tables import Job, TrainingRun
from prover.store import ArtifactStore
from prover.training.step_export import (
    export_sgd_step,
    flatten_params,
    reference_step,
    unflatten_into,
)
from prover.training.steps import batch_commitment, commitment

pytestmark = pytest.mark.slow

LR = 0.5


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    data = tmp_path_factory.mktemp(f"train-service-{request.param}")
    with running_service(data, chain=True, database=request.param) as svc:
        yield svc


def _batch(t: int) -> dict[str, list]:
    x, y = step_batch(t)
    return {"x": x.tolist(), "y": y.tolist()}


@pytest.fixture(scope="module")
def step_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The tiny model's exported step graph and its sample step (initial weights)."""
    folder = tmp_path_factory.mktemp("step-graph")
    x, y = step_batch(0)
    spec = export_sgd_step(step_model(), "mse", LR, x.shape, y.shape, folder / "sgd_step.onnx")
    return spec.path, {"weights": flatten_params(step_model()).tolist(), **_batch(0)}


def _upload(client: httpx.Client, graph: Path, sample: object) -> httpx.Response:
    """Raw, for the refusals' status codes (``Client`` raises on them)."""
    files = {
        "model": (graph.name, graph.read_bytes(), "application/octet-stream"),
        "sample": ("sample.json", json.dumps(sample).encode(), "application/json"),
    }
    return client.post("/v1/training/circuits", files=files)


@pytest.fixture(scope="module")
def step_circuit(service: Service, step_files: tuple[Path, dict]) -> tuple[str, dict]:
    """(api key, circuit view) of the step circuit compiled through the compile queue."""
    key = service.key("trainer")
    with service.connect(key) as api:
        accepted = api.submit_step_circuit(*step_files)
        api.wait(accepted["job_id"], timeout=600)
        return key, api.circuit(accepted["circuit_id"])


def test_a_training_run_is_proven_step_by_step_through_the_queue(
    service: Service, step_circuit: tuple[str, dict], step_files: tuple[Path, dict]
) -> None:
    key, circuit = step_circuit
    meta = circuit["training"]
    assert meta["scale"] in (13, 15, 17) and meta["error_over_update"] <= 0.1
    weights = step_files[1]["weights"]
    batches = [_batch(t) for t in range(3)]
    with service.client(key) as client, service.connect(key) as api:
        accepted = client.post(
            "/v1/training/runs",
            json={"circuit_id": circuit["circuit_id"], "weights": weights, "batches": batches},
        )
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["steps_total"] == 3 and accepted.json()["steps_done"] == 0
        run = api.wait_run(accepted.json()["run_id"], timeout=600)
        assert run["state"] == "succeeded", run
        steps = run["steps"]
        assert [s["step"] for s in steps] == [0, 1, 2]

        # Each step starts from the weights the one before produced, and tracks torch.
        assert steps[0]["commitments"]["weights_in"] == commitment(weights, meta["scale"])
        for before, after in itertools.pairwise(steps):
            assert after["commitments"]["weights_in"] == before["commitments"]["weights_out"]
        assert run["final_commitment"] == steps[-1]["commitments"]["weights_out"]
        # The proven weights stay within the stated error of three float SGD steps.
        model, updates = step_model(), []
        for t in range(3):
            before = flatten_params(model)
            after, _ = reference_step(model, "mse", LR, *step_batch(t))
            updates.append(np.mean(np.abs(after - before)))
            unflatten_into(model, after)
        drift = np.max(np.abs(np.asarray(run["final_weights"]) - flatten_params(model)))
        assert drift <= 0.1 * sum(updates), (drift, updates)
        assert all(s["max_error_vs_float"] <= 0.1 * u for s, u in zip(steps, updates, strict=True))

        # One job per step, each on the prove queue's workers, each a proof the key sees.
        with session_scope(service.db_url) as session:
            kinds = session.scalars(select(Job.kind).where(Job.subject_id == run["run_id"]))
            assert list(kinds) == ["train_step"] * 3
        proof_ids = [s["proof_id"] for s in steps]
        for proof_id in proof_ids:
            assert client.get(f"/v1/proofs/{proof_id}").json()["state"] == "ready"
        state_only = client.get(
            f"/v1/training/runs/{run['run_id']}", params={"steps": "false"}
        ).json()
        assert state_only["steps_done"] == 3 and state_only["steps"] is None
        listed = client.get("/v1/training/runs").json()["items"]
        assert [r["run_id"] for r in listed] == [run["run_id"]]

        chain = client.post(
            "/v1/training/verify-chain",
            json={
                "proof_ids": proof_ids,
                "batches": batches,
                "initial_weights": steps[0]["commitments"]["weights_in"],
            },
        ).json()
        assert chain["valid"] and chain["final_weights"] == run["final_commitment"], chain
        swapped = client.post(
            "/v1/training/verify-chain", json={"proof_ids": [proof_ids[1], proof_ids[0]]}
        ).json()
        assert not swapped["valid"] and swapped["broken_at"] == 1
        other_batch = client.post(
            "/v1/training/verify-chain",
            json={"proof_ids": proof_ids[:2], "batches": [batches[0], _batch(7)]},
        ).json()
        assert other_batch["broken_at"] == 1 and "batch" in other_batch["reason"]

        # The same run again is the same run, and no new job.
        again = client.post(
            "/v1/training/runs",
            json={"circuit_id": circuit["circuit_id"], "weights": weights, "batches": batches},
        ).json()
        assert again["run_id"] == run["run_id"] and again["state"] == "succeeded"

    # Another key sees none of it.
    with service.client(service.key("stranger")) as stranger:
        assert stranger.get(f"/v1/training/runs/{run['run_id']}").status_code == 404
        refused = stranger.post("/v1/training/verify-chain", json={"proof_ids": proof_ids})
        assert refused.status_code == 404


def test_a_run_goes_on_the_ledger_with_its_batch_schedule(
    service: Service, step_circuit: tuple[str, dict], step_files: tuple[Path, dict]
) -> None:
    key, circuit = step_circuit
    scale = circuit["training"]["scale"]
    weights, batches = step_files[1]["weights"], [_batch(t) for t in range(3)]
    body = {"circuit_id": circuit["circuit_id"], "weights": weights}
    with service.client(key) as client, service.connect(key) as api:
        run = client.post("/v1/training/runs", json={**body, "batches": batches}).json()
        run = api.wait_run(run["run_id"], timeout=600)
        assert run["state"] == "succeeded", run
        accepted = client.post(f"/v1/training/runs/{run['run_id']}/ledger")
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"])
        assert job["state"] == "succeeded" and job["kind"] == "ledger", job
        result = job["result"]
        expected = [
            batch_commitment(np.asarray(b["x"]), np.asarray(b["y"]), scale) for b in batches
        ]
        assert result["run_key"] == "0x" + run["run_id"]
        assert result["started"]["initial_weights"] == commitment(weights, scale)
        assert result["batch_schedule"] == {"root": schedule_root(expected), "batches": 3}
        assert [s["step"] for s in result["submitted"]] == [0, 1, 2]
        assert result["steps"] == 3 and result["current_weights"] == run["final_commitment"]

        # The chain agrees; putting the run on the ledger again sends nothing new.
        chain = connect(service.env["PROVER_RPC_URL"], ANVIL_DEV_KEY)
        state = run_state(chain, ArtifactStore(service.data_dir), result["run_key"])
        assert state["steps"] == 3 and state["batch_schedule"] == result["batch_schedule"]
        again = wait_job(
            client, client.post(f"/v1/training/runs/{run['run_id']}/ledger").json()["job_id"]
        )
        assert again["state"] == "succeeded", again
        assert again["result"]["started"] is None and again["result"]["submitted"] == []

        # A run still proving is refused (409), an unknown one is 404; nothing is queued.
        pending = client.post("/v1/training/runs", json={**body, "batches": [_batch(5)]}).json()
        early = client.post(f"/v1/training/runs/{pending['run_id']}/ledger")
        assert early.status_code == 409 and "running" in early.json()["error"]["message"]
        assert client.post(f"/v1/training/runs/{'0' * 64}/ledger").status_code == 404
        api.wait_run(pending["run_id"], timeout=600)
    with service.client(service.key("stranger")) as stranger:
        assert stranger.post(f"/v1/training/runs/{run['run_id']}/ledger").status_code == 404
    with session_scope(service.db_url) as session:
        ledger_jobs = select(func.count()).where(Job.kind == "ledger")
        assert session.scalar(ledger_jobs) == 2


def test_a_federated_round_is_proven_by_parallel_client_jobs_and_goes_on_the_ledger(
    service: Service, step_circuit: tuple[str, dict], step_files: tuple[Path, dict]
) -> None:
    """Two clients step from the same global weights as two jobs at once (one per worker),
    then the round job proves the aggregation; two rounds chain; the ledger accepts both."""
    key, circuit = step_circuit
    weights = step_files[1]["weights"]
    rounds = [[_batch(10), _batch(11)], [_batch(12), _batch(13)]]
    body = {"circuit_id": circuit["circuit_id"], "weights": weights, "rounds": rounds}
    with service.client(key) as client, service.connect(key) as api:
        accepted = client.post("/v1/training/federated-runs", json=body)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["clients"] == 2 and accepted.json()["steps_total"] == 2
        run = api.wait_run(accepted.json()["run_id"], timeout=600)
        assert run["state"] == "succeeded", run
        assert [r["round"] for r in run["rounds"]] == [0, 1]
        first, second = run["rounds"]
        assert second["global_weights_in"] == first["global_weights_out"]
        assert run["final_commitment"] == second["global_weights_out"]
        # Each round job was the parent of one client job per client, run in parallel.
        round_jobs = [
            j
            for j in client.get("/v1/jobs", params={"limit": 100}).json()["items"]
            if j["kind"] == "client_step" and j["subject_id"] == run["run_id"]
        ]
        assert len(round_jobs) == 4 and {j["state"] for j in round_jobs} == {"succeeded"}
        by_parent: dict[str, list[dict]] = {}
        for job in round_jobs:
            by_parent.setdefault(job["parent_id"], []).append(job)
        assert len(by_parent) == 2
        assert any(overlapped(group) for group in by_parent.values())
        # The chain accepts the rounds in order.
        ledger = wait_job(
            client, client.post(f"/v1/training/runs/{run['run_id']}/ledger").json()["job_id"]
        )
        assert ledger["state"] == "succeeded", ledger
        assert [s["round"] for s in ledger["result"]["submitted"]] == [0, 1]
        assert ledger["result"]["run"]["steps"] == 2
        # A round whose clients disagree in number is refused before any job.
        bad = client.post(
            "/v1/training/federated-runs", json={**body, "rounds": [[_batch(1)], rounds[0]]}
        )
        assert bad.status_code == 422, bad.text


def _counts(db_url: str) -> tuple[int, int]:
    with session_scope(db_url) as session:
        return (
            session.scalar(select(func.count()).select_from(Job)) or 0,
            session.scalar(select(func.count()).select_from(TrainingRun)) or 0,
        )


def test_bad_training_requests_are_refused_and_create_nothing(
    service: Service,
    step_circuit: tuple[str, dict],
    step_files: tuple[Path, dict],
    tmp_path: Path,
) -> None:
    key, circuit = step_circuit
    graph, sample = step_files
    before = _counts(service.db_url)
    run = {"circuit_id": circuit["circuit_id"], "weights": sample["weights"]}
    with service.client(key) as client:
        plain = _upload(client, make_mlp(tmp_path / "mlp.onnx"), sample)
        assert plain.status_code == 422 and "prover.training_step" in plain.text
        short = _upload(client, graph, {**sample, "weights": sample["weights"][:-1]})
        assert short.status_code == 422 and "weights" in short.json()["error"]["message"]
        bad_json = client.post(
            "/v1/training/circuits",
            files={
                "model": (graph.name, graph.read_bytes(), "application/octet-stream"),
                "sample": ("sample.json", b"{not json", "application/json"),
            },
        )
        assert bad_json.status_code == 422 and "sample" in bad_json.json()["error"]["message"]
        wrong_batch = client.post(
            "/v1/training/runs",
            json={**run, "batches": [_batch(0), {"x": [[1.0, 2.0]], "y": [[0, 1, 0]]}]},
        )
        assert wrong_batch.status_code == 422
        assert wrong_batch.json()["error"]["message"].startswith("batch 1: x has 2 values")
        boolean = _batch(0)
        boolean["x"][0][1] = True
        typed = client.post("/v1/training/runs", json={**run, "batches": [_batch(0), boolean]})
        assert typed.status_code == 422
        assert typed.json()["error"]["message"] == "batch 1: x[0][1] is a boolean, not a number"
        huge = _batch(0)
        huge["x"][0][2] = 1e30
        past = client.post("/v1/training/runs", json={**run, "batches": [huge]})
        assert past.status_code == 422, past.text
        refused = past.json()["error"]
        assert refused["message"].startswith("batch 0: 'x'[0][2] = 1e+30 is outside"), refused
        assert refused["position"] == "[0][2]" and refused["allowed"][1] > 0
        no_batches = client.post("/v1/training/runs", json={**run, "batches": []})
        assert no_batches.status_code == 422
        wrong_weights = client.post(
            "/v1/training/runs", json={**run, "weights": [0.0], "batches": [_batch(0)]}
        )
        assert wrong_weights.status_code == 422 and "weights" in wrong_weights.text
        unknown = client.post(
            "/v1/training/runs", json={**run, "circuit_id": "0" * 64, "batches": [_batch(0)]}
        )
        assert unknown.status_code == 404
    with service.client("pk_wrong") as client:
        assert client.post("/v1/training/runs", json={**run, "batches": []}).status_code == 401
    assert _counts(service.db_url) == before


def test_the_cli_trains_through_the_service(
    service: Service, step_circuit: tuple[str, dict], tmp_path: Path
) -> None:
    """`prover train compile|run|verify-chain --remote`: the compile is answered from the
    service's circuit (same graph, same sample), the run proves two steps through it."""
    key, circuit = step_circuit
    model = tmp_path / "model.py"
    model.write_text(
        "import torch\n\n\ndef make_model():\n    torch.manual_seed(0)\n    return "
        "torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))\n"
    )
    batches = [write_json(tmp_path / f"b{t}.json", _batch(t)) for t in (0, 4)]
    env = {**service.env, "PROVER_API_KEY": key, "PROVER_DATA_DIR": str(tmp_path / "client")}

    def cli(*args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "prover", *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    compiled = cli(
        "train", "compile", f"{model}:make_model", "--loss", "mse", "--lr", str(LR),
        "--batch", "4", "--sample-batch", str(batches[0]),
        "--weights-out", str(tmp_path / "w0.json"), "--remote",
    )  # fmt: skip
    assert compiled["circuit_id"] == circuit["circuit_id"]
    run = cli(
        "train", "run", compiled["circuit_id"], "--weights", str(tmp_path / "w0.json"),
        "--batch", str(batches[0]), "--batch", str(batches[1]), "--remote",
    )  # fmt: skip
    assert run["state"] == "succeeded" and len(run["steps"]) == 2
    proofs = [s["proof_id"] for s in run["steps"]]
    chain = cli(
        "train", "verify-chain", *proofs, "--initial", compiled["initial_weights_commitment"],
        "--remote",
    )  # fmt: skip
    assert chain["valid"] and chain["final_weights"] == run["final_commitment"]
    assert not os.path.exists(tmp_path / "client" / "proofs")  # nothing was proven locally


def test_a_run_survives_its_worker_being_killed_mid_step(
    service: Service, step_circuit: tuple[str, dict], step_files: tuple[Path, dict]
) -> None:
    """SIGKILL the worker proving step 1 of a run: the other worker takes the step over
    once its lease lapses, the run goes on to the end, each step is proven once."""
    key, circuit = step_circuit
    batches = [_batch(t) for t in (10, 11, 12)]
    body = {"circuit_id": circuit["circuit_id"], "weights": step_files[1]["weights"]}
    with service.client(key) as client, service.connect(key) as api:
        run = client.post("/v1/training/runs", json={**body, "batches": batches}).json()

        def proving_step_1() -> dict | None:
            view = client.get(f"/v1/training/runs/{run['run_id']}").json()
            job = client.get(f"/v1/jobs/{view['job_id']}").json()
            assert view["steps_done"] < 2, "step 1 ended before it could be killed"
            return job if view["steps_done"] == 1 and job["phase"] == "proving" else None

        job = poll(proving_step_1, 120, "step 1's proving phase")
        victim = job["worker"].split("@")[0]
        service.kill_worker(victim)
        try:
            final = api.wait_run(run["run_id"], timeout=600)
        finally:
            service.start_worker(victim)
        assert final["state"] == "succeeded" and final["steps_done"] == 3, final
        retried = client.get(f"/v1/jobs/{job['job_id']}").json()
        assert retried["attempts"] == 2 and retried["worker"].split("@")[0] != victim
    with session_scope(service.db_url) as session:
        step_jobs = session.scalars(select(Job).where(Job.subject_id == run["run_id"])).all()
        assert len(step_jobs) == 3 and {j.state for j in step_jobs} == {"succeeded"}
    for before, after in itertools.pairwise(final["steps"]):
        assert after["commitments"]["weights_in"] == before["commitments"]["weights_out"]
