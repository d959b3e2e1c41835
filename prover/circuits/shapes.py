"""How many values each tensor of a graph holds, known before anything runs the graph.

A file of a hundred bytes can ask for 10^9 values (an ``Expand`` or a ``ConstantOfShape``
to a constant shape); onnxruntime and ezkl would allocate them. ONNX shape inference with
data propagation gives most shapes exactly (shapes computed from constants and from other
shapes). Where a shape stays unknown, a bound that cannot be too small stands in: an
output is at most as large as all its inputs together (broadcasts, gathers, matmuls) or
as one of them (reshapes, slices); operators that create a shape from values (``Expand``,
``Tile``, ``Range``, ...) have no bound when those values are not known.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

# Operators whose output size follows from input *values* (a shape, repeats, a range).
_SHAPE_FROM_VALUES = frozenset(
    {
        "ConstantOfShape",
        "Expand",
        "Tile",
        "Range",
        "Resize",
        "Upsample",
        "Pad",
        "OneHot",
        "RandomNormal",
        "RandomUniform",
        "Col2Im",
        "CenterCropPad",
    }
)
# Operators whose output is at most as large as their largest input.
_NO_LARGER = frozenset(
    {
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Transpose",
        "Slice",
        "Split",
        "TopK",
        "Compress",
        "Cast",
        "CastLike",
        "Dropout",
        "Shape",
        "Size",
    }
)
# Operators that cost multiply-accumulates in a circuit, not one cell per output value.
_MAC_OPERATORS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"})
UNBOUNDED = -1


@dataclass(frozen=True)
class Sizes:
    """Per-graph totals and the node that set each maximum (for messages)."""

    largest: int  # values in the largest tensor
    largest_node: str
    total: int  # values in all computed tensors together
    cells: int  # estimated circuit cells
    unbounded_node: str | None  # a node whose output size cannot be bounded
    shapes: dict[str, list[int | None] | None] = field(default_factory=dict, repr=False)
    node_cells: list[int] = field(default_factory=list, repr=False)  # per node, graph order

    def to_dict(self) -> dict:
        return {"largest_tensor": self.largest, "total_elements": self.total, "cells": self.cells}


def _dims(value: onnx.ValueInfoProto) -> list[int | None] | None:
    """A value's dims (``None`` for an unknown one), or ``None`` without a known rank."""
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]


BATCH = "batch_size"  # ezkl's variable for a batch dim the exporter left unnamed


def variable_of(dim: onnx.TensorShapeProto.Dimension, axis: int) -> str | None:
    """The variable that fixes a model input's dim: its symbol, or ``BATCH`` for an
    unnamed leading dim; ``None`` for a fixed dim or an unnamed inner one."""
    if dim.HasField("dim_value") and dim.dim_value > 0:
        return None
    if dim.dim_param:
        return dim.dim_param
    return BATCH if axis == 0 else None


