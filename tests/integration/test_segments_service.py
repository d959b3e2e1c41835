"""A model in segments through the service: compiled by the compile queue, one proof
spread over the pool (one job per segment, on two workers at once) and composed by its
parent job; real Redis, worker processes, HTTP and ezkl."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers.models import calibration_data, make_dynamic_cnn
from helpers.stack import Service, compile_model, overlapped, running_service, wait_job
from prover.circuits.intake import FloatReference
from prover.circuits.tensors import TensorSpec
from prover.client import ServiceError

pytestmark = pytest.mark.slow

INPUT = [[0.5, -1.25, 0.75, 2.0]]


def _deep_mlp(path: Path) -> Path:
    """A 4-16-16-2 ReLU MLP: three layers, so two segments each hold real work."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(3)
    layers = [torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU()]
    return export_onnx(
        torch.nn.Sequential(*layers, torch.nn.Linear(16, 2)), torch.zeros(1, 4), path
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("segments-service"), chain=True) as svc:
        yield svc


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _deep_mlp(tmp_path_factory.mktemp("segments-model") / "deep.onnx")


def test_one_proof_is_spread_over_two_workers_and_composed(service: Service, model: Path) -> None:
    key = service.key("segments")
    with service.connect(key) as api:
        circuit_id = compile_model(api, model, calibration_data(8), segments=2)["circuit_id"]
        # Asking for more segments than the model has cut points is refused at once.
        with pytest.raises(ServiceError) as refused:
            api.submit_model(model, model.with_suffix(".cal.json"), segments=30)
        assert refused.value.status == 422
    with service.client(key) as client:
        circuit = client.get(f"/v1/circuits/{circuit_id}").json()
        assert circuit["record"]["type"] == "segmented", circuit
        assert len(circuit["record"]["segments"]) == 2

        asked = client.post(f"/v1/circuits/{circuit_id}/proofs", json={"input": INPUT})
        assert asked.status_code == 202, asked.text
        parent = wait_job(client, asked.json()["job_id"], timeout=600)
        assert parent["state"] == "succeeded", parent
        children = [
            j
            for j in client.get("/v1/jobs", params={"limit": 100}).json()["items"]
            if j.get("parent_id") == parent["job_id"]
        ]
        assert sorted(j["kind"] for j in children) == ["prove_segment", "prove_segment"]
        assert overlapped(children), children  # proven at the same time, on both workers
        assert len({j["worker"] for j in children}) == 2

        proof = client.get(f"/v1/proofs/{asked.json()['proof_id']}").json()
        assert [s["index"] for s in proof["segments"]] == [0, 1]
        assert proof["proof"] is None and all(s["worker"] for s in proof["segments"])
        reference = FloatReference(model, [TensorSpec("input", (1, 4), "float32")])
        expected = reference.run([np.asarray(INPUT[0])])[0]
        assert np.allclose(
            np.asarray(proof["outputs"][0]).reshape(-1), expected.reshape(-1), atol=0.05
        )

        verdict = client.post(f"/v1/proofs/{proof['proof_id']}/verify").json()
        assert verdict["valid"] is True, verdict
        whole = client.get(f"/v1/proofs/{proof['proof_id']}/ezkl")
        assert whole.status_code == 422 and "segment" in whole.json()["error"]["message"]
        one = client.get(f"/v1/proofs/{proof['proof_id']}/ezkl", params={"segment": 1})
        assert one.status_code == 200 and "proof" in one.json()

        # On chain: the segment verifiers deployed and registered with their links, then
        # the composite result accepted in one transaction, once.
        deployed = client.post(f"/v1/circuits/{circuit_id}/deployments")
        assert deployed.status_code == 202, deployed.text
        deployment = wait_job(client, deployed.json()["job_id"])
        assert deployment["state"] == "succeeded", deployment
        assert len(deployment["result"]["verifiers"]) == 2
        submitted = client.post(f"/v1/proofs/{proof['proof_id']}/submissions")
        result = wait_job(client, submitted.json()["job_id"])
        assert result["state"] == "succeeded" and result["result"]["accepted"], result
        assert result["result"]["gas_used"] > 0
        again = wait_job(
            client, client.post(f"/v1/proofs/{proof['proof_id']}/submissions").json()["job_id"]
        )
        assert not again["result"]["accepted"] and "AlreadyAccepted" in again["result"]["reason"]
        reveal = client.post(
            f"/v1/proofs/{proof['proof_id']}/submissions", json={"commit_reveal": True}
        )
        assert reveal.status_code == 422 and "segments" in reveal.json()["error"]["message"]


def test_a_dynamic_axis_export_is_split_and_proven(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A torch export with a batch axis named "N" (x * sigmoid(x), a residual block, a
    flatten by shape arithmetic): cut, compiled in two segments, proven and verified
    through HTTP; a split that saves nothing says so in the reply."""
    model = make_dynamic_cnn(tmp_path_factory.mktemp("dynamic") / "cnn.onnx", dim="N")
    image = np.random.default_rng(2).standard_normal(16).round(3)
    key = service.key("dynamic")
    with service.connect(key) as api:
        accepted = compile_model(api, model, {"input_data": [image.tolist() * 4]}, segments=2)
    assert "saves nothing" in accepted["note"]  # 2^12 rows either way
    circuit_id = accepted["circuit_id"]
    with service.client(key) as client:
        record = client.get(f"/v1/circuits/{circuit_id}").json()["record"]
        assert record["type"] == "segmented" and len(record["segments"]) == 2
        assert record["inputs"] == [{"name": "image", "shape": [1, 1, 4, 4], "dtype": "float32"}]
        asked = client.post(f"/v1/circuits/{circuit_id}/proofs", json={"input": [image.tolist()]})
        assert asked.status_code == 202, asked.text
        assert wait_job(client, asked.json()["job_id"], timeout=600)["state"] == "succeeded"
        proof = client.get(f"/v1/proofs/{asked.json()['proof_id']}").json()
        reference = FloatReference(model, [TensorSpec("image", (1, 1, 4, 4), "float32")])
        expected = reference.run([image])[0].reshape(-1)
        assert np.allclose(np.asarray(proof["outputs"][0]).reshape(-1), expected, atol=0.05)
        verdict = client.post(f"/v1/proofs/{proof['proof_id']}/verify").json()
        assert verdict["valid"] is True, verdict
