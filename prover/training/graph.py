"""What a training-step graph is: its inputs and outputs, the description it carries, and
batches laid out for it.

An exported step graph (see ``step_export``) maps ``(weights [P], x, y)`` to
``(new_weights [P], loss)`` and carries a JSON description under the ONNX metadata key
``prover.training_step`` (loss, learning rate, parameter names and shapes, batch shapes).
Nothing here needs PyTorch: the service reads graphs that clients exported.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from prover.circuits.data import as_floats
from prover.circuits.ranges import check_values
from prover.errors import InvalidInputError, InvalidModelError

if TYPE_CHECKING:
    import onnx

Loss = Literal["mse", "cross_entropy"]
LOSSES: tuple[str, ...] = ("mse", "cross_entropy")
INPUT_NAMES = ("weights", "x", "y")
OUTPUT_NAMES = ("new_weights", "loss")
METADATA_KEY = "prover.training_step"


@dataclass(frozen=True)
class StepGraph:
    """The description a step graph carries: one plain SGD step (no momentum, no decay)."""

    loss: Loss
    lr: float
    parameter_names: list[str]
    parameter_shapes: list[list[int]]
    x_shape: list[int]
    y_shape: list[int]

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parameter_count": self.parameter_count}


def step_graph(meta: dict[str, Any]) -> StepGraph:
    """The step description kept in a step circuit's ``training`` record."""
    return StepGraph(**{name: meta[name] for name in StepGraph.__dataclass_fields__})


def describe(model: onnx.ModelProto, graph: StepGraph) -> None:
    """Attach the step description to an ONNX model (replacing an earlier one)."""
    import onnx

    props = {p.key: p.value for p in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, METADATA_KEY: json.dumps(asdict(graph))})


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]


def read_step_graph(path: Path) -> StepGraph:
    """The description of an exported step graph; ``InvalidModelError`` naming what is
    missing or inconsistent when the file is not one."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InvalidModelError(f"{Path(path).name} is not a readable ONNX model: {exc}") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise InvalidModelError(
            f"{Path(path).name} is not a training-step graph: it carries no {METADATA_KEY!r} "
            "metadata (export one with `prover train export` or `export_sgd_step`)"
        )
    try:
        fields = json.loads(props[METADATA_KEY])
        graph = StepGraph(
            loss=fields["loss"],
            lr=float(fields["lr"]),
            parameter_names=[str(n) for n in fields["parameter_names"]],
            parameter_shapes=[[int(d) for d in s] for s in fields["parameter_shapes"]],
            x_shape=[int(d) for d in fields["x_shape"]],
            y_shape=[int(d) for d in fields["y_shape"]],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidModelError(f"the {METADATA_KEY!r} metadata is malformed: {exc}") from exc
    if graph.loss not in LOSSES:
        raise InvalidModelError(f"the step graph's loss {graph.loss!r} is not one of {LOSSES}")
    if not (math.isfinite(graph.lr) and graph.lr > 0):
        raise InvalidModelError(f"the step graph's learning rate {graph.lr} is not positive")
    expected = {
        "weights": [graph.parameter_count],
        "x": graph.x_shape,
        "y": graph.y_shape,
        "new_weights": [graph.parameter_count],
    }
    found = {v.name: _dims(v) for v in [*model.graph.input, *model.graph.output]}
    names = (tuple(v.name for v in model.graph.input), tuple(v.name for v in model.graph.output))
    if names != (INPUT_NAMES, OUTPUT_NAMES):
        raise InvalidModelError(
            f"a step graph has inputs {list(INPUT_NAMES)} and outputs {list(OUTPUT_NAMES)}; "
            f"this one has inputs {list(names[0])} and outputs {list(names[1])}"
        )
    for name, dims in expected.items():
        if found[name] != dims:
            raise InvalidModelError(
                f"the step graph's {name!r} is shaped {found[name]}, but its description "
                f"says {dims}"
            )
    return graph


def one_hot(labels: Any, classes: int) -> np.ndarray:
    """Integer class labels ``[B]`` as the float32 one-hot targets ``[B, classes]``."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise InvalidInputError(
            f"labels must be a 1-D list of class indices; got shape {arr.shape}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise InvalidInputError("labels must be integer class indices")
        arr = arr.astype(np.int64)
    if classes < 1:
        raise InvalidInputError(f"classes must be at least 1; got {classes}")
    bad = arr[(arr < 0) | (arr >= classes)]
    if bad.size:
        raise InvalidInputError(
            f"labels {sorted(set(bad.tolist()))[:5]} are outside 0..{classes - 1}",
            classes=classes,
        )
    out = np.zeros((arr.size, classes), dtype=np.float32)
    out[np.arange(arr.size), arr.astype(np.int64)] = 1.0
    return out


def step_batch(graph: StepGraph, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """A batch (x, y) shaped for the step graph; for cross-entropy, y may hold class
    indices (turned one-hot). Raises ``InvalidInputError`` naming a wrong size."""
    xa, ya = as_floats(x, "x"), as_floats(y, "y")
    if graph.loss == "cross_entropy" and ya.ndim == 1 and ya.size == graph.y_shape[0]:
        ya = one_hot(ya, graph.y_shape[-1]).astype(np.float64)
    for name, arr, shape in (("x", xa, graph.x_shape), ("y", ya, graph.y_shape)):
        if arr.size != math.prod(shape):
            raise InvalidInputError(
                f"{name} has {arr.size} values; the step circuit takes {name} shaped {shape} "
                f"({math.prod(shape)} values)",
                expected=shape,
            )
    return xa.reshape(graph.x_shape), ya.reshape(graph.y_shape)


def step_batches(graph: StepGraph, batches: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Batches ``[{"x": [...], "y": [...]}, ...]`` laid out by ``step_batch``; an error names
    the batch."""
    laid_out = []
    for i, batch in enumerate(batches):
        if not isinstance(batch, dict) or not {"x", "y"} <= set(batch):
            raise InvalidInputError(f'batch {i} is not {{"x": [...], "y": [...]}}', batch=i)
        try:
            laid_out.append(step_batch(graph, batch["x"], batch["y"]))
        except InvalidInputError as exc:
            raise InvalidInputError(f"batch {i}: {exc.message}", batch=i) from exc
    return laid_out


def check_batch_values(
    laid_out: list[tuple[np.ndarray, np.ndarray]], run_args: dict[str, Any], what: str = "batch"
) -> None:
    """``InvalidInputError`` naming the first value of the batches ``step_batches`` laid
    out that the step circuit (``run_args``) cannot read."""
    for i, (x, y) in enumerate(laid_out):
        check_values(x, f"{what} {i}:", "x", run_args)
        check_values(y, f"{what} {i}:", "y", run_args)


def step_weights(graph: StepGraph, weights: Any) -> np.ndarray:
    """Flat weights for the step graph; ``InvalidInputError`` when the count differs."""
    flat = as_floats(weights, "weights").reshape(-1)
    if flat.size != graph.parameter_count:
        raise InvalidInputError(
            f"the step circuit takes {graph.parameter_count} weights; got {flat.size}",
            expected=graph.parameter_count,
        )
    return flat