def _fixed(model: onnx.ModelProto, variables: dict[str, int]) -> onnx.ModelProto:
    """A copy whose inputs' symbolic dims take the values ezkl will give them, and whose
    declared outputs and intermediate values take them too (shape inference then finds
    the rest from the inputs)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            name = variable_of(dim, axis)
            if name in variables:
                dim.dim_value = variables[name]
    for value in (*fixed.graph.output, *fixed.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in variables:
                dim.dim_value = variables[dim.dim_param]
    return fixed


# ezkl's ONNX reader (tract) reads a dim's name as an expression: "batch-size" is two
# symbols, "batch size" or "N?" no expression at all; an identifier is one symbol.
_READABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def ezkl_readable(model: onnx.ModelProto, variables: dict[str, int]) -> onnx.ModelProto | None:
    """None where ezkl can read every symbolic dim's name; else a copy for ezkl with its
    inputs' symbolic dims fixed to ``variables`` (as ezkl would fix them) and any other
    unreadable name cleared (an unknown dim, which ezkl infers)."""
    values = (*model.graph.input, *model.graph.output, *model.graph.value_info)
    names = {d.dim_param for v in values for d in v.type.tensor_type.shape.dim if d.dim_param}
    if all(_READABLE_NAME.fullmatch(name) for name in names):
        return None
    readable = _fixed(model, variables)
    for value in (*readable.graph.input, *readable.graph.output, *readable.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and not _READABLE_NAME.fullmatch(dim.dim_param):
                dim.ClearField("dim_param")
    return readable


# Constant computations folded to values when shape inference leaves them (shape
# arithmetic on dims, ConstantOfShape/Expand/Tile to a constant shape): only on inputs of
# at most _FOLD_LIMIT values, and an operator that makes a shape from values only when
# that shape holds at most _FOLD_LIMIT values, so folding itself allocates nothing.
_FOLDABLE = frozenset(
    {
        "Abs", "Add", "And", "ArgMax", "ArgMin", "Cast", "CastLike", "Ceil", "Clip",
        "Concat", "ConstantOfShape", "CumSum", "Div", "Equal", "Expand", "Flatten", "Floor",
        "Gather", "GatherElements", "GatherND", "Greater", "GreaterOrEqual", "Identity",
        "Less", "LessOrEqual", "Max", "Min", "Mod", "Mul", "Neg", "NonZero", "Not", "Or",
        "Pow", "Range", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
        "Reshape", "ScatterElements", "ScatterND", "Shape", "Sign", "Size", "Slice",
        "Split", "Sqrt", "Squeeze", "Sub", "Tile", "Transpose", "Unsqueeze", "Where", "Xor",
    }
)  # fmt: skip
_FOLD_LIMIT = 64
_ROUNDS = 8


def fixed_model(model: onnx.ModelProto, variables: dict[str, int]) -> onnx.ModelProto:
    """The model as ezkl runs it: symbolic dims fixed to ``variables`` (the values intake
    resolved), the constant computations shape inference leaves folded into initializers
    (a ``Shape → Gather → Concat`` chain over a fixed dim, a ``ConstantOfShape`` of a
    constant), and every shape inferred (``value_info``), so later stages see one graph
    with fixed shapes wherever the model fixes them."""
    current = _inferred(_fixed(model, variables))
    for _ in range(_ROUNDS):
        folded = _fold(current, shapes_of(current))
        if folded is None:
            break
        current = _inferred(folded)
    return current


def known_shapes(
    model: onnx.ModelProto, variables: dict[str, int]
) -> dict[str, list[int | None] | None]:
    """Every value's shape in ``fixed_model``: ``None`` for an unknown rank, ``None`` dims
    for unknown sizes."""
    return shapes_of(fixed_model(model, variables))


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # strict errors: keep what the file declares, bound the rest
        return model


def shapes_of(model: onnx.ModelProto) -> dict[str, list[int | None] | None]:
    """The shapes a model declares (inputs, outputs, ``value_info``, constants)."""
    graph = model.graph
    shapes: dict[str, list[int | None] | None] = {
        t.name: [int(d) for d in t.dims] for t in graph.initializer
    }
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = _dims(value)
        if dims is not None or value.name not in shapes:
            shapes[value.name] = dims
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                shapes[node.output[0]] = [int(d) for d in value.dims]
    return shapes


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {
        t.name: numpy_helper.to_array(t)
        for t in graph.initializer
        if math.prod(t.dims) <= _FOLD_LIMIT
    }
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None and math.prod(value.dims) <= _FOLD_LIMIT:
                values[node.output[0]] = numpy_helper.to_array(value)
    return values


def _made_size(node: onnx.NodeProto, values: dict[str, np.ndarray]) -> int | None:
    """The values an operator that makes a shape from its inputs' values would produce,
    from those (constant) values; ``None`` for other operators."""
    given = [values[name] for name in node.input if name]
    try:
        if node.op_type == "ConstantOfShape":
            return math.prod(int(d) for d in given[0].reshape(-1)) if given else 1
        if node.op_type == "Expand":
            shape = tuple(int(d) for d in given[1].reshape(-1))
            return math.prod(np.broadcast_shapes(given[0].shape, shape))
        if node.op_type == "Tile":
            return math.prod(int(d) * int(r) for d, r in zip(given[0].shape, given[1], strict=True))
        if node.op_type == "Range":
            start, limit, delta = (float(v) for v in given)
            return max(0, math.ceil((limit - start) / delta))
    except (ValueError, ZeroDivisionError, IndexError):
        return _FOLD_LIMIT + 1  # malformed: leave it to the checks that name it
    return None


def _foldable(node: onnx.NodeProto, values: dict[str, np.ndarray], graph_inputs: set[str]) -> bool:
    if node.op_type not in _FOLDABLE or node.domain not in ("", "ai.onnx"):
        return False
    names = [name for name in node.input if name]
    if graph_inputs.intersection(names) or not all(name in values for name in names):
        return False
    made = _made_size(node, values)
    return made is None or made <= _FOLD_LIMIT


def _fold(model: onnx.ModelProto, shapes: dict) -> onnx.ModelProto | None:
    """A copy with foldable nodes replaced by their values; ``None`` when none folds."""
    from onnx.reference import ReferenceEvaluator

    values = _constants(model.graph)
    graph_inputs = {v.name for v in model.graph.input}
    folded: dict[str, np.ndarray] = {}
    keep: list[onnx.NodeProto] = []
    for node in model.graph.node:
        result: list[np.ndarray] | None = None
        if node.op_type == "Shape" and _exact(shapes.get(node.input[0])) is not None:
            dims = np.array(shapes[node.input[0]], dtype=np.int64)
            start, end = _int_attribute(node, "start"), _int_attribute(node, "end", len(dims))
            result = [dims[start:end]]
        elif _foldable(node, values, graph_inputs):
            try:
                single = _single_node_model(model, node, values)
                result = [np.asarray(a) for a in ReferenceEvaluator(single).run(None, {})]
            except Exception:
                result = None
        if result is None or any(r.size > _FOLD_LIMIT * _FOLD_LIMIT for r in result):
            keep.append(node)
            continue
        for name, array in zip(node.output, result, strict=False):
            folded[name] = np.asarray(array)
            if array.size <= _FOLD_LIMIT:
                values[name] = folded[name]
    if not folded:
        return None
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.node[:]
    copy.graph.node.extend(keep)
    copy.graph.initializer.extend(numpy_helper.from_array(a, n) for n, a in folded.items())
    kept_info = [v for v in copy.graph.value_info if v.name not in folded]
    del copy.graph.value_info[:]
    copy.graph.value_info.extend(kept_info)
    return copy


def _single_node_model(
    model: onnx.ModelProto, node: onnx.NodeProto, values: dict[str, np.ndarray]
) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(values[name], name) for name in dict.fromkeys(node.input)]
    outputs = [onnx.helper.make_empty_tensor_value_info(name) for name in node.output]
    graph = onnx.helper.make_graph([node], "fold", [], outputs, initializer=inits)
    return onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=8)


def _exact(dims: list[int | None] | None) -> int | None:
    if dims is None or any(d is None for d in dims):
        return None
    return math.prod(d for d in dims if d is not None)


def _bound(node: onnx.NodeProto, inputs: list[int]) -> int:
    """An upper bound on one output's values from its inputs' bounds."""
    if UNBOUNDED in inputs or node.op_type in _SHAPE_FROM_VALUES:
        return UNBOUNDED
    if node.op_type in _NO_LARGER:
        return max(inputs, default=1)
    if node.op_type == "Concat":
        return sum(inputs)
    if node.op_type == "NonZero":
        return 8 * max(inputs, default=1)  # rank x count; ranks above 8 are not circuits
    return math.prod(max(1, n) for n in inputs)  # broadcasts, gathers, products


def _cells(node: onnx.NodeProto, out: int, shapes: dict, inputs: list[int]) -> int:
    """Circuit cells of one node: its output values, times the reduction length of a
    matmul or convolution (each output value sums that many products)."""
    if node.op_type not in _MAC_OPERATORS:
        return out
    first = shapes.get(node.input[0]) or []
    weights = (shapes.get(node.input[1]) if len(node.input) > 1 else None) or []
    reduction: int | None = None
    if node.op_type == "MatMul" and first:
        reduction = first[-1]
    elif node.op_type == "Gemm" and len(first) == 2:
        reduction = first[0] if _int_attribute(node, "transA") else first[1]
    elif node.op_type == "Conv" and len(weights) > 1:
        reduction = _exact(weights[1:])
    elif node.op_type == "ConvTranspose" and len(weights) > 1:
        reduction = _exact([weights[0], *weights[2:]])
    if reduction is None:  # Einsum, or shapes not known: as if square
        reduction = max(1, math.isqrt(max(inputs, default=1)))
    return out * max(1, reduction)


def _int_attribute(node: onnx.NodeProto, name: str, default: int = 0) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def measure(model: onnx.ModelProto, variables: dict[str, int]) -> Sizes:
    """Sizes of every tensor ``fixed_model`` computes; bounds where shapes stay unknown."""
    return measure_fixed(fixed_model(model, variables))


def measure_fixed(model: onnx.ModelProto) -> Sizes:
    """``measure`` of a model ``fixed_model`` returned."""
    shapes = shapes_of(model)
    elements: dict[str, int] = {}
    for name, dims in shapes.items():
        exact = _exact(dims)
        if exact is not None:
            elements[name] = exact
    largest, largest_node, total, cells = 0, "", 0, 0
    node_cells: list[int] = []
    for index, node in enumerate(model.graph.node):
        label = f"{node.name or '#' + str(index)} ({node.op_type})"
        inputs = [elements.get(name, UNBOUNDED) for name in node.input if name]
        before = cells
        for output in node.output:
            if not output:
                continue
            size = _exact(shapes.get(output))
            if size is None:
                size = _bound(node, inputs)
                if size == UNBOUNDED:
                    return Sizes(largest, largest_node, total, cells, label, shapes)
            elements[output] = size
            total += size
            cells += _cells(node, size, shapes, inputs)
            if size > largest:
                largest, largest_node = size, label
        node_cells.append(cells - before)
    return Sizes(largest, largest_node, total, cells, None, shapes, node_cells)
