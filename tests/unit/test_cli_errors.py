"""The CLI's errors as scripts see them: one JSON object on stdout, and the exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cli import one_json, run_cli
from helpers.files import write_json


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
