"""`prover up --store s3`: the stack starts its own SeaweedFS, and a model compiled and
proven through HTTP lands in its bucket."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from helpers.files import write_json
from helpers.models import calibration_data, make_mlp
from helpers.stack import Up, running_up, wait_job
from prover.client import Client
from prover.service.keys import create_key
from prover.stack import weed_binary

pytestmark = pytest.mark.slow


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is missing (scripts/setup.sh installs it)")
    # `up` sets its own store: none inherited.
    env = {"PROVER_WORKERS": "1", "PROVER_STORE_URL": None, "AWS_ENDPOINT_URL": None}
    with running_up(tmp_path, ["--store", "s3"], env, 240) as stack:
        yield stack


def test_up_with_s3_store_puts_artifacts_in_its_seaweedfs(up: Up, tmp_path: Path) -> None:
    ports = json.loads((up.data / "seaweedfs" / "ports.json").read_text())
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    assert f"store    s3://prover/artifacts (SeaweedFS at {endpoint}" in up.log()

    key = create_key(f"sqlite:///{up.data / 'prover.db'}", "stack")["key"]
    model = make_mlp(tmp_path / "mlp.onnx")
    with Client(up.api, key) as api:
        compiling = api.submit_model(model, write_json(tmp_path / "cal.json", calibration_data()))
    circuit_id = compiling["circuit_id"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=up.api, headers=headers, timeout=60) as client:
        assert wait_job(client, compiling["job_id"], 600)["state"] == "succeeded"
        proving = client.post(f"/v1/circuits/{circuit_id}/proofs", json={"input": [[0, 1, 2, 3]]})
        assert proving.status_code < 300, proving.text
        assert wait_job(client, proving.json()["job_id"], 600)["state"] == "succeeded"

    # Other credentials than the stack's: a SeaweedFS without an identity config takes any.
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="someone-else",
        aws_secret_access_key="anything",
        region_name="us-east-1",
    )
    listed = s3.list_objects_v2(Bucket="prover", Prefix="artifacts/circuits/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert f"artifacts/circuits/{circuit_id}/record.json" in keys, keys
    proofs = s3.list_objects_v2(Bucket="prover", Prefix="artifacts/proofs/")
    assert any(k["Key"].endswith("/record.json") for k in proofs.get("Contents", [])), proofs

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=90) == 0
    stopped = [line.split()[-1] for line in up.log().splitlines() if line.startswith("stopped")]
    assert stopped == ["api", "webhooks", "worker1", "store", "chain", "redis"]
