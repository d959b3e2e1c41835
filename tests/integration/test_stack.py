"""`prover up` supervises its parts: one that dies is started again while the others keep
serving, and only SIGTERM stops the stack, with everything it started."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.files import write_json
from helpers.models import calibration_data, make_mlp
from helpers.stack import Up, running_up, wait_job
from prover.client import Client
from prover.service.keys import create_key
from prover.stack import chain_answers, redis_answers, wait_until

pytestmark = pytest.mark.slow


# Leases, requeues and backoff in seconds: a killed worker's job comes back quickly.
FAST = {
    "PROVER_WORKERS": "2",
    "PROVER_JOB_LEASE_S": "2",
    # A message held by a killed worker before it claimed the job is sent again after
    # seconds, not minutes.
    "PROVER_REQUEUE_AFTER_S": "3",
    "PROVER_TRANSIENT_BACKOFF_MAX_S": "4",
}


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with running_up(tmp_path, [], dict(FAST), 180) as stack:
        yield stack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_killed_worker_is_restarted_and_sigterm_stops_everything(up: Up, tmp_path: Path) -> None:
    key = create_key(f"sqlite:///{up.data / 'prover.db'}", "stack")["key"]
    model = make_mlp(tmp_path / "mlp.onnx")
    with Client(up.api, key) as api:
        compiling = api.submit_model(model, write_json(tmp_path / "cal.json", calibration_data()))
    with up.client(key) as client:
        first = up.pids()
        os.killpg(first["worker1"], signal.SIGKILL)  # the worker and its pool
        for _ in range(10):  # the API answers all along
            assert up.health()["database"] == "ok"
            time.sleep(0.2)
        wait_until(lambda: up.pids()["worker1"] != first["worker1"], 30, "worker1 restarted")
        assert "worker1 exited" in up.log() and "restarted worker1" in up.log()
        assert up.pids()["api"] == first["api"] and up.pids()["worker2"] == first["worker2"]

        circuit_id = compiling["circuit_id"]
        assert wait_job(client, compiling["job_id"], 300)["state"] == "succeeded"
        proofs = [
            client.post(f"/v1/circuits/{circuit_id}/proofs", json={"input": [[i, 1, 2, 3]]})
            for i in range(4)
        ]
        os.killpg(up.pids()["worker2"], signal.SIGKILL)  # with proofs in flight
        finals = [wait_job(client, p.json()["job_id"], 300) for p in proofs]
        assert [job["state"] for job in finals] == ["succeeded"] * 4, finals
        assert up.health()["status"] == "ok"

    last = up.pids()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=90) == 0
    assert not [name for name, pid in last.items() if _alive(pid)], up.log()
    assert not redis_answers(up.redis_url) and not chain_answers(up.rpc_url)
    stopped = [line.split()[-1] for line in up.log().splitlines() if line.startswith("stopped")]
    assert stopped == ["api", "webhooks", "worker2", "worker1", "chain", "redis"]
    assert not (up.data / "stack.json").exists()
