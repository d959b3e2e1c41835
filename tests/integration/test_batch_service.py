"""Batch circuits through the service: a model compiled as its batch-N variant, N inputs
proven in one proof, each item's result readable on its own, and all N accepted on chain
in one transaction; real Redis, workers, HTTP, ezkl and anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers.models import calibration_data, make_mlp
from helpers.stack import Service, compile_model, running_service, wait_job
from prover.circuits.intake import FloatReference
from prover.circuits.tensors import TensorSpec

pytestmark = pytest.mark.slow

ITEMS = [
    [[0.5, -1.0, 0.25, 1.5]],
    [[1.0, 0.0, -0.5, 0.3]],
    [[-1.2, 0.7, 0.1, 0.0]],
    [[0.0, 0.2, 0.9, -0.4]],
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("batch-service"), 1, chain=True) as svc:
        yield svc


def test_a_batch_of_four_is_one_proof_and_one_transaction(service: Service, tmp_path: Path) -> None:
    model = make_mlp(tmp_path / "mlp.onnx")
    form = {
        "batch_size": 4,
        "input_visibility": "hashed",
        "output_visibility": "hashed",
        "objective": "verify-gas",
    }
    key = service.key("batcher")
    with service.connect(key) as api:
        circuit_id = compile_model(api, model, calibration_data(), **form)["circuit_id"]
    with service.client(key) as client:
        asked = client.post(f"/v1/circuits/{circuit_id}/proofs", json={"items": ITEMS})
        assert asked.status_code == 202, asked.text
        assert wait_job(client, asked.json()["job_id"])["state"] == "succeeded"
        proof = client.get(f"/v1/proofs/{asked.json()['proof_id']}").json()
        assert [r["index"] for r in proof["results"]] == [0, 1, 2, 3]
        reference = FloatReference(model, [TensorSpec("input", (1, 4), "float32")])
        for item, result in zip(ITEMS, proof["results"], strict=True):
            expected = reference.run([np.asarray(item[0])])[0].reshape(-1)
            got = np.asarray(result["outputs"][0]).reshape(-1)
            assert np.allclose(got, expected, atol=0.05), (got, expected)
        assert len(proof["instances"][0]) == 8  # two hashes per item, whatever the values

        deployed = wait_job(
            client, client.post(f"/v1/circuits/{circuit_id}/deployments").json()["job_id"]
        )
        assert deployed["state"] == "succeeded" and deployed["result"]["batch_size"] == 4, deployed
        submitted = wait_job(
            client, client.post(f"/v1/proofs/{proof['proof_id']}/submissions").json()["job_id"]
        )
        result = submitted["result"]
        assert submitted["state"] == "succeeded" and result["accepted"], submitted
        assert [r["result_key"] for r in result["results"]] == [
            r["result_key"] for r in proof["results"]
        ]
        assert result["gas_per_result"] * 4 == pytest.approx(result["gas_used"], abs=4)
        replay = wait_job(
            client, client.post(f"/v1/proofs/{proof['proof_id']}/submissions").json()["job_id"]
        )
        assert not replay["result"]["accepted"] and "AlreadyAccepted" in replay["result"]["reason"]

        # Three items for a batch of four, or items for a circuit that is no batch: 422.
        short = client.post(f"/v1/circuits/{circuit_id}/proofs", json={"items": ITEMS[:3]})
        assert short.status_code == 422 and "4 inputs" in short.json()["error"]["message"]
        both = client.post(
            f"/v1/circuits/{circuit_id}/proofs", json={"items": ITEMS, "input": ITEMS[0]}
        )
        assert both.status_code == 422
