"""Hostile models: refused before anything allocates what they ask for, and a child that
hits its limit is a ``resource_limit`` error, not a dead process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from prover.circuits.intake import load_model
from prover.circuits.sandbox import Limits, run_limited
from prover.config import Settings
from prover.errors import ModelTooLargeError, ResourceLimitError

LIMITS = Limits("test", 512 * 2**20, 3, "PROVER_TEST_MEMORY", "PROVER_TEST_TIME")


def _save(nodes, inputs, outputs, initializers, path: Path) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def expand_bomb(path: Path, values: int) -> Path:
    """One scalar broadcast to ``values`` values: about 130 bytes of file."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, values])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, values])
    node = helper.make_node("Expand", ["x", "shape"], ["y"], name="boom")
    return _save([node], [x], [y], [shape], path)


def constant_of_shape_bomb(path: Path) -> Path:
    """10^8 zeros made from a shape constant, summed back to the input's size."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [10_000, 10_000])
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"], name="zeros"),
        helper.make_node("ReduceSum", ["zeros"], ["total"], keepdims=0),
        helper.make_node("Add", ["x", "total"], ["y"]),
    ]
    return _save(nodes, [x], [y], [shape], path)


@pytest.mark.parametrize("values", [10**7, 10**9])
def test_expand_bomb_is_refused_naming_node(values: int, tmp_path: Path) -> None:
    path = expand_bomb(tmp_path / "bomb.onnx", values)
    assert path.stat().st_size < 200
    started = time.perf_counter()
    with pytest.raises(ModelTooLargeError) as info:
        load_model(path, Settings(data_dir=tmp_path))
    assert time.perf_counter() - started < 10
    assert "boom (Expand)" in info.value.message and str(values) in info.value.message
    assert info.value.details["node"] == "boom (Expand)"
    assert info.value.status == 413


def test_constant_of_shape_bomb_is_refused(tmp_path: Path) -> None:
    path = constant_of_shape_bomb(tmp_path / "zeros.onnx")
    with pytest.raises(ModelTooLargeError, match=r"zeros \(ConstantOfShape\).*100000000"):
        load_model(path, Settings(data_dir=tmp_path))


def test_shape_from_runtime_values_cannot_be_bounded(tmp_path: Path) -> None:
    """An Expand whose shape is computed from the input's values has no static bound."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    nodes = [
        helper.make_node("Cast", ["x"], ["shape"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["shape", "flat"], ["dims"]),
        helper.make_node("Expand", ["x", "dims"], ["y"], name="grow"),
    ]
    flat = helper.make_tensor("flat", TensorProto.INT64, [1], [2])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[flat])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelTooLargeError, match=r"grow \(Expand\) cannot be bounded"):
        load_model(path, Settings(data_dir=tmp_path))


def test_limits_are_settings(tmp_path: Path, mlp_path: Path) -> None:
    """The bundled-size MLP passes the defaults; a lower limit names the largest node."""
    info = load_model(mlp_path, Settings(data_dir=tmp_path))
    assert info.sizes["largest_tensor"] == 8 and info.unchecked is None
    with pytest.raises(ModelTooLargeError, match="PROVER_MAX_TENSOR_ELEMENTS"):
        load_model(mlp_path, Settings(data_dir=tmp_path, max_tensor_elements=4))
    with pytest.raises(ModelTooLargeError, match="PROVER_MAX_CIRCUIT_CELLS"):
        load_model(mlp_path, Settings(data_dir=tmp_path, max_circuit_cells=10))


def wide_layer(path: Path) -> Path:
    """One 1000 x 1500 MatMul: 6 MB of weights, which intake must read, check and run."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1000])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1500])
    rng = np.random.default_rng(0)
    weights = helper.make_tensor(
        "w", TensorProto.FLOAT, [1000, 1500], rng.standard_normal(1_500_000).astype(np.float32)
    )
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="wide")
    return _save([node], [x], [y], [weights], path)


def test_intake_memory_limit_is_a_resource_error(tmp_path: Path) -> None:
    """A child whose limit is below what it already maps cannot grow at all: reading the
    model's 6 MB of weights fails, and the request is refused with ``resource_limit``
    naming the setting, while this process carries on."""
    model = wide_layer(tmp_path / "wide.onnx")
    settings = Settings(data_dir=tmp_path, intake_memory_bytes=64 * 2**20)
    with pytest.raises(ResourceLimitError, match="PROVER_INTAKE_MEMORY_BYTES") as info:
        load_model(model, settings)
    assert info.value.code == "resource_limit" and 400 <= info.value.status < 500
    assert load_model(model, Settings(data_dir=tmp_path)).inputs[0].shape == (1, 1000)


def test_sandbox_memory_time_and_abort() -> None:
    with pytest.raises(ResourceLimitError, match=r"memory limit of 0\.50 GiB"):
        run_limited(np.ones, (10**9,), limits=LIMITS)
    with pytest.raises(ResourceLimitError, match=r"died of SIGABRT"):
        run_limited(os.abort, limits=LIMITS)
    started = time.perf_counter()
    with pytest.raises(ResourceLimitError, match=r"time limit of 3 s \(PROVER_TEST_TIME"):
        run_limited(time.sleep, 30, limits=LIMITS)
    assert time.perf_counter() - started < 10


def test_sandbox_returns_results_and_errors_fast() -> None:
    assert run_limited(sum, [1, 2, 3], limits=LIMITS) == 6
    started = time.perf_counter()
    for _ in range(5):
        assert run_limited(max, [4, 2], limits=LIMITS) == 4
    assert (time.perf_counter() - started) / 5 < 0.5
    with pytest.raises(ValueError, match="invalid literal"):
        run_limited(int, "x", limits=LIMITS)
