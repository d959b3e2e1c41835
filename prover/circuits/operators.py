"""Which ONNX operators ezkl 23 can put in a circuit, checked before any long work.

Each listed operator was turned into a circuit by ezkl 23.0.5 (gen_settings, compile,
witness, mock) as a one-node model. ezkl itself reports an unknown operator only as a
generic synthesis error, so this list is what lets intake name the offending nodes.
"""

from __future__ import annotations

import onnx

SUPPORTED_OPERATORS = frozenset(
    {
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "BitShift",
        "Cast",
        "CastLike",
        "Ceil",
        "Celu",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "GRU",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gemm",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "HardSigmoid",
        "HardSwish",
        "Hardmax",
        "Identity",
        "InstanceNormalization",
        "LSTM",
        "LayerNormalization",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "Min",
        "Mul",
        "Neg",
        "Not",
        "OneHot",
        "Or",
        "PRelu",
        "Pad",
        "Pow",
        "QuantizeLinear",
        "RNN",
        "Range",
        "Reciprocal",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "Round",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Trilu",
        "Unsqueeze",
        "Where",
        "Xor",
    }
)


def _attribute(node: onnx.NodeProto, name: str) -> object | None:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return None


def _ints(node: onnx.NodeProto, name: str) -> list[int]:
    """An INTS attribute (empty when absent)."""
    value = _attribute(node, name)
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else []


def _string(node: onnx.NodeProto, name: str) -> str | None:
    """A STRING attribute (ONNX keeps bytes), decoded; ``None`` when absent."""
    value = _attribute(node, name)
    return value.decode() if isinstance(value, bytes) else None


def _unsupported_form(node: onnx.NodeProto) -> str | None:
    """A reason when a supported operator is used in a form ezkl rejects."""
    if node.op_type in ("Conv", "ConvTranspose"):
        dilations = _ints(node, "dilations")
        if any(d != 1 for d in dilations):
            return f"{node.op_type} with dilations {dilations}"
    if node.op_type == "Pad":
        mode = _string(node, "mode")
        if mode not in (None, "constant"):
            return f"Pad in {mode!r} mode"
    if node.op_type == "Resize":
        mode = _string(node, "mode")
        if mode not in (None, "nearest"):
            return f"Resize in {mode!r} mode"
    return None


def unsupported_operators(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Map each unsupported operator (or operator form) to the names of the nodes using it."""
    found: dict[str, list[str]] = {}
    for index, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx"):
            reason: str | None = f"{node.domain}::{node.op_type}"
        elif node.op_type not in SUPPORTED_OPERATORS:
            reason = node.op_type
        else:
            reason = _unsupported_form(node)
        if reason:
            found.setdefault(reason, []).append(node.name or f"#{index}")
    return found
