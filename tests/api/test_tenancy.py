"""Keys kept apart on shared artifacts: a model, circuit or proof with the same content is
one row for every key, but what is a key's own (the file name it uploaded, its jobs, when
it asked) is shown to that key only."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from prover.config import Settings
from prover.service.db import session_scope
from prover.service.tables import Job, Proof
from prover.store import ArtifactStore

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture
Enqueued = list[tuple[str, str, str]]  # the ``enqueued`` fixture
INPUT = {"input": [[1.0, 2.0, 3.0, 4.0]]}


def test_a_second_key_sees_its_own_file_name_and_job(
    alice: TestClient, bob: TestClient, upload: Upload, enqueued: Enqueued
) -> None:
    first = upload(alice, filename="alice-secret-project.onnx").json()
    second = upload(bob, filename="bob.onnx").json()
    assert second["model_id"] == first["model_id"]
    assert second["circuit_id"] == first["circuit_id"], "the artifact is shared"
    assert second["job_id"] != first["job_id"], "the job is not"
    assert bob.get(f"/v1/jobs/{first['job_id']}").status_code == 404
    assert bob.get(f"/v1/jobs/{second['job_id']}").json()["subject_id"] == first["circuit_id"]

    for client, name, job_id in (
        (alice, "alice-secret-project.onnx", first["job_id"]),
        (bob, "bob.onnx", second["job_id"]),
    ):
        circuit = client.get(f"/v1/circuits/{first['circuit_id']}").json()
        assert (circuit["model_name"], circuit["job_id"]) == (name, job_id)
        assert client.get(f"/v1/models/{first['model_id']}").json()["name"] == name
        (listed,) = client.get("/v1/models").json()["items"]
        assert listed["name"] == name
        (listed,) = client.get("/v1/circuits").json()["items"]
        assert (listed["model_name"], listed["job_id"]) == (name, job_id)
        (job,) = client.get("/v1/jobs").json()["items"]
        assert job["job_id"] == job_id
    for path in ("/v1/models", "/v1/circuits", "/v1/jobs", f"/v1/models/{first['model_id']}"):
        assert "alice" not in bob.get(path).text, path
    assert [kind for _, kind, _ in enqueued] == ["compile", "compile"]
    assert upload(bob, filename="bob.onnx").json() == second, "the same request again"


def _prove_by_hand(api_settings: Settings, proof_id: str, circuit_id: str) -> None:
    """What a worker would do: publish the proof's record and mark its row ready."""
    record = {
        "id": proof_id,
        "type": "proof",
        "circuit_id": circuit_id,
        "created_at": "2001-01-01T00:00:00+00:00",
        "outputs": [[1.0, 0.0]],
        "outputs_public": True,
        "instances": [],
        "proof": "0x00",
        "proof_bytes": 1,
        "dev_srs": True,
        "timings": {"prove_s": 1.0},
    }
    ArtifactStore(api_settings.data_dir).save_record("proofs", proof_id, record)
    with session_scope(api_settings.sqlalchemy_url()) as session:
        row = session.get(Proof, proof_id)
        assert row is not None
        row.state = "ready"


def test_a_proof_another_key_made_gets_a_job_of_ones_own(
    alice: TestClient,
    bob: TestClient,
    ready_circuit: str,
    upload: Upload,
    api_settings: Settings,
    enqueued: Enqueued,
) -> None:
    mine = alice.post(f"/v1/circuits/{ready_circuit}/proofs", json=INPUT).json()
    _prove_by_hand(api_settings, mine["proof_id"], ready_circuit)
    compiled = upload(bob).json()  # bob's own upload of the same model: a ready circuit
    assert compiled["circuit_id"] == ready_circuit and compiled["state"] == "ready"
    reused = bob.get(f"/v1/jobs/{compiled['job_id']}").json()
    assert reused["state"] == "succeeded" and reused["result"]["cached"] is True

    theirs = bob.post(f"/v1/circuits/{ready_circuit}/proofs", json=INPUT).json()
    assert theirs["proof_id"] == mine["proof_id"] and theirs["state"] == "ready"
    assert theirs["job_id"] != mine["job_id"]
    job = bob.get(f"/v1/jobs/{theirs['job_id']}").json()
    assert job["state"] == "succeeded" and job["result"]["proof_id"] == mine["proof_id"]
    assert job["result"]["outputs"] == [[1.0, 0.0]]
    assert len(enqueued) == 2, "alice's compile and prove jobs; nothing for bob to run"

    alice_view = alice.get(f"/v1/proofs/{mine['proof_id']}").json()
    bob_view = bob.get(f"/v1/proofs/{mine['proof_id']}").json()
    assert bob_view["job_id"] == theirs["job_id"] and alice_view["job_id"] == mine["job_id"]
    assert bob_view["created_at"] != "2001-01-01T00:00:00+00:00"
    assert bob_view["outputs"] == alice_view["outputs"]
    (listed,) = bob.get("/v1/proofs").json()["items"]
    assert listed["job_id"] == theirs["job_id"]
    assert mine["job_id"] not in bob.get("/v1/jobs").text


def test_a_proof_another_key_is_making_gets_a_job_that_makes_it_too(
    alice: TestClient,
    bob: TestClient,
    ready_circuit: str,
    upload: Upload,
    api_settings: Settings,
    enqueued: Enqueued,
) -> None:
    upload(bob)
    mine = alice.post(f"/v1/circuits/{ready_circuit}/proofs", json=INPUT).json()
    theirs = bob.post(f"/v1/circuits/{ready_circuit}/proofs", json=INPUT).json()
    assert theirs["proof_id"] == mine["proof_id"] and theirs["state"] == "proving"
    assert theirs["job_id"] != mine["job_id"]
    assert enqueued[-2:] == [
        (mine["job_id"], "prove", "prove"),
        (theirs["job_id"], "prove", "prove"),
    ]
    conflict = bob.post(f"/v1/proofs/{mine['proof_id']}/verify").json()["error"]
    assert conflict["job_id"] == theirs["job_id"]
    with session_scope(api_settings.sqlalchemy_url()) as session:
        owners = session.scalars(select(Job.owner).where(Job.kind == "prove")).all()
    assert len(set(owners)) == 2
