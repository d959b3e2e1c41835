"""The shipped example models compile, prove, and agree with onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.files import EXAMPLES, REPO
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.data import parse_sample
from prover.circuits.intake import FloatReference, load_model
from prover.circuits.tensors import TensorSpec
from prover.config import Settings
from prover.proving.proofs import prove_input, verify
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_model_proves(name: str, tmp_path: Path) -> None:
    directory = REPO / "models" / name
    settings = Settings(data_dir=tmp_path / "data", measure_top=1)
    store = ArtifactStore(settings.data_dir)
    calibration = json.loads((directory / "calibration.json").read_text())
    circuit = compile_model(
        directory / "model.onnx", calibration, CompileOptions(), store, settings
    )
    assert circuit["accuracy"]["relative_error"] <= circuit["tolerance"]
    assert circuit["accuracy"]["argmax_agreement"] == 1.0

    sample_input = json.loads((directory / "input.json").read_text())
    proof = prove_input(store, circuit["id"], sample_input)
    assert verify(store, proof["id"])["valid"] is True

    info = load_model(directory / "model.onnx", settings)
    sample = parse_sample(sample_input, info.inputs)
    (expected,) = FloatReference(info.path, info.inputs).run(sample)
    got = np.asarray(proof["outputs"][0])
    assert int(got.argmax()) == int(expected.argmax())
    spec = TensorSpec(**{**circuit["outputs"][0], "shape": tuple(circuit["outputs"][0]["shape"])})
    assert got.shape == spec.shape
