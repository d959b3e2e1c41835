"""Whether ezkl can put a model in a circuit: asked of ezkl itself, named from a table.

ezkl decides (``ezkl_verdict``: its own ``gen_settings`` on the model, which parses the
graph and lays the circuit out, without calibration or keys), so intake never refuses a
model ezkl accepts. But ezkl reports most refusals only as a generic synthesis error, so
when it refuses, ``SUPPORTED_OPERATORS`` names the likely culprits: each listed operator
was turned into a circuit by ezkl 23.0.5 (gen_settings, compile, witness, mock) as a
one-node model. The table may lag ezkl (``NonZero`` works when its input is a constant);
it only names, it never refuses.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from prover.errors import CircuitError, ProverError, UnsupportedOperatorError

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


@dataclass
class EzklVerdict:
    """ezkl's answer for a model: its error (``None``: it builds), the operators it named
    as unknown, and the settings it generated."""

    error: str | None
    unknown: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)


@contextlib.contextmanager
def _captured_output(path: Path) -> Iterator[None]:
    """The process's stdout and stderr into ``path`` (ezkl prints its reasons there)."""
    saved = [os.dup(1), os.dup(2)]
    try:
        with path.open("wb") as out:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def ezkl_verdict(path: Path, variables: list[tuple[str, int]]) -> EzklVerdict:
    """Ask ezkl whether it can lay out a circuit for the model (default run args).

    Costs what ezkl's layout of the model costs, so intake runs it in its sandbox, after
    the tensor sizes are bounded.
    """
    import ezkl

    with tempfile.TemporaryDirectory(prefix="prover-ezkl-check-") as tmp:
        settings_path, output = Path(tmp) / "settings.json", Path(tmp) / "output.log"
        args = ezkl.PyRunArgs()
        args.variables = variables or [("batch_size", 1)]  # type: ignore[attr-defined]
        try:
            with _captured_output(output):
                ezkl.gen_settings(str(path), str(settings_path), py_run_args=args)
            return EzklVerdict(None, settings=json.loads(settings_path.read_text()))
        except BaseException as exc:  # ezkl raises RuntimeError, or a pyo3 PanicException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            printed = output.read_text(errors="replace") if output.exists() else ""
            unknown = re.findall(r"Unknown op: (?:onnx\.)?(\w+)", printed)
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "failed"
            return EzklVerdict(reason, sorted(set(unknown)))


def refusal(model: onnx.ModelProto, verdict: EzklVerdict) -> ProverError:
    """The error for a model ezkl refused, naming the likely culprit nodes."""
    assert verdict.error is not None
    culprits = unsupported_operators(model)
    if not culprits and verdict.unknown:  # ezkl named them (tract's names)
        unknown = {name.lower() for name in verdict.unknown}
        for index, node in enumerate(model.graph.node):
            if node.op_type.lower() in unknown:
                culprits.setdefault(node.op_type, []).append(node.name or f"#{index}")
    if culprits:
        names = ", ".join(sorted(culprits))
        return UnsupportedOperatorError(
            f"ezkl cannot put these operators in a circuit: {names}; replace them (or the "
            f"layers that export them) before compiling (ezkl: {verdict.error})",
            operators=sorted(culprits),
            nodes={op: nodes[:5] for op, nodes in sorted(culprits.items())},
            ezkl_error=verdict.error,
        )
    return CircuitError(
        f"ezkl cannot build a circuit from this model: {verdict.error}",
        ezkl_error=verdict.error,
    )
