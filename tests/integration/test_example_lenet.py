"""The shipped digits LeNet example (models/digits_lenet) is what its README claims: its
unsplit circuit needs 2^19 rows or more by ezkl's own count, every layer boundary is a cut
point, and its float accuracy is the one metrics.json records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ezkl
import numpy as np
import onnxruntime as ort
import pytest

from helpers.models import fixed_graph
from prover.circuits.cuts import cut_candidates

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "models" / "digits_lenet"


def test_unsplit_circuit_needs_at_least_2_19_rows(tmp_path: Path) -> None:
    args = ezkl.PyRunArgs()
    args.variables = [("batch_size", 1)]  # type: ignore[attr-defined]
    ezkl.gen_settings(str(EXAMPLE / "model.onnx"), str(tmp_path / "s.json"), py_run_args=args)
    rows = json.loads((tmp_path / "s.json").read_text())["num_rows"]
    assert rows >= 2**19
    # One cut after each convolution and each ReLU: segments of one layer or less.
    assert len(cut_candidates(fixed_graph(EXAMPLE / "model.onnx"))) >= 14


def test_float_accuracy_matches_metrics() -> None:
    sys.path.insert(0, str(EXAMPLE.parent))
    from digits import digits_split

    _, x_test, _, y_test = digits_split()
    session = ort.InferenceSession(str(EXAMPLE / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    pred = [int(np.argmax(session.run(None, {name: x.reshape(1, 1, 8, 8)})[0])) for x in x_test]
    accuracy = float(np.mean(np.asarray(pred) == y_test))
    metrics = json.loads((EXAMPLE / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["float_test_accuracy"], abs=1e-4)
    assert accuracy >= 0.95 and metrics["test_samples"] == len(y_test)
