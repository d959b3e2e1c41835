"""The CLI as scripts use it: one JSON object on stdout per command, errors included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import calibration_data, write_json


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


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["compile", "{bad}", "--json"], "invalid_model"),
        (["prove", "0123456789abcdef", "--input", "{input}", "--json"], "not_found"),
        (["verify", "feedfacefeedface", "--json"], "not_found"),
        (["compile", "{model}", "--input-visibility", "secret", "--json"], "invalid_input"),
        (["compile", "{model}", "--strategy", "fastest", "--json"], "invalid_input"),
        (["compile", "{model}", "--lookup-margin", "0.5", "--json"], "invalid_input"),
        (["compile", "{model}", "--calibration", "{cal}", "--json"], "invalid_input"),
    ],
)
def test_errors_are_one_json_object(
    args: list[str], code: str, mlp_path: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    inp = write_json(tmp_path / "in.json", [1, 2, 3, 4])
    cal = write_json(tmp_path / "cal.json", [1, 2, 3, 4, 5])
    args = [a.format(bad=bad, input=inp, model=mlp_path, cal=cal) for a in args]
    result = run_cli(tmp_path / "data", *args)
    assert result.returncode == 1
    assert one_json(result)["error"]["code"] == code


def test_unexpected_failure_is_still_one_json_object(tmp_path: Path) -> None:
    data = tmp_path / "data"
    entry = data / "circuits" / ("ab" * 32)
    entry.mkdir(parents=True)
    (entry / "record.json").write_text("{not json")
    result = run_cli(data, "circuits", "show", "ab" * 32, "--json")
    assert result.returncode == 2
    assert one_json(result)["error"]["code"] == "internal_error"
    assert "Traceback" in result.stderr or "JSONDecodeError" in result.stderr
