"""Batch models (axis and copies layouts), batch inputs, splitting outputs, result keys.

The models are built with onnx.helper and run in onnxruntime: no proofs here (those are in
tests/integration/test_batch_chain.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from web3 import Web3

from prover.chain.batches import batch_key, result_key
from prover.circuits.batch import batch_model
from prover.circuits.layouts import (
    BatchLayout,
    batch_calibration,
    batch_input,
    check_layout,
    read_layout,
    split_outputs,
)
from prover.errors import InvalidInputError, InvalidModelError

RNG = np.random.default_rng(3)
W = RNG.standard_normal((4, 3)).astype(np.float32)


def _model(path: Path, batch_dim: int | str, fixed_reshape: bool) -> Path:
    """x[B,4] @ W + 1, ReLU. With ``fixed_reshape`` the graph reshapes x to [1, 4] first,
    so it cannot run a batch along its leading axis."""
    nodes = []
    source = "x"
    if fixed_reshape:
        nodes.append(helper.make_node("Reshape", ["x", "shape"], ["flat"]))
        source = "flat"
    nodes += [
        helper.make_node("MatMul", [source, "W"], ["h"]),
        helper.make_node("Add", ["h", "one"], ["z"]),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(W, "W"),
        numpy_helper.from_array(np.ones(3, np.float32), "one"),
        numpy_helper.from_array(np.array([1, 4], np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _single(x: list[float]) -> np.ndarray:
    return np.maximum(np.asarray([x], np.float32) @ W + 1, 0)


ITEMS = [[0.1, -0.2, 0.3, 0.4], [1.0, 0.5, -1.0, 2.0], [-0.3, 0.0, 0.7, -1.1]]


def _run(path: Path, data: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    shapes = [i.shape for i in session.get_inputs()]
    feed = {
        n: np.asarray(v, np.float32).reshape(s)
        for n, v, s in zip(names, data["input_data"], shapes, strict=True)
    }
    return session.run(None, feed)


@pytest.mark.parametrize("batch_dim", [1, "batch"])
def test_batch_axis_for_a_batch_polymorphic_graph(tmp_path: Path, batch_dim: int | str) -> None:
    path = batch_model(_model(tmp_path / "m.onnx", batch_dim, False), 3, tmp_path / "b.onnx")
    layout = read_layout(path)
    assert layout is not None and (layout.mode, layout.n) == ("axis", 3)
    assert [t.shape for t in layout.inputs] == [(1, 4)]
    outputs = _run(path, batch_input(layout, ITEMS))
    assert outputs[0].shape == (3, 3)
    results = split_outputs(layout, outputs)
    for item, result in zip(ITEMS, results, strict=True):
        assert np.allclose(result[0], _single(item), atol=1e-6)


def test_copies_for_a_graph_fixed_to_one_item(tmp_path: Path) -> None:
    path = batch_model(_model(tmp_path / "m.onnx", 1, True), 3, tmp_path / "b.onnx")
    layout = read_layout(path)
    assert layout is not None and (layout.mode, layout.n) == ("copies", 3)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input if i.name not in {"W", "one", "shape"}] == [
        "b0_x",
        "b1_x",
        "b2_x",
    ]
    assert len(model.graph.initializer) == 3  # the weights are shared, not copied
    outputs = _run(path, batch_input(layout, ITEMS))
    assert len(outputs) == 3
    for item, result in zip(ITEMS, split_outputs(layout, outputs), strict=True):
        assert np.allclose(result[0], _single(item), atol=1e-6)


def test_copies_asked_for_a_batch_polymorphic_graph(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx", "batch", False)
    layout = read_layout(batch_model(model, 2, tmp_path / "b.onnx", mode="copies"))
    assert layout is not None and layout.mode == "copies"
    with pytest.raises(InvalidModelError, match="does not run batched"):
        batch_model(_model(tmp_path / "f.onnx", 1, True), 2, tmp_path / "c.onnx", mode="axis")


def test_calibration_groups_samples_into_batches(tmp_path: Path) -> None:
    flat = [v for item in ITEMS for v in item]
    for fixed, mode in ((False, "axis"), (True, "copies")):
        path = batch_model(
            _model(tmp_path / f"{mode}.onnx", 1, fixed), 2, tmp_path / f"b{mode}.onnx"
        )
        layout = read_layout(path)
        assert layout is not None and layout.mode == mode
        data = batch_calibration(layout, {"input_data": [flat]})
        # 3 samples make 2 batches of 2, the last completed with the first sample.
        if mode == "axis":
            assert data["input_data"] == [flat + ITEMS[0]]
        else:
            assert data["input_data"] == [ITEMS[0] + ITEMS[2], ITEMS[1] + ITEMS[0]]


def test_refusals(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx", 1, False)
    with pytest.raises(InvalidInputError, match="between 1 and 1024"):
        batch_model(model, 0, tmp_path / "b.onnx")
    batched = batch_model(model, 2, tmp_path / "b.onnx")
    with pytest.raises(InvalidModelError, match="already a batch"):
        batch_model(batched, 2, tmp_path / "bb.onnx")
    layout = read_layout(batched)
    assert layout is not None and read_layout(model) is None
    with pytest.raises(InvalidInputError, match="needs 2 inputs"):
        batch_input(layout, ITEMS)
    with pytest.raises(InvalidInputError, match="expects 4 values"):
        batch_input(layout, [[1.0, 2.0], [1.0, 2.0]])


def test_layout_must_match_the_circuit() -> None:
    layout = BatchLayout.from_json(
        '{"n": 2, "mode": "copies", "inputs": [{"name": "x", "shape": [1, 4], "dtype": '
        '"float32"}], "outputs": [{"name": "y", "shape": [1, 3], "dtype": "float32"}]}'
    )
    circuit = {
        "inputs": [{"shape": [1, 4]}, {"shape": [1, 4]}],
        "outputs": [{"shape": [1, 3]}, {"shape": [1, 3]}],
    }
    check_layout(layout, circuit)
    # A model whose metadata claims more results than the circuit holds items.
    inflated = BatchLayout(16, "copies", layout.inputs, layout.outputs)
    with pytest.raises(InvalidModelError, match="not a batch circuit"):
        check_layout(inflated, circuit)
    assert BatchLayout.from_json(layout.to_json()) == layout


def test_result_keys_are_the_contracts() -> None:
    """abi.encode(bytes32, uint256[]): the word, the offset of the array (64), its length
    and elements; abi.encode(bytes32, uint256) is the two words."""
    circuit = "ab" * 32
    key = batch_key(circuit, [1, 2])
    assert (
        key
        == "0x"
        + Web3.keccak(
            bytes.fromhex(circuit)
            + (64).to_bytes(32, "big")
            + (2).to_bytes(32, "big")
            + (1).to_bytes(32, "big")
            + (2).to_bytes(32, "big")
        ).hex()
    )
    keys = [result_key(key, i) for i in range(4)]
    assert len(set(keys)) == 4
    expected = Web3.solidity_keccak(["bytes32", "uint256"], [bytes.fromhex(key[2:]), 3])
    assert keys[3] == "0x" + expected.hex()


def _save(path: Path, nodes: list, inputs: list, outputs: list, inits: list) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _check_items(path: Path, single: Path, items: list[np.ndarray]) -> None:
    """The batch model's results, split, equal the single model's on each item."""
    layout = read_layout(path)
    assert layout is not None
    outputs = _run(path, batch_input(layout, [i.ravel().tolist() for i in items]))
    session = ort.InferenceSession(str(single))
    name = session.get_inputs()[0].name
    for item, result in zip(items, split_outputs(layout, outputs), strict=True):
        expected = session.run(None, {name: item})
        for want, got in zip(expected, result, strict=True):
            assert np.allclose(want.ravel(), np.asarray(got).ravel(), atol=1e-6)


@pytest.mark.parametrize("mode", ["auto", "copies"])
@pytest.mark.parametrize("declared", [["batch", "d1"], ["d0", "d1"]])
def test_output_shapes_left_symbolic_are_inferred(
    tmp_path: Path, mode: str, declared: list
) -> None:
    """Exporters leave a Reshape's output dims symbolic (ezkl's 1l_reshape, nanoGPT, tree
    ensembles' ArgMax): an item's output shape is still known."""
    single = _save(
        tmp_path / "m.onnx",
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, declared)],
        [numpy_helper.from_array(np.array([-1, 6], np.int64), "shape")],
    )
    path = batch_model(single, 2, tmp_path / "b.onnx", mode)
    layout = read_layout(path)
    assert layout is not None and [t.shape for t in layout.outputs] == [(1, 6)]
    items = [RNG.standard_normal((1, 1, 3, 2)).astype(np.float32) for _ in range(2)]
    _check_items(path, single, items)


def test_copies_of_unnamed_nodes_keep_node_names_unique(tmp_path: Path) -> None:
    """Exporters leave nodes unnamed (ezkl's fr_age): each copy's two Relu nodes must not
    both become ``b0_Relu``, which onnxruntime refuses to load."""
    single = _save(
        tmp_path / "m.onnx",
        [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [],
    )
    path = batch_model(single, 2, tmp_path / "b.onnx", "copies")
    items = [RNG.standard_normal((1, 4)).astype(np.float32) for _ in range(2)]
    _check_items(path, single, items)


def test_copies_keep_a_fixed_leading_dim(tmp_path: Path) -> None:
    """An input of 3 rows with no batch axis: each copy takes all 3 rows (the leading
    dim is only the batch where it is symbolic)."""
    single = _save(
        tmp_path / "m.onnx",
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])],
        [numpy_helper.from_array(W, "W")],
    )
    path = batch_model(single, 2, tmp_path / "b.onnx")
    layout = read_layout(path)
    assert layout is not None and layout.mode == "copies"
    items = [RNG.standard_normal((3, 4)).astype(np.float32) for _ in range(2)]
    _check_items(path, single, items)
