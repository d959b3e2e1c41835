"""`prover up --store s3`: the stack starts its own SeaweedFS, and a model compiled and
proven through HTTP lands in its bucket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from helpers.files import write_json
from helpers.models import calibration_data, make_mlp
from helpers.stack import wait_job
from prover.chain.node import free_port
from prover.client import Client
from prover.service.keys import create_key
from prover.stack import wait_until, weed_binary

pytestmark = pytest.mark.slow


class UpS3:
    """`prover up --store s3` as a subprocess on private ports, data dir and Redis."""

    def __init__(self, data: Path) -> None:
        self.data = data
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PROVER_DATA_DIR": str(data),
            "PROVER_DATABASE_URL": f"sqlite:///{data / 'prover.db'}",
            "PROVER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "PROVER_RPC_URL": f"http://127.0.0.1:{free_port()}",
            "PROVER_API_PORT": str(port),
            "PROVER_WORKERS": "1",
            "PROVER_MEASURE_TOP": "1",
        }
        for name in ("PROVER_STORE_URL", "AWS_ENDPOINT_URL"):  # `up` sets its own
            env.pop(name, None)
        self.out = open(data / "up.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prover", "up", "--store", "s3"],
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return (self.data / "up.log").read_text(errors="replace")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpS3]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is missing (scripts/setup.sh installs it)")
    stack = UpS3(tmp_path)
    try:
        wait_until(lambda: "ready" in stack.log(), 240, f"`prover up --store s3`: {stack.log()}")
        yield stack
    finally:
        if stack.process.poll() is None:
            os.killpg(stack.process.pid, signal.SIGKILL)  # its parts die with it
            stack.process.wait()
        stack.out.close()


def test_up_with_s3_store_puts_artifacts_in_its_seaweedfs(up: UpS3, tmp_path: Path) -> None:
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
    assert stopped == ["api", "worker1", "store", "chain", "redis"]
