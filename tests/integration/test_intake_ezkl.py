"""Intake asks ezkl: models the operator table or onnxruntime would refuse, which raw ezkl
23.0.5 compiles and proves, compile and prove here too; so does a torch export whose
dynamic axis has a name raw ezkl cannot read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from helpers.models import make_dynamic_cnn
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.intake import FloatReference, load_model
from prover.circuits.operators import unsupported_operators
from prover.circuits.search import SearchSpace
from prover.config import Settings
from prover.proving.proofs import prove_input, verify
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow
SMALL = SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,))
SAMPLE = {"input_data": [[0.5, -1.0, 2.0, 0.25]]}


def _save(nodes, initializers, path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def nonzero_model(path: Path) -> Path:
    """Picks x's columns where a constant mask is non-zero (NonZero, which the table lacks)."""
    mask = helper.make_tensor("mask", TensorProto.FLOAT, [4], [1.0, 0.0, 2.0, 3.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [0])
    nodes = [
        helper.make_node("NonZero", ["mask"], ["nz"], name="nonzero"),
        helper.make_node("Squeeze", ["nz", "axes"], ["idx"]),
        helper.make_node("Gather", ["x", "idx"], ["g"], axis=1),
        helper.make_node("Relu", ["g"], ["y"]),
    ]
    return _save(nodes, [mask, axes], path)


def int8_gather_model(path: Path) -> Path:
    """A Gather with int8 indices (as tree-ensemble exports make): onnxruntime refuses the
    type, ezkl's loader takes it."""
    idx = helper.make_tensor("idx", TensorProto.INT8, [3], [0, 2, 3])
    nodes = [
        helper.make_node("Gather", ["x", "idx"], ["g"], axis=1, name="pick"),
        helper.make_node("Relu", ["g"], ["y"]),
    ]
    return _save(nodes, [idx], path)


def test_nonzero_compiles_and_proves(
    tmp_path: Path, settings: Settings, store: ArtifactStore
) -> None:
    path = nonzero_model(tmp_path / "nonzero.onnx")
    assert "NonZero" in unsupported_operators(onnx.load(path))  # the table alone would refuse
    info = load_model(path, settings)
    assert info.unchecked is None and info.outputs[0].shape == (1, 3)
    circuit = compile_model(path, SAMPLE, CompileOptions(space=SMALL), store, settings)
    assert circuit["accuracy"]["status"] == "checked"
    proof = prove_input(store, circuit["id"], SAMPLE)
    assert np.allclose(np.asarray(proof["outputs"]).reshape(-1), [0.5, 2.0, 0.25], atol=0.01)
    assert verify(store, proof["id"])["valid"] is True


def test_model_onnxruntime_refuses_is_unchecked_but_proves(
    tmp_path: Path, settings: Settings, store: ArtifactStore
) -> None:
    path = int8_gather_model(tmp_path / "int8.onnx")
    info = load_model(path, settings)
    assert info.unchecked and "onnxruntime cannot load" in info.unchecked
    assert info.to_dict()["accuracy"] == "unchecked"
    assert info.outputs[0].shape == (1, 3)
    circuit = compile_model(path, SAMPLE, CompileOptions(space=SMALL), store, settings)
    assert circuit["accuracy"]["status"] == "unchecked"
    assert "onnxruntime" in circuit["accuracy"]["reason"]
    assert circuit["strategy"] == "ezkl-default"
    proof = prove_input(store, circuit["id"], SAMPLE)
    assert np.allclose(np.asarray(proof["outputs"]).reshape(-1), [0.5, 2.0, 0.25], atol=0.01)
    assert verify(store, proof["id"])["valid"] is True


def test_an_axis_name_ezkl_cannot_read_compiles_and_proves(
    tmp_path: Path, settings: Settings, store: ArtifactStore
) -> None:
    """Raw ezkl refuses the export ("[tract] Translating proto model to model": it reads
    "batch-size" as batch minus size); the circuit is of the model as sent, its id from
    the sent file's digest, and its proof's outputs are onnxruntime's."""
    path = make_dynamic_cnn(tmp_path / "cnn.onnx", dim="batch-size")
    rng = np.random.default_rng(0)
    samples = rng.uniform(-1, 1, (4, 16)).round(3)
    calibration = {"input_data": [samples.reshape(-1).tolist()]}  # one list per input
    circuit = compile_model(path, calibration, CompileOptions(space=SMALL), store, settings)
    info = load_model(path, settings)
    assert circuit["model_id"] == info.model_id and info.ezkl_path != path
    assert (
        store.path("models", info.model_id).joinpath("model.onnx").read_bytes() == path.read_bytes()
    )
    sample = {"input_data": [samples[0].tolist()]}
    proof = prove_input(store, circuit["id"], sample)
    expected = FloatReference(path, info.inputs).run([samples[0]])[0]
    assert np.allclose(np.asarray(proof["outputs"]).reshape(-1), expected.reshape(-1), atol=0.05)
    assert verify(store, proof["id"])["valid"] is True


def test_compile_out_of_memory_is_a_resource_error(tmp_path: Path, store: ArtifactStore) -> None:
    """ezkl aborting on allocation fails the compile once, naming the limit."""
    from prover.errors import ResourceLimitError

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 200_000])
    nodes = [
        helper.make_node("Expand", ["x", "shape"], ["wide"]),
        helper.make_node("ReduceSum", ["wide"], ["y"], keepdims=1),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[shape])
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    settings = Settings(data_dir=tmp_path / "data", measure_top=1, compile_memory_bytes=2**28)
    with pytest.raises(ResourceLimitError, match="PROVER_COMPILE_MEMORY_BYTES") as info:
        compile_model(path, None, CompileOptions(space=SMALL), store, settings)
    assert info.value.code == "resource_limit"
    assert store.list_records("circuits") == []
