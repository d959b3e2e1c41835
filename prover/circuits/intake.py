"""Model intake: load and check an ONNX file before any long work starts.

Everything that reads the file runs in a sandboxed child (``circuits.sandbox``): parsing,
bounding every tensor's size, asking ezkl whether it can lay the circuit out, and the
float reference run, so a hostile file costs a refused request, not the process.
onnxruntime is the float reference where it can run the model; where it cannot but ezkl
can, the model is accepted with its accuracy unchecked (``ModelInfo.unchecked``).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from prover.circuits.operators import ezkl_verdict, refusal
from prover.circuits.sandbox import Limits, run_limited
from prover.circuits.shapes import (
    BATCH,
    Sizes,
    ezkl_readable,
    fixed_model,
    measure_fixed,
    variable_of,
)
from prover.circuits.tensors import TensorSpec
from prover.config import Settings
from prover.errors import InvalidInputError, InvalidModelError, ModelTooLargeError
from prover.store import sha256_bytes

_ONNX_TO_NUMPY = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.BOOL: np.bool_,
}


@dataclass
class ModelInfo:
    """What intake learned about a model; ``variables`` fixes symbolic batch dims to 1.

    ``ezkl_path`` is the file ezkl reads: ``path``, or where a symbolic dim's name is not
    one ezkl can read (``shapes.ezkl_readable``), a copy with those dims fixed.
    ``unchecked`` is why onnxruntime gives no float reference (``None``: it does), so no
    accuracy can be measured against it."""

    model_id: str
    path: Path
    ezkl_path: Path
    opset: int
    operators: dict[str, int]
    parameter_count: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec] = field(default_factory=list)
    variables: list[tuple[str, int]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    unchecked: str | None = None

    @property
    def variable_values(self) -> dict[str, int]:
        """The values of the model's symbolic dims, as ezkl is given them."""
        return dict(self.variables) or {BATCH: 1}

    def fixed_graph(self) -> onnx.ModelProto:
        """The model with those values in place, shape computations folded and shapes
        inferred (``shapes.fixed_model``): what cut finding and segments work on."""
        return fixed_model(onnx.load(str(self.path)), self.variable_values)

    def to_dict(self) -> dict:
        reference = {"accuracy": "unchecked", "reason": self.unchecked} if self.unchecked else {}
        return {
            **reference,
            "sizes": self.sizes,
            "model_id": self.model_id,
            "opset": self.opset,
            "operators": self.operators,
            "parameter_count": self.parameter_count,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "variables": [list(v) for v in self.variables],
        }


def _parameter_count(graph: onnx.GraphProto) -> int:
    count = sum(int(np.prod(t.dims, dtype=np.int64)) for t in graph.initializer)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    count += int(np.prod(attr.t.dims, dtype=np.int64))
    return count


def _input_specs(graph: onnx.GraphProto) -> tuple[list[TensorSpec], list[tuple[str, int]]]:
    initializers = {t.name for t in graph.initializer}
    specs: list[TensorSpec] = []
    variables: dict[str, int] = {}
    for value in graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type not in _ONNX_TO_NUMPY:
            raise InvalidModelError(
                f"input {value.name!r} has element type "
                f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; "
                "ezkl circuits take float, int or bool tensors",
                input=value.name,
            )
        if not tensor_type.HasField("shape"):
            raise InvalidModelError(
                f"input {value.name!r} has no shape; export the model with a fixed input shape",
                input=value.name,
            )
        shape: list[int] = []
        for axis, dim in enumerate(tensor_type.shape.dim):
            name = variable_of(dim, axis)
            if name is None and dim.dim_value > 0:
                shape.append(dim.dim_value)
            elif name is not None and (axis == 0 or name in variables):
                # A symbolic leading dim is the batch: ezkl fixes it through its variables
                # (to 1); an inner dim of the same name is the same size.
                variables[name] = 1
                shape.append(1)
            else:
                raise InvalidModelError(
                    f"input {value.name!r} has an unknown size on axis {axis} "
                    f"({dim.dim_param or 'unnamed'}); circuits need fixed shapes, so export "
                    "the model with a concrete shape for every axis but the batch",
                    input=value.name,
                    axis=axis,
                )
        dtype = np.dtype(_ONNX_TO_NUMPY[tensor_type.elem_type]).name
        specs.append(TensorSpec(value.name, tuple(shape), dtype))
    if not specs:
        raise InvalidModelError("the model has no inputs; a circuit needs at least one input")
    return specs, sorted(variables.items())


def intake_limits(settings: Settings) -> Limits:
    return Limits(
        "intake",
        settings.intake_memory_bytes,
        settings.intake_time_s,
        "PROVER_INTAKE_MEMORY_BYTES",
        "PROVER_INTAKE_TIME_S",
    )


