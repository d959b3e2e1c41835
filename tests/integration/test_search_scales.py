"""The search widens its scales before it refuses for accuracy: a mean over many values
loses too much at scales up to 13 (the 1/n factor is quantized), and compiles at 16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace
from prover.config import Settings
from prover.errors import CircuitError
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow

N = 1000


def reduce_mean(path: Path) -> Path:
    """y = mean(x) over N values, as one ONNX ReduceMean."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)
    model = helper.make_model(
        helper.make_graph([node], "mean", [x], [y]), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.save(model, path)
    return path


def calibration() -> dict:
    """Two samples around 5: the mean is far from 0, so a coarse 1/N shows."""
    values = 5 + np.random.default_rng(0).standard_normal(2 * N)
    return {"input_data": [[float(v) for v in values]]}


def test_widens_to_a_larger_scale(tmp_path: Path) -> None:
    model = reduce_mean(tmp_path / "mean.onnx")
    settings = Settings(data_dir=tmp_path / "data", measure_top=1)
    store = ArtifactStore(settings.data_dir)

    pinned = CompileOptions(space=SearchSpace(scales=(13,)))  # a pinned scale: no widening
    with pytest.raises(CircuitError, match="at scales 13: the best") as refused:
        compile_model(model, calibration(), pinned, store, settings)
    assert refused.value.details["best_relative_error"] > 0.01

    circuit = compile_model(model, calibration(), CompileOptions(), store, settings)
    assert circuit["settings"]["input_scale"] == 16  # the first wider scale that is accurate
    assert circuit["accuracy"]["relative_error"] <= 0.01
    scales = {t["name"].split("-")[0] for t in circuit["search"]["trials"]}
    assert {"s7", "s10", "s13", "s16"} <= scales and "s19" not in scales


def test_refusal_names_every_scale_tried(tmp_path: Path) -> None:
    model = reduce_mean(tmp_path / "mean.onnx")
    settings = Settings(data_dir=tmp_path / "data", measure_top=1)
    strict = CompileOptions(tolerance=1e-6)
    with pytest.raises(CircuitError, match=r"at scales 7, 10, 13, 16, 19: the best, s19") as e:
        compile_model(model, calibration(), strict, ArtifactStore(settings.data_dir), settings)
    assert e.value.details["scales"] == [7, 10, 13, 16, 19]
    assert 0 < e.value.details["best_relative_error"] < 0.01
