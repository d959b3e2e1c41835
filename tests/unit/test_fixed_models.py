"""Models exported the way users export them, as intake and cut finding see them: a
dynamic batch axis (any name, or none), shape arithmetic over fixed dims, constants made
by ConstantOfShape / Expand / Tile, Constant nodes instead of initializers. Their sizes
are known before running, so intake bounds them by value and cuts are found; sizes that
come from input values, and huge sizes computed from shapes, are still refused."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from helpers.models import fixed_graph, make_dynamic_cnn
from prover.circuits.cuts import cut_candidates
from prover.circuits.intake import load_model
from prover.circuits.shapes import fixed_model, measure
from prover.config import Settings
from prover.errors import ModelTooLargeError


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(
    ("dim", "fold"),
    [("N", True), ("batch", False), ("Sym0", True), ("batch size", True), ("N?", False)],
)
def test_dynamic_axis_export_is_fixed_and_cut(tmp_path: Path, dim: str, fold: bool) -> None:
    """A torch export with ``dynamic_axes`` and x.view(x.size(0), -1): the batch dim takes
    1 under its own name, and the cuts are those of the same graph with the batch fixed by
    hand (none were found before intake fixed it). A name ezkl cannot read as a symbol
    ("batch size") is given to ezkl fixed, in a copy; the model itself is kept as sent."""
    path = make_dynamic_cnn(tmp_path / "cnn.onnx", dim=dim, fold=fold)
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_param == dim
    info = load_model(path, Settings())
    assert info.variables == [(dim, 1)]
    assert (info.ezkl_path == path) == dim.isidentifier()
    assert info.inputs[0].shape == (1, 1, 4, 4) and info.outputs[0].shape == (1, 3)
    graph = info.fixed_graph()
    found = cut_candidates(graph)
    assert len(found) >= 3, found
    by_hand = onnx.load(path)
    by_hand.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    assert cut_candidates(fixed_model(by_hand, {})) == found
    assert not any(n.op_type == "Shape" for n in graph.graph.node)  # shape arithmetic folded


def test_fixed_graph_computes_what_the_model_does(tmp_path: Path) -> None:
    """Folding changes no value: the fixed graph's output equals the original's."""
    import onnxruntime as ort

    path = make_dynamic_cnn(tmp_path / "cnn.onnx", fold=False)
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32)
    original = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fixed = ort.InferenceSession(
        fixed_graph(path).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(
        fixed.run(None, {"image": x})[0], original.run(None, {"image": x})[0]
    )


def test_constant_made_shapes_are_bounded_by_value() -> None:
    """ezkl's large_mlp and ltsf: Expand to a ConstantOfShape of a constant, then Tile;
    sizes known before running, so intake measures them instead of refusing."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    nodes = [
        helper.make_node("Constant", [], ["rank"], value=helper.make_tensor("r", 7, [1], [2])),
        helper.make_node(
            "ConstantOfShape", ["rank"], ["ones"], value=helper.make_tensor("o", 7, [1], [1])
        ),
        helper.make_node("Expand", ["x", "ones"], ["wide"]),
        helper.make_node("Tile", ["wide", "reps"], ["y"], name="tile"),
    ]
    reps = helper.make_tensor("reps", TensorProto.INT64, [2], [4, 2])
    sizes = measure(_model(nodes, [x], [y], [reps]), {"batch_size": 1})
    assert sizes.unbounded_node is None
    assert sizes.largest == 24 and sizes.shapes["y"] == [4, 6]


def test_an_unnamed_batch_dim_is_the_batch(tmp_path: Path) -> None:
    """sklearn-onnx leaves the batch dim without a name or a value."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [0.1] * 6)
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=1),
        helper.make_node("MatMul", ["c", "w"], ["y"]),
    ]
    info = load_model(_save(_model(nodes, [x], [y], [w]), tmp_path / "sk.onnx"), Settings())
    assert info.variables == [("batch_size", 1)] and info.sizes["largest_tensor"] == 3


def test_a_bomb_behind_shape_arithmetic_is_refused_with_its_size(tmp_path: Path) -> None:
    """Shape(x) scaled by 10^5 and made into zeros: 10^10 values, computed from shapes
    only, so refused by its size, naming the node, before anything allocates it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    scale = helper.make_tensor("scale", TensorProto.INT64, [1], [100_000])
    nodes = [
        helper.make_node("Shape", ["x"], ["dims"]),
        helper.make_node("Mul", ["dims", "scale"], ["big"]),
        helper.make_node("ConstantOfShape", ["big"], ["zeros"], name="boom"),
        helper.make_node("ReduceSum", ["zeros"], ["total"], keepdims=0),
        helper.make_node("Add", ["x", "total"], ["y"]),
    ]
    path = _save(_model(nodes, [x], [y], [scale]), tmp_path / "bomb.onnx")
    started = time.perf_counter()
    with pytest.raises(ModelTooLargeError, match=r"boom \(ConstantOfShape\), 40000000000") as info:
        load_model(path, Settings())
    assert time.perf_counter() - started < 5 and info.value.status == 413


def test_a_shape_from_input_values_is_still_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    nodes = [
        helper.make_node("Cast", ["x"], ["asint"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["asint", "flat"], ["dims"]),
        helper.make_node("ConstantOfShape", ["dims"], ["y"], name="grow"),
    ]
    flat = helper.make_tensor("flat", TensorProto.INT64, [1], [2])
    path = _save(_model(nodes, [x], [y], [flat]), tmp_path / "dynamic.onnx")
    with pytest.raises(ModelTooLargeError, match=r"grow \(ConstantOfShape\) cannot be bounded"):
        load_model(path, Settings())


def test_a_dynamic_axis_export_is_planned_into_segments_that_fit(tmp_path: Path) -> None:
    """``--max-logrows`` / ``--fit-workers`` on a model whose batch axis is named "N" (ezkl's
    own name is batch_size): the segments are laid out by ezkl without an undetermined
    symbol, each within the bound, and a split that needs as many rows as the whole says
    so."""
    from prover.circuits.compiler import CompileOptions
    from prover.circuits.segments import SegmentedPlan, plan_any

    path = make_dynamic_cnn(tmp_path / "cnn.onnx", dim="N")
    settings = Settings(data_dir=tmp_path / "data")
    data = {"input_data": [np.linspace(-1, 1, 64).tolist()]}
    fitted = plan_any(path, data, CompileOptions(), settings, max_logrows=11)
    assert isinstance(fitted, SegmentedPlan) and len(fitted.cuts) >= 2
    assert max(fitted.estimated_logrows) <= 11 and fitted.note is None
    halves = plan_any(path, data, CompileOptions(), settings, segments=2)
    assert isinstance(halves, SegmentedPlan) and halves.note is not None
    assert "saves nothing" in halves.note and "2^12" in halves.note