def load_model(path: Path, settings: Settings) -> ModelInfo:
    """Check an ONNX file against format, size limits and ezkl's support, then run it once.

    The checks run in a child under ``intake_limits``. Raises a ``ProverError`` subclass
    naming the first problem found (``ResourceLimitError`` when the child hits a limit).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidModelError(f"model file {str(path)!r} does not exist")
    size = path.stat().st_size
    if size > settings.max_model_bytes:
        raise ModelTooLargeError(
            f"model file is {size} bytes; the limit is {settings.max_model_bytes} "
            "(PROVER_MAX_MODEL_BYTES)",
            bytes=size,
            limit=settings.max_model_bytes,
        )
    return run_limited(inspect_model, path, settings, limits=intake_limits(settings))


def _ezkl_copy(model: onnx.ModelProto, model_id: str) -> Path:
    """Where ezkl reads a model whose dims were made readable: the temporary directory,
    one file per model (written whole, then renamed into place), so that a worker that
    plans the model again finds or remakes the same file."""
    path = Path(tempfile.gettempdir()) / "prover-ezkl-models" / f"{model_id}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    onnx.save(model, partial)
    partial.replace(path)
    return path


def _parse(path: Path, data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise InvalidModelError(f"{path.name} is not a valid ONNX file: {exc}") from exc
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid graph"
        raise InvalidModelError(f"{path.name} fails the ONNX checker: {first_line}") from exc
    if not model.graph.node:
        raise InvalidModelError(f"{path.name} has an empty graph")
    return model


def _check_sizes(sizes: Sizes, settings: Settings) -> None:
    """Refuse a graph whose tensors or circuit exceed the limits, naming the node."""
    if sizes.unbounded_node:
        raise ModelTooLargeError(
            f"the output size of node {sizes.unbounded_node} cannot be bounded before running "
            "it (its shape comes from values only known at run time); circuits need shapes "
            "fixed by the model",
            node=sizes.unbounded_node,
        )
    checks = (
        ("largest tensor", sizes.largest, settings.max_tensor_elements, "MAX_TENSOR_ELEMENTS"),
        ("tensors together", sizes.total, settings.max_total_elements, "MAX_TOTAL_ELEMENTS"),
        ("estimated circuit", sizes.cells, settings.max_circuit_cells, "MAX_CIRCUIT_CELLS"),
    )
    for what, value, limit, name in checks:
        if value > limit:
            unit = "cells" if what == "estimated circuit" else "values"
            raise ModelTooLargeError(
                f"the model's {what} holds {value} {unit} (largest: node "
                f"{sizes.largest_node}, {sizes.largest} values); the limit is {limit} "
                f"(PROVER_{name})",
                node=sizes.largest_node,
                size=value,
                limit=limit,
            )


def inspect_model(path: Path, settings: Settings) -> ModelInfo:
    """``load_model``'s checks, in order of cost; run in the intake sandbox."""
    data = path.read_bytes()
    model = _parse(path, data)
    params = _parameter_count(model.graph)
    if params > settings.max_parameters:
        raise ModelTooLargeError(
            f"model has {params} parameters; the limit is {settings.max_parameters} "
            "(PROVER_MAX_PARAMETERS)",
            parameters=params,
            limit=settings.max_parameters,
        )
    inputs, variables = _input_specs(model.graph)
    elements = sum(t.size for t in inputs)
    if elements > settings.max_input_elements:
        raise ModelTooLargeError(
            f"model inputs hold {elements} values; the limit is {settings.max_input_elements} "
            "(PROVER_MAX_INPUT_ELEMENTS)",
            elements=elements,
            limit=settings.max_input_elements,
        )
    values = dict(variables) or {BATCH: 1}
    sizes = measure_fixed(fixed_model(model, values))
    _check_sizes(sizes, settings)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    model_id = sha256_bytes(data)
    readable = ezkl_readable(model, values)
    info = ModelInfo(
        model_id=model_id,
        path=path,
        ezkl_path=path if readable is None else _ezkl_copy(readable, model_id),
        opset=opset,
        operators=dict(sorted(Counter(node.op_type for node in model.graph.node).items())),
        parameter_count=params,
        inputs=inputs,
        variables=variables,
        sizes=sizes.to_dict(),
    )
    outputs, reference_error = _reference_outputs(info)
    verdict = ezkl_verdict(info.ezkl_path, variables)
    if verdict.error is not None:
        if reference_error is not None:
            raise InvalidModelError(
                f"the model does not run in onnxruntime ({reference_error}), nor in ezkl "
                f"({verdict.error})"
            )
        raise refusal(model, verdict)
    if outputs is None:
        info.unchecked = reference_error
        info.outputs = _declared_outputs(model, sizes)
    else:
        info.outputs = [
            TensorSpec(o.name, tuple(int(d) for d in arr.shape), arr.dtype.name)
            for o, arr in zip(model.graph.output, outputs, strict=True)
        ]
    return info


def _reference_outputs(info: ModelInfo) -> tuple[list[np.ndarray] | None, str | None]:
    """onnxruntime's outputs on zeros, or why it cannot give them."""
    try:
        zeros = [np.zeros(t.shape, dtype=t.dtype) for t in info.inputs]
        return FloatReference(info.path, info.inputs).run(zeros), None
    except (InvalidModelError, InvalidInputError) as exc:
        return None, exc.message


def _declared_outputs(model: onnx.ModelProto, sizes: Sizes) -> list[TensorSpec]:
    """Output specs from shape inference, for a model onnxruntime cannot run."""
    specs = []
    for value in model.graph.output:
        dims = sizes.shapes.get(value.name)
        if dims is None or any(d is None for d in dims):
            raise InvalidModelError(
                f"output {value.name!r} has no shape known before running the model, and "
                "onnxruntime cannot run it to find one"
            )
        dtype = _ONNX_TO_NUMPY.get(value.type.tensor_type.elem_type, np.float32)
        specs.append(TensorSpec(value.name, tuple(int(d or 0) for d in dims), np.dtype(dtype).name))
    return specs


class FloatReference:
    """onnxruntime session for a model: the float answer a circuit is compared against."""

    def __init__(self, path: Path, inputs: list[TensorSpec]) -> None:
        self.inputs = inputs
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise InvalidModelError(f"onnxruntime cannot load the model: {exc}") from exc

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for one sample given as one array per model input."""
        feeds = {
            spec.name: np.asarray(arr, dtype=spec.dtype).reshape(spec.shape)
            for spec, arr in zip(self.inputs, arrays, strict=True)
        }
        try:
            return [np.asarray(o) for o in self.session.run(None, feeds)]
        except Exception as exc:
            raise InvalidInputError(f"onnxruntime failed to run the model: {exc}") from exc
