"""The proving service end to end: real Redis, real worker processes, real HTTP."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ezkl
import httpx
import onnx
import pytest
from onnx import TensorProto, helper
from sqlalchemy import func, select

from helpers.models import calibration_data, make_mlp
from helpers.stack import Service, compile_model, poll, running_service, wait_job
from prover.chain.node import free_port
from prover.service.db import session_scope
from prover.service.tables import Job, Proof

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    data = tmp_path_factory.mktemp(f"service-{request.param}")
    with running_service(data, database=request.param) as svc:
        yield svc


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("svc-model") / "mlp.onnx")


@pytest.fixture(scope="module")
def compiled(service: Service, model_file: Path) -> tuple[str, str]:
    """(api key, circuit id) of the tiny MLP compiled through the service."""
    key = service.key("owner")
    with service.connect(key) as api:
        return key, compile_model(api, model_file, calibration_data())["circuit_id"]


def test_submit_compile_prove_fetch_verify(
    service: Service, compiled: tuple[str, str], model_file: Path, tmp_path: Path
) -> None:
    key, circuit_id = compiled
    with service.connect(key) as api:  # the same request: the same circuit and job
        again = compile_model(api, model_file, calibration_data())
        assert again["circuit_id"] == circuit_id and again["state"] == "ready"
    with service.client(key) as client:
        circuit = client.get(f"/v1/circuits/{circuit_id}").json()
        assert circuit["state"] == "ready" and circuit["record"]["logrows"] <= 12

        accepted = client.post(
            f"/v1/circuits/{circuit_id}/proofs", json={"input": [[0.5, -1.25, 0.75, 2.0]]}
        )
        assert accepted.status_code == 202, accepted.text
        proof_id, job_id = accepted.json()["proof_id"], accepted.json()["job_id"]
        job = wait_job(client, job_id)
        assert job["state"] == "succeeded" and job["progress"] == 1.0
        assert {"queued", "witness", "proving", "verifying"} <= set(job["timings"])
        assert job["attempts"] == 1

        proof = client.get(f"/v1/proofs/{proof_id}").json()
        assert proof["state"] == "ready"
        assert len(proof["outputs"][0][0]) == 2 and proof["proof"].startswith("0x")
        assert all(f.startswith("0x") for row in proof["instances"] for f in row)
        assert client.post(f"/v1/proofs/{proof_id}/verify").json()["valid"] is True

        # ezkl's own verifier accepts the proof file the API serves.
        proof_path = tmp_path / "proof.json"
        proof_path.write_bytes(client.get(f"/v1/proofs/{proof_id}/ezkl").content)
        cdir = service.data_dir / "circuits" / circuit_id
        srs = service.data_dir / circuit["record"]["srs"]["path"]
        assert ezkl.verify(
            str(proof_path), str(cdir / "settings.json"), str(cdir / "vk.key"), str(srs), False
        )

        # The same input is the same proof; ezkl's input.json form names the same input.
        same = client.post(
            f"/v1/circuits/{circuit_id}/proofs",
            json={"input": {"input_data": [[0.5, -1.25, 0.75, 2.0]]}},
        ).json()
        assert (same["proof_id"], same["job_id"], same["state"]) == (proof_id, job_id, "ready")
        fresh = client.post(
            f"/v1/circuits/{circuit_id}/proofs",
            json={"input": [[0.5, -1.25, 0.75, 2.0]], "fresh": True},
        ).json()
        assert fresh["proof_id"] != proof_id
        assert wait_job(client, fresh["job_id"])["state"] == "succeeded"

        listed = client.get("/v1/proofs", params={"limit": 1}).json()
        assert len(listed["items"]) == 1 and listed["next_cursor"] is not None
        rest = client.get("/v1/proofs", params={"limit": 1, "cursor": listed["next_cursor"]})
        assert {listed["items"][0]["proof_id"], rest.json()["items"][0]["proof_id"]} == {
            proof_id,
            fresh["proof_id"],
        }

    health = httpx.get(f"{service.url}/health").json()
    assert health["status"] == "ok" and health["workers"] >= 1
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'prover_queue_depth{queue="prove"}' in metrics
    assert 'prover_jobs{kind="prove",state="succeeded"}' in metrics


def _unsupported_model(path: Path) -> Path:
    node = helper.make_node("Mod", ["x", "y"], ["z"], name="remainder", fmod=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("y", TensorProto.FLOAT, [1, 4], [2.0] * 4)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_bad_input_is_a_clear_4xx_and_creates_nothing(
    service: Service, compiled: tuple[str, str], model_file: Path, tmp_path: Path
) -> None:
    key, circuit_id = compiled
    with service.client(key) as client:
        before = _count(service, Job)

        def expect(response: httpx.Response, status: int, code: str, says: str) -> None:
            assert response.status_code == status, response.text
            error = response.json()["error"]
            assert error["code"] == code and says in error["message"], error

        files = {"model": ("bad.onnx", b"not an onnx file", "application/octet-stream")}
        expect(client.post("/v1/models", files=files), 422, "invalid_model", "bad.onnx")
        mod = _unsupported_model(tmp_path / "mod.onnx")
        files = {"model": ("mod.onnx", mod.read_bytes(), "application/octet-stream")}
        expect(client.post("/v1/models", files=files), 422, "unsupported_operator", "Mod")
        files = {
            "model": ("mlp.onnx", model_file.read_bytes(), "application/octet-stream"),
            "calibration": ("c.json", b"[1, 2, 3]", "application/json"),
        }
        expect(client.post("/v1/models", files=files), 422, "invalid_input", "calibration")
        files = {"model": ("mlp.onnx", model_file.read_bytes(), "application/octet-stream")}
        expect(
            client.post("/v1/models", files=files, data={"input_visibility": "secret"}),
            422,
            "invalid_input",
            "visibility",
        )
        expect(client.post("/v1/models", data={"x": "1"}), 422, "invalid_request", "model")
        huge = {"model": ("big.onnx", io.BytesIO(b"\0" * (4 << 20)), "application/octet-stream")}
        expect(client.post("/v1/models", files=huge), 413, "request_too_large", "limit")

        proofs = f"/v1/circuits/{circuit_id}/proofs"
        expect(client.post(proofs, json={"input": [[1.0, 2.0]]}), 422, "invalid_input", "4 values")
        expect(client.post(proofs, json={"input": [["a", 2, 3, 4]]}), 422, "invalid_input", "")
        expect(client.post(proofs, json={"inputs": []}), 422, "invalid_request", "input")
        expect(
            client.post(proofs, content=b"{not json", headers={"content-type": "application/json"}),
            422,
            "invalid_request",
            "",
        )
        big = {"input": [[0.0] * 300_000]}
        expect(client.post(proofs, json=big), 413, "request_too_large", "limit")
        expect(
            client.post("/v1/circuits/deadbeef/proofs", json={"input": [[1] * 4]}),
            404,
            "not_found",
            "deadbeef",
        )
        expect(client.get("/v1/jobs/nope"), 404, "not_found", "nope")
        expect(client.get("/v1/proofs/nope"), 404, "not_found", "nope")
        expect(client.get("/v1/jobs", params={"limit": 1000}), 422, "invalid_request", "limit")
        assert _count(service, Job) == before

    with service.client(None) as anonymous:
        expect(anonymous.get("/v1/jobs"), 401, "unauthorized", "Bearer")
    with service.client("pk_wrong") as wrong:
        expect(wrong.get("/v1/jobs"), 401, "unauthorized", "unknown API key")


def test_keys_see_only_their_own(service: Service, compiled: tuple[str, str]) -> None:
    key, circuit_id = compiled
    with service.client(key) as owner:
        accepted = owner.post(
            f"/v1/circuits/{circuit_id}/proofs", json={"input": [[0.1, 0.2, 0.3, 0.4]]}
        ).json()
        wait_job(owner, accepted["job_id"])
    with service.client(service.key("other")) as other:
        for path in (
            f"/v1/proofs/{accepted['proof_id']}",
            f"/v1/jobs/{accepted['job_id']}",
            f"/v1/circuits/{circuit_id}",
        ):
            assert other.get(path).status_code == 404, path
        assert other.post(f"/v1/proofs/{accepted['proof_id']}/verify").status_code == 404
        response = other.post(f"/v1/circuits/{circuit_id}/proofs", json={"input": [[1] * 4]})
        assert response.status_code == 404
        for kind in ("models", "circuits", "proofs", "jobs"):
            assert other.get(f"/v1/{kind}").json()["items"] == []


def test_twenty_concurrent_proofs(service: Service, compiled: tuple[str, str]) -> None:
    key, circuit_id = compiled
    results: list[dict] = []
    errors: list[BaseException] = []

    def request(i: int) -> None:
        try:
            with service.client(key) as client:
                accepted = client.post(
                    f"/v1/circuits/{circuit_id}/proofs",
                    json={"input": [[i / 10, -i / 20, 0.25, 1.0]]},
                )
                assert accepted.status_code == 202, accepted.text
                results.append(wait_job(client, accepted.json()["job_id"], timeout=600))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 20
    odd = [j for j in results if j["state"] != "succeeded" or j["attempts"] != 1]
    assert not odd, odd
    assert len({job["subject_id"] for job in results}) == 20
    assert {job["worker"] for job in results} == {"w1@test", "w2@test"}


def _count(service: Service, table: type) -> int:
    with session_scope(service.db_url) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_worker_killed_mid_proof_completes_once(service: Service, model_file: Path) -> None:
    """SIGKILL the worker in the middle of a proof: the other worker takes the job over
    once the lease lapses, and the proof is recorded exactly once."""
    key = service.key("kill")
    with service.client(key) as client:
        # ezkl's default settings make a slow (2^15-row) circuit: seconds per proof.
        with service.connect(key) as api:
            accepted = compile_model(api, model_file, calibration_data(), strategy="ezkl-default")
        request = client.post(
            f"/v1/circuits/{accepted['circuit_id']}/proofs", json={"input": [[1, 2, 3, 4]]}
        ).json()

        def proving() -> dict | None:
            job = client.get(f"/v1/jobs/{request['job_id']}").json()
            assert job["state"] != "succeeded", "the proof ended before it could be killed"
            return job if job["phase"] == "proving" else None

        job = poll(proving, 120, "the proof's proving phase")
        victim = job["worker"].split("@")[0]
        service.kill_worker(victim)
        try:
            final = wait_job(client, request["job_id"], timeout=300)
            assert final["state"] == "succeeded", final
            assert final["attempts"] == 2 and final["worker"].split("@")[0] != victim
            time.sleep(3)  # nothing runs it again
            assert client.get(f"/v1/jobs/{request['job_id']}").json() == final
            assert client.post(f"/v1/proofs/{request['proof_id']}/verify").json()["valid"]
        finally:
            service.start_worker(victim)
    with session_scope(service.db_url) as session:
        rows = session.scalars(select(Proof).where(Proof.id == request["proof_id"])).all()
        assert len(rows) == 1 and rows[0].state == "ready"
        jobs = session.scalars(select(Job).where(Job.subject_id == request["proof_id"])).all()
        assert len(jobs) == 1
    assert (service.data_dir / "proofs" / request["proof_id"] / "record.json").is_file()


def test_flower_sees_the_workers(service: Service) -> None:
    if not service.db_url.startswith("sqlite"):
        pytest.skip("the broker is the same for both databases; checked once")
    port = free_port()
    command = [sys.executable, "-m", "celery", "-A", "prover.worker.app", "flower"]
    flower = subprocess.Popen(
        [*command, f"--port={port}", "--address=127.0.0.1"],
        env=service.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wanted = {f'flower_worker_online{{worker="{w}@test"}} 1.0' for w in ("w1", "w2")}
        deadline = time.monotonic() + 60
        online = ""
        while time.monotonic() < deadline and not all(line in online for line in wanted):
            time.sleep(0.5)
            with contextlib.suppress(httpx.HTTPError):
                online = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert all(line in online for line in wanted), online
    finally:
        flower.terminate()
        flower.wait(timeout=20)
