"""Model intake: every bad model is refused with an error that names the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from prover.circuits.intake import load_model
from prover.config import Settings
from prover.errors import InvalidModelError, ModelTooLargeError, UnsupportedOperatorError


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def _graph_model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_accepts_mlp_and_reports_shapes(mlp_path: Path, settings: Settings) -> None:
    info = load_model(mlp_path, settings)
    assert info.inputs[0].shape == (1, 4)
    assert info.outputs[0].shape == (1, 2)
    assert info.parameter_count == 4 * 8 + 8 + 8 * 2 + 2
    assert "Gemm" in info.operators
    assert len(info.model_id) == 64


def test_corrupt_file_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage that is not protobuf \xff\xfe")
    with pytest.raises(InvalidModelError, match="not a valid ONNX file"):
        load_model(path, settings)


def test_missing_file(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InvalidModelError, match="does not exist"):
        load_model(tmp_path / "nope.onnx", settings)


def test_checker_failure_is_refused(tmp_path: Path, settings: Settings) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Relu", ["undefined_tensor"], ["y"])
    model = _graph_model([node], [x], [y])
    with pytest.raises(InvalidModelError, match="ONNX checker"):
        load_model(_save(model, tmp_path / "m.onnx"), settings)


def test_unsupported_operator_is_named(tmp_path: Path, settings: Settings) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu0"),
        helper.make_node("Mod", ["r", "two"], ["y"], name="remainder", fmod=1),
    ]
    model = _graph_model(nodes, [x], [y], [two])
    with pytest.raises(UnsupportedOperatorError) as info:
        load_model(_save(model, tmp_path / "m.onnx"), settings)
    assert "Mod" in info.value.message
    assert info.value.details["nodes"] == {"Mod": ["remainder"]}


def test_unsupported_form_and_custom_domain(tmp_path: Path, settings: Settings) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 6, 6])
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")
    model = _graph_model([node], [x], [y], [pads])
    with pytest.raises(UnsupportedOperatorError, match="Pad in 'reflect' mode"):
        load_model(_save(model, tmp_path / "pad.onnx"), settings)


def test_too_many_parameters(mlp_path: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_parameters=10)
    with pytest.raises(ModelTooLargeError, match="58 parameters; the limit is 10"):
        load_model(mlp_path, settings)


def test_file_too_large(mlp_path: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_model_bytes=100)
    with pytest.raises(ModelTooLargeError, match="PROVER_MAX_MODEL_BYTES"):
        load_model(mlp_path, settings)


def test_symbolic_batch_is_fixed_other_symbolic_dims_refused(
    tmp_path: Path, settings: Settings
) -> None:
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    batch_only = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"])], [batch_only], [y])
    info = load_model(_save(model, tmp_path / "batch.onnx"), settings)
    assert info.variables == [("batch", 1)]
    assert info.inputs[0].shape == (1, 4)

    seq = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq"])
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"])], [seq], [y])
    with pytest.raises(InvalidModelError, match="unknown size on axis 1"):
        load_model(_save(model, tmp_path / "seq.onnx"), settings)


def test_model_that_fails_in_onnxruntime(tmp_path: Path, settings: Settings) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], np.array([3, 3]))
    model = _graph_model([helper.make_node("Reshape", ["x", "shape"], ["y"])], [x], [y], [shape])
    with pytest.raises(InvalidModelError, match="does not run in onnxruntime"):
        load_model(_save(model, tmp_path / "reshape.onnx"), settings)
