"""The API enqueues without loading the prover's heavy libraries (docs/architecture.md:
the API starts fast). Each check imports in a fresh interpreter: this one has them all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("ezkl", "onnx", "onnxruntime", "torch")
# What the proof and compile submissions, the job kinds and the queue import.
ENQUEUING = (
    "prover.service.accepting",
    "prover.service.compiles",
    "prover.service.proof_requests",
    "prover.service.chain_jobs",
    "prover.service.kinds",
    "prover.service.runners",
    "prover.worker.app",
    "prover.circuits.progress",
    "prover.proving.plans",
    "prover.service.queries",
    "prover.service.batching",
    "prover.service.estimates",
    "prover.service.training",
    "prover.service.federated",
)


def heavy_after(code: str) -> list[str]:
    """The heavy modules loaded once ``code`` has run in a fresh interpreter."""
    report = f"print(json.dumps(sorted(set(sys.modules) & {set(HEAVY)!r})))"
    probe = f"{code}\nimport json, sys\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", ENQUEUING)
def test_enqueuing_modules_load_no_prover_library(module: str) -> None:
    assert heavy_after(f"import {module}") == []


def test_api_app_loads_no_prover_library(tmp_path: Path) -> None:
    code = (
        "from prover.api.app import create_app\n"
        "from prover.config import Settings\n"
        f"create_app(Settings(data_dir={str(tmp_path)!r}))"
    )
    assert heavy_after(code) == []
