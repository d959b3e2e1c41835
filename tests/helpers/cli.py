"""The CLI as scripts use it: a ``python -m prover`` subprocess, one JSON object on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVER_DATA_DIR": str(data_dir), "PROVER_MEASURE_TOP": "1"}
    return subprocess.run(
        [sys.executable, "-m", "prover", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def one_json(result: subprocess.CompletedProcess[str]) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be exactly one JSON object, got: {result.stdout!r}"
    return json.loads(lines[0])
