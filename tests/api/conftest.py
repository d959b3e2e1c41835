"""Fixtures of the in-process API tests: the app on a fresh SQLite database (migrations
applied), API keys, a tiny ONNX model, and a recording dispatcher in place of the queue.

No broker and no worker run here: the dispatcher dependency is overridden, so a submission
is recorded (job id, kind, queue) instead of enqueued, and jobs stay queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from sqlalchemy import func, select

from prover.api.app import create_app
from prover.api.deps import dispatcher
from prover.config import Settings
from prover.service.accepting import Accepted
from prover.service.db import session_scope
from prover.service.keys import create_key
from prover.service.kinds import job_kind
from prover.service.tables import Circuit
from prover.store import ArtifactStore

Enqueued = list[tuple[str, str, str]]  # (job id, kind, queue)


class RecordingDispatcher:
    """Records each job of an accepted submission with the queue its kind declares."""

    def __init__(self) -> None:
        self.enqueued: Enqueued = []

    def __call__(self, accepted: Accepted) -> dict[str, Any]:
        response, to_enqueue = accepted
        self.enqueued += [(job_id, kind, job_kind(kind).queue) for job_id, kind in to_enqueue]
        return response


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """A data dir and SQLite file of the test's own; Redis on a port nothing listens on,
    so that nothing reaches a real broker (waits fall back to polling)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'prover.db'}",
        redis_url="redis://127.0.0.1:1/0",
        measure_top=1,
    )


@pytest.fixture
def recorder() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def enqueued(recorder: RecordingDispatcher) -> Enqueued:
    """The jobs the API has dispatched so far, in order."""
    return recorder.enqueued


@pytest.fixture
def app(api_settings: Settings, recorder: RecordingDispatcher) -> FastAPI:
    app = create_app(api_settings)
    app.dependency_overrides[dispatcher] = lambda: recorder
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client without a key; entering it runs the app's start (the migrations)."""
    with TestClient(app) as client:
        yield client


def _keyed(app: FastAPI, settings: Settings, name: str) -> Iterator[TestClient]:
    """A client presenting a new key. It does not run the app's start again: ``client``
    did (and keeps the app started until the test ends)."""
    key = create_key(settings.sqlalchemy_url(), name)["key"]
    keyed = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    yield keyed
    keyed.close()


@pytest.fixture
def alice(client: TestClient, app: FastAPI, api_settings: Settings) -> Iterator[TestClient]:
    """A client with a key of its own (created after the migrations ran)."""
    yield from _keyed(app, api_settings, "alice")


@pytest.fixture
def bob(client: TestClient, app: FastAPI, api_settings: Settings) -> Iterator[TestClient]:
    """Another key: it must not see what alice's key made."""
    yield from _keyed(app, api_settings, "bob")


def tiny_model(path: Path, seed: int = 0) -> Path:
    """A 4-2 linear layer with a ReLU, written with ``onnx.helper`` (no torch needed)."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((4, 2)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node("Add", ["h", "B"], ["a"]),
            helper.make_node("Relu", ["a"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture
def model_bytes(tmp_path: Path) -> bytes:
    return tiny_model(tmp_path / "tiny.onnx").read_bytes()


Upload = Callable[..., httpx.Response]


@pytest.fixture
def upload(model_bytes: bytes) -> Upload:
    """``upload(client, **form)``: POST the tiny model to /v1/models with these form fields
    (``model=`` replaces the file's bytes, ``filename=`` its name)."""

    def post(
        client: TestClient, model: bytes = model_bytes, filename: str = "tiny.onnx", **form: str
    ) -> httpx.Response:
        files = {"model": (filename, model, "application/octet-stream")}
        return client.post("/v1/models", files=files, data=form)

    return post


@pytest.fixture
def count(api_settings: Settings) -> Callable[[type[Any]], int]:
    """``count(Table)``: the rows a table holds now."""

    def rows(table: type[Any]) -> int:
        with session_scope(api_settings.sqlalchemy_url()) as session:
            return session.scalar(select(func.count()).select_from(table)) or 0

    return rows


@pytest.fixture
def ready_circuit(alice: TestClient, upload: Upload, api_settings: Settings) -> str:
    """The tiny model's circuit, uploaded by alice and marked ready by hand (no worker runs
    here), with a circuit record enough to plan proofs against it (input shapes)."""
    accepted = upload(alice).json()
    store = ArtifactStore(api_settings.data_dir)
    model = store.read_record("models", accepted["model_id"])
    record = {
        "id": accepted["circuit_id"],
        "type": "circuit",
        "model_id": accepted["model_id"],
        "model_name": model["name"],
        "created_at": model["created_at"],
        "logrows": 10,
        "settings": {"input_scale": 7, "decomp_base": 16384, "decomp_legs": 2},
        "inputs": model["inputs"],
        "outputs": model["outputs"],
    }
    store.save_record("circuits", accepted["circuit_id"], record)
    with session_scope(api_settings.sqlalchemy_url()) as session:
        circuit = session.get(Circuit, accepted["circuit_id"])
        assert circuit is not None
        circuit.state = "ready"
    return accepted["circuit_id"]
