"""The CLI as scripts use it, end to end: compile, prove, verify and export, one JSON object
on stdout per command (the error cases that prove nothing are in unit/test_cli_errors.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import one_json, run_cli
from helpers.files import write_json
from helpers.models import calibration_data

pytestmark = pytest.mark.slow


def test_compile_prove_verify_export(mlp_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    cal = write_json(tmp_path / "cal.json", calibration_data())
    compiled = one_json(
        run_cli(data, "compile", str(mlp_path), "--calibration", str(cal), "--json")
    )
    assert {"circuit_id", "logrows", "settings", "dev_srs", "accuracy"} <= set(compiled)
    assert compiled["dev_srs"] is True

    inp = write_json(tmp_path / "in.json", [[0.1, 0.2, 0.3, 0.4]])
    proved = run_cli(data, "prove", compiled["circuit_id"][:12], "--input", str(inp), "--json")
    proof = one_json(proved)
    assert {"proof_id", "outputs", "timings"} <= set(proof)
    assert proved.returncode == 0

    verified = one_json(run_cli(data, "verify", proof["proof_id"], "--json"))
    assert verified["valid"] is True

    out = tmp_path / "exported.json"
    assert run_cli(data, "proof", "export", proof["proof_id"], "--out", str(out)).returncode == 0
    assert set(json.loads(out.read_text())) >= {"proof", "instances", "hex_proof"}
    by_file = run_cli(data, "verify", str(out), "--circuit", compiled["circuit_id"], "--json")
    assert one_json(by_file)["valid"] is True

    assert one_json(run_cli(data, "circuits", "show", compiled["circuit_id"], "--json"))["id"]
    listed = one_json(run_cli(data, "models", "list", "--json"))
    assert [m["id"] for m in listed["models"]] == [compiled["model_id"]]

    human = run_cli(data, "prove", compiled["circuit_id"], "--input", str(inp))
    assert "outputs" in human.stdout and "{" not in human.stdout.splitlines()[0]


def test_tampered_proof_file_exits_nonzero(mlp_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    compiled = one_json(run_cli(data, "compile", str(mlp_path), "--json"))
    inp = write_json(tmp_path / "in.json", {"input_data": [[1, 2, 3, 4]]})
    proof = one_json(run_cli(data, "prove", compiled["circuit_id"], "--input", str(inp), "--json"))
    out = tmp_path / "p.json"
    run_cli(data, "proof", "export", proof["proof_id"], "--out", str(out))
    doc = json.loads(out.read_text())
    doc["proof"][-1] ^= 0x01  # ezkl reads the byte list; hex_proof is only a rendering
    out.write_text(json.dumps(doc))
    result = run_cli(data, "verify", str(out), "--circuit", compiled["circuit_id"], "--json")
    assert result.returncode == 1 and one_json(result)["valid"] is False
