"""Batch circuits: N inferences of one model proven in one circuit, so one proof (and one
on-chain verification) carries N results.

``batch_model`` writes the batch-N ONNX. Where the model runs a batch along its leading
axis (a symbolic batch dim, or a fixed dim of 1 that onnxruntime shows the graph runs
unchanged at N: the N-batch outputs equal the N single runs), the batch model is the same
graph with that axis fixed to N ("axis" layout); otherwise it holds N copies of the graph
side by side, names prefixed ``b{i}_``, inputs and outputs item-major ("copies" layout).
The layout is kept in the ONNX file's metadata (``prover.batch``), so a stored circuit
knows how to assemble a batch input and split a batch proof's outputs into N results.

Public instances: with ``hashed`` input and output visibility a batch proof's instances
stay a few field elements whatever N (axis: one hash per tensor; copies: one per item and
tensor), which keeps calldata and verification gas flat as N grows.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.layouts import (
    METADATA_KEY,
    BatchLayout,
    batch_calibration,
    read_layout,
)
from prover.circuits.search import Progress
from prover.circuits.shapes import known_shapes
from prover.circuits.tensors import TensorSpec
from prover.config import Settings
from prover.errors import InvalidInputError, InvalidModelError
from prover.store import ArtifactStore

_NUMPY: dict[int, type] = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}
# Element types onnxruntime takes as inputs: the zeros it runs a graph on to find shapes.
_RUN_TYPES: dict[int, type] = {
    **_NUMPY,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.BOOL: np.bool_,
}


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in value.type.tensor_type.shape.dim
    ]


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def _item_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    """One item's spec of a model input or output: a symbolic leading dim is the batch (1)."""
    dims = _dims(value)
    if any(d is None for d in dims[1:]):
        raise InvalidModelError(
            f"{value.name!r} has an unknown size on an axis other than the batch; "
            "batch circuits need fixed shapes"
        )
    elem = value.type.tensor_type.elem_type
    dtype = np.dtype(_NUMPY.get(elem, np.float32)).name
    return TensorSpec(value.name, tuple(d or 1 for d in dims), dtype)


def _output_specs(model: onnx.ModelProto) -> tuple[TensorSpec, ...]:
    """One item's outputs. Exporters often leave an output's dims symbolic (a Reshape's,
    a tree ensemble's ArgMax); those come from shape inference on the batch-1 graph, as
    intake finds them, else from one onnxruntime run of it on zeros."""
    outputs = list(model.graph.output)
    if all(None not in _dims(v)[1:] for v in outputs):
        return tuple(_item_spec(v) for v in outputs)
    single = _batch_of_one(model)
    shapes = known_shapes(single, {})
    found = [shapes.get(v.name) for v in outputs]
    if any(dims is None or None in dims for dims in found):
        shapes = _run_shapes(single)
    specs = []
    for value in outputs:
        dims = tuple(int(d or 0) for d in shapes.get(value.name) or [])
        dtype = np.dtype(_NUMPY.get(value.type.tensor_type.elem_type, np.float32)).name
        specs.append(TensorSpec(value.name, dims, dtype))
    return tuple(specs)


def _run_shapes(single: onnx.ModelProto) -> dict[str, list[int | None] | None]:
    """The output shapes of one onnxruntime run of the batch-1 graph on zeros."""
    feed: dict[str, np.ndarray] = {
        value.name: np.zeros(
            [d or 1 for d in _dims(value)],
            _RUN_TYPES.get(value.type.tensor_type.elem_type, np.float32),
        )
        for value in _graph_inputs(single)
    }
    try:
        session = ort.InferenceSession(single.SerializeToString())
        results = session.run(None, feed)
    except Exception as exc:
        raise InvalidModelError(
            f"the model's output shapes are neither declared, nor found by shape inference "
            f"or onnxruntime ({exc}); batch circuits need fixed shapes"
        ) from exc
    return {v.name: list(r.shape) for v, r in zip(single.graph.output, results, strict=True)}


def _batch_of_one(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its inputs' symbolic leading (batch) dims fixed to 1 and nothing
    else changed: an input with a fixed leading dim (say 3 rows, no batch axis) keeps it."""
    single = copy.deepcopy(model)
    del single.graph.value_info[:]
    for value in _graph_inputs(single):
        if _dims(value)[:1] == [None]:
            _set_leading(value, 1)
    return single


def _set_leading(value: onnx.ValueInfoProto, n: int) -> None:
    dims = value.type.tensor_type.shape.dim
    if len(dims):
        dims[0].Clear()
        dims[0].dim_value = n


def _axis_model(model: onnx.ModelProto, n: int) -> onnx.ModelProto:
    """The graph with its leading axis fixed to n on every input and output."""
    batched = copy.deepcopy(model)
    del batched.graph.value_info[:]
    for value in [*_graph_inputs(batched), *batched.graph.output]:
        _set_leading(value, n)
    return batched


def _items_of(specs: tuple[TensorSpec, ...], n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.standard_normal(t.shape).astype(np.dtype(t.dtype)) for t in specs] for _ in range(n)
    ]


def _runs_batched(model: onnx.ModelProto, batched: onnx.ModelProto, layout: BatchLayout) -> bool:
    """Whether onnxruntime gives the N single outputs when running the axis-batched graph
    on the N items stacked along axis 0 (with at least two items, so that a graph which
    mixes items is caught)."""
    if any(len(t.shape) == 0 or t.shape[0] != 1 for t in (*layout.inputs, *layout.outputs)):
        return False
    n = max(layout.n, 2)
    trial = _axis_model(model, n) if n != layout.n else batched
    items = _items_of(layout.inputs, n, seed=7)
    names = [t.name for t in layout.inputs]
    try:
        single = ort.InferenceSession(model.SerializeToString())
        many = ort.InferenceSession(trial.SerializeToString())
        together = many.run(
            None, {k: np.concatenate([it[j] for it in items]) for j, k in enumerate(names)}
        )
        alone = [single.run(None, dict(zip(names, it, strict=True))) for it in items]
    except Exception:  # any failure: the graph does not run batched
        return False
    for j, out in enumerate(together):
        expected = np.concatenate([a[j] for a in alone])
        if out.shape != expected.shape or not np.allclose(out, expected, rtol=1e-4, atol=1e-5):
            return False
    return True


def _renamed(name: str, prefix: str, shared: set[str]) -> str:
    return name if not name or name in shared else prefix + name


def _prefixed_value(value: onnx.ValueInfoProto, prefix: str) -> onnx.ValueInfoProto:
    """A copy's input or output: the name prefixed, a symbolic batch dim fixed to 1."""
    item = copy.deepcopy(value)
    item.name = prefix + value.name
    dims = item.type.tensor_type.shape.dim
    if len(dims) and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
        _set_leading(item, 1)
    return item


def _copies_model(model: onnx.ModelProto, n: int) -> onnx.ModelProto:
    """N copies of the graph in one, sharing the initializers (weights stored once)."""
    graph = model.graph
    shared = {t.name for t in graph.initializer}
    subgraphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(a.type in subgraphs for node in graph.node for a in node.attribute):
        raise InvalidModelError(
            "a model with subgraphs (If, Loop, Scan) cannot be copied into a batch"
        )
    batched = copy.deepcopy(model)
    for field in (batched.graph.node, batched.graph.input, batched.graph.output):
        del field[:]
    del batched.graph.value_info[:]
    for i in range(n):
        prefix = f"b{i}_"
        for node in graph.node:
            item = copy.deepcopy(node)
            # An unnamed node stays unnamed: op-type names would repeat ("b0_Conv" twice).
            item.name = prefix + node.name if node.name else ""
            item.input[:] = [_renamed(x, prefix, shared) for x in node.input]
            item.output[:] = [_renamed(x, prefix, shared) for x in node.output]
            batched.graph.node.append(item)
        batched.graph.input.extend(_prefixed_value(v, prefix) for v in _graph_inputs(model))
        batched.graph.output.extend(_prefixed_value(v, prefix) for v in graph.output)
    batched.graph.input.extend(v for v in graph.input if v.name in shared)
    return batched


BATCH_MODES = ("auto", "axis", "copies")


def batch_model(model_path: Path, n: int, out_path: Path, mode: str = "auto") -> Path:
    """Write the batch-``n`` ONNX of a model to ``out_path`` (see the module docstring);
    its layout is in the file's metadata (``read_layout``).

    ``mode`` "auto" batches along the leading axis where the graph runs batched, else
    copies; "copies" always copies (ezkl proves an N-row matrix product with an extra
    Freivalds argument, whose columns cost verifier code and gas; N copies keep the
    single model's circuit shape); "axis" refuses a graph that does not run batched.
    """
    if not 1 <= n <= 1024:
        raise InvalidInputError(f"batch size {n} must be between 1 and 1024")
    if mode not in BATCH_MODES:
        raise InvalidInputError(f"batch mode {mode!r} is not one of {', '.join(BATCH_MODES)}")
    try:
        model = onnx.load(str(model_path))
    except Exception as exc:
        raise InvalidModelError(f"{model_path} is not a readable ONNX model: {exc}") from exc
    if read_layout(model) is not None:
        raise InvalidModelError(f"{model_path} is already a batch model")
    inputs = tuple(_item_spec(v) for v in _graph_inputs(model))
    outputs = _output_specs(model)
    layout = BatchLayout(n, "axis", inputs, outputs)
    batched = _axis_model(model, n)
    if mode == "copies" or not _runs_batched(model, batched, layout):
        if mode == "axis":
            raise InvalidModelError(
                f"{model_path} does not run batched along its leading axis; use copies"
            )
        layout = BatchLayout(n, "copies", inputs, outputs)
        batched = _copies_model(_batch_of_one(model), n)
    entry = batched.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, layout.to_json()
    try:
        onnx.checker.check_model(batched)
    except onnx.checker.ValidationError as exc:
        raise InvalidModelError(
            f"the batch-{n} model of {model_path} is not valid ONNX: {exc}"
        ) from exc
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(batched, str(out_path))
    return out_path


def compile_batch(
    model_path: Path,
    n: int,
    calibration: Any | None,
    options: CompileOptions,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
    mode: str = "auto",
) -> dict[str, Any]:
    """Compile (or fetch) the batch-``n`` circuit of a model with the settings search; the
    single model's calibration samples are grouped into batches of ``n``."""
    with tempfile.TemporaryDirectory() as tmp:
        name = f"{Path(model_path).stem}.batch{n}.onnx"
        path = batch_model(model_path, n, Path(tmp) / name, mode)
        layout = read_layout(path)
        assert layout is not None
        data = None if calibration is None else batch_calibration(layout, calibration)
        return compile_model(path, data, options, store, settings, progress)
