"""Export one plain-SGD training step of a small PyTorch module as an ONNX graph.

The graph maps ``(weights, x, y)`` to ``(new_weights, loss)`` where ``weights`` is every
trainable parameter flattened and concatenated in ``module.named_parameters()`` order and

    new_weights = weights - lr * d loss / d weights

which is exactly one ``torch.optim.SGD(params, lr=lr)`` step: no momentum, no weight decay,
no dampening, no Nesterov (those are not supported, so the API takes only ``lr``).

The gradient is written out as ordinary operators (ezkl cannot prove ONNX's ``Gradient``):
``torch.func.grad_and_value`` is traced with ``make_fx`` through PyTorch's core ATen
decompositions, plus hand-written decompositions, below, for the convolution and average
pooling backward passes in forms ezkl accepts. The traced graph is exported with the
TorchScript ONNX exporter at fixed shapes.

Losses:

* ``"mse"``: mean over all elements, as ``torch.nn.functional.mse_loss``; ``y`` is a float
  tensor shaped like the model output.
* ``"cross_entropy"``: mean over the batch of ``-sum(y * log_softmax(logits))``, as
  ``torch.nn.functional.cross_entropy`` with probability targets; ``y`` is the ONE-HOT float
  tensor ``[B, C]``; convert integer class labels with ``graph.one_hot``.
"""

from __future__ import annotations

import copy
import math
import os
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn
from torch._decomp import core_aten_decompositions

from prover.circuits.export import DEFAULT_OPSET
from prover.circuits.operators import unsupported_operators
from prover.errors import (
    InvalidInputError,
    InvalidModelError,
    ProverError,
    UnsupportedOperatorError,
)
from prover.training.graph import INPUT_NAMES, LOSSES, OUTPUT_NAMES, Loss, StepGraph, describe

_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv2d,
    nn.ReLU,
    nn.Flatten,
    nn.AvgPool2d,
    nn.Sigmoid,
    nn.Tanh,
    nn.Sequential,
)
SUPPORTED_LAYERS = ", ".join(t.__name__ for t in _LAYERS)
_CONV_STRIDES = (1, 2)
_CONV_PADDINGS = (0, 1)

aten = torch.ops.aten


# --- parameters and labels ------------------------------------------------------------


def _trainable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def flatten_params(module: nn.Module) -> np.ndarray:
    """The trainable parameters as one float32 vector, in ``named_parameters()`` order."""
    params = [p.detach().reshape(-1).to(torch.float32) for _, p in _trainable(module)]
    if not params:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(params).cpu().numpy()


def unflatten_into(module: nn.Module, flat: np.ndarray | torch.Tensor) -> None:
    """Load a vector laid out as :func:`flatten_params` back into the module's parameters."""
    values = torch.as_tensor(np.asarray(flat, dtype=np.float32)).reshape(-1)
    params = _trainable(module)
    expected = sum(p.numel() for _, p in params)
    if values.numel() != expected:
        raise InvalidInputError(
            f"the weight vector holds {values.numel()} values; the module has {expected} "
            "trainable parameters",
            expected=expected,
            got=int(values.numel()),
        )
    offset = 0
    with torch.no_grad():
        for _, p in params:
            p.copy_(values[offset : offset + p.numel()].view_as(p).to(p.dtype))
            offset += p.numel()


# --- checks before any tracing ---------------------------------------------------------


def _pair(value: Any) -> tuple[Any, Any]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _layer_problem(layer: nn.Module) -> str | None:
    """Why a supported layer type is used in a form the step export cannot handle."""
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1:
            return f"groups={layer.groups} (only groups=1)"
        if any(d != 1 for d in _pair(layer.dilation)):
            return f"dilation={layer.dilation} (only 1)"
        if layer.padding_mode != "zeros":
            return f"padding_mode={layer.padding_mode!r} (only 'zeros')"
        stride = _pair(layer.stride)
        if stride[0] != stride[1] or stride[0] not in _CONV_STRIDES:
            return f"stride={layer.stride} (only 1 or 2, the same on both axes)"
        padding = (0, 0) if layer.padding == "valid" else layer.padding
        if isinstance(padding, str) or len(set(_pair(padding))) != 1:
            return f"padding={layer.padding!r} (only 0 or 1, the same on both axes)"
        if _pair(padding)[0] not in _CONV_PADDINGS:
            return f"padding={layer.padding!r} (only 0 or 1, the same on both axes)"
    if isinstance(layer, nn.AvgPool2d):
        kernel, stride = _pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size)
        if kernel != stride:
            return f"kernel_size={layer.kernel_size} != stride={layer.stride} (must be equal)"
        if any(p != 0 for p in _pair(layer.padding)):
            return f"padding={layer.padding} (only 0)"
        if layer.ceil_mode:
            return "ceil_mode=True"
        if layer.divisor_override is not None:
            return f"divisor_override={layer.divisor_override}"
    return None


def check_module(module: nn.Module) -> None:
    """Refuse, naming every offending layer, a module the step export does not support.

    Supported: Linear, Conv2d (stride 1 or 2, padding 0 or 1, groups 1, dilation 1), ReLU,
    Flatten, AvgPool2d (kernel = stride, no padding), Sigmoid, Tanh, Sequential of these.
    A custom container is accepted when it holds no parameters or buffers of its own; the
    operators its ``forward`` uses are checked on the exported graph.
    """
    problems: list[str] = []
    for name, layer in module.named_modules():
        label = f"layer {name!r}" if name else "the root module"
        kind = type(layer).__name__
        if isinstance(layer, _LAYERS):
            reason = _layer_problem(layer)
            if reason:
                problems.append(f"{label} ({kind}) uses {reason}")
            continue
        own = list(layer.parameters(recurse=False)) + list(layer.buffers(recurse=False))
        if own or not list(layer.children()):
            problems.append(f"{label} ({kind})")
    if problems:
        raise UnsupportedOperatorError(
            f"{'; '.join(problems)}: not supported in a proven training step; "
            f"supported: {SUPPORTED_LAYERS}",
            layers=problems,
        )
    if not _trainable(module):
        raise InvalidModelError("the module has no trainable parameters")


def _check_args(loss: str, lr: float) -> None:
    if loss not in LOSSES:
        raise InvalidInputError(f"loss {loss!r} is not one of {', '.join(LOSSES)}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr):
        raise InvalidInputError(f"learning rate {lr!r} must be a finite number")
    if lr <= 0:
        raise InvalidInputError(f"learning rate {lr} must be positive")


def _check_shapes(
    module: nn.Module, loss: str, x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> tuple[int, ...]:
    """The model's output shape for ``x_shape``; ``y_shape`` must match it."""
    if not x_shape or any(int(d) < 1 for d in x_shape):
        raise InvalidInputError(f"x_shape {tuple(x_shape)} must be a non-empty shape of sizes ≥ 1")
    try:
        with torch.no_grad():
            out = module(torch.zeros(tuple(x_shape), dtype=torch.float32))
    except Exception as exc:
        raise InvalidInputError(
            f"the module does not run on an input of shape {tuple(x_shape)}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise InvalidModelError("the module must return a single tensor")
    out_shape = tuple(out.shape)
    if loss == "cross_entropy" and len(out_shape) != 2:
        raise InvalidInputError(
            f"cross_entropy needs logits shaped [B, C]; the module outputs {list(out_shape)}"
        )
    if tuple(y_shape) != out_shape:
        what = "one-hot labels [B, C]" if loss == "cross_entropy" else "targets"
        raise InvalidInputError(
            f"y_shape {list(y_shape)} must equal the model output shape {list(out_shape)} ({what})",
            expected=list(out_shape),
            got=list(y_shape),
        )
    return out_shape


# --- decompositions that keep the gradient within ezkl's operators --------------------


def _conv_weight_grad(
    x: torch.Tensor, g: torch.Tensor, kernel: tuple[int, int], stride: int, padding: int
) -> torch.Tensor:
    """d loss / d weight of a 2-D convolution, as stride-1 undilated convolutions.

    ``dW[o, i, kh, kw] = sum_{b, y, x} xp[b, i, y*s + kh, x*s + kw] * g[b, o, y, x]``: a
    convolution of the input with batch and channel axes swapped by ``g``. For stride ``s``
    the padded input is split into its ``s * s`` phases (reshape + transpose) so that no
    dilated kernel (which ezkl rejects) is needed.
    """
    k_h, k_w = kernel
    if stride == 1:
        out = aten.convolution(
            x.transpose(0, 1), g.transpose(0, 1), None, [1, 1], [padding, padding],
            [1, 1], False, [0, 0], 1,
        )  # fmt: skip
        return out.transpose(0, 1)
    s = stride
    b, c_in, h, w = x.shape
    c_out, o_h, o_w = g.shape[1], g.shape[2], g.shape[3]
    q_h, q_w = -(-k_h // s), -(-k_w // s)
    rows, cols = (o_h + q_h - 1) * s, (o_w + q_w - 1) * s
    # Pad (zeros) then crop to a whole number of phases; cropped rows never meet the kernel.
    xp = aten.constant_pad_nd(
        x, [padding, max(0, cols - w - padding), padding, max(0, rows - h - padding)], 0.0
    )
    xp = xp[:, :, :rows, :cols].reshape(b, c_in, rows, cols)
    phases = xp.reshape(b, c_in, rows // s, s, cols // s, s).permute(1, 3, 5, 0, 2, 4)
    phases = phases.reshape(c_in * s * s, b, rows // s, cols // s)
    out = aten.convolution(
        phases, g.transpose(0, 1), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1
    )  # [c_in * s * s, c_out, q_h, q_w]
    out = out.reshape(c_in, s, s, c_out, q_h, q_w).permute(3, 0, 4, 1, 5, 2)
    out = out.reshape(c_out, c_in, q_h * s, q_w * s)
    return out[:, :, :k_h, :k_w]


def _conv_input_grad(
    g: torch.Tensor, weight: torch.Tensor, input_shape: torch.Size, stride: int, padding: int
) -> torch.Tensor:
    """d loss / d input of a 2-D convolution: the full transposed convolution, cropped.

    The transposed convolution runs without padding or output padding (ezkl's ConvTranspose
    fails on some output paddings); the ``padding`` border is then sliced off and rows or
    columns the forward pass never read (dropped by a stride) are zero-padded back.
    """
    h, w = input_shape[2], input_shape[3]
    full = aten.convolution(g, weight, None, [stride, stride], [0, 0], [1, 1], True, [0, 0], 1)
    f_h, f_w = full.shape[2], full.shape[3]
    if padding or f_h > h or f_w > w:
        full = full[:, :, padding : padding + h, padding : padding + w]
    short_h, short_w = h - full.shape[2], w - full.shape[3]
    if short_h or short_w:
        full = aten.constant_pad_nd(full, [0, short_w, 0, short_h], 0.0)
    # A static shape: the TorchScript exporter cannot infer Pad's, and a Conv needs it.
    return full.reshape(input_shape)


def _convolution_backward(
    grad_output: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias_sizes: list[int] | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
    output_padding: list[int],
    groups: int,
    output_mask: list[bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Convolution backward as a transposed convolution (input) and a convolution (weight)."""
    form = (
        f"stride={list(stride)}, padding={list(padding)}, dilation={list(dilation)}, "
        f"groups={groups}, transposed={transposed}, {weight.dim() - 2}-D"
    )
    if (
        weight.dim() != 4
        or transposed
        or groups != 1
        or any(d != 1 for d in dilation)
        or len(set(stride)) != 1
        or stride[0] not in _CONV_STRIDES
        or len(set(padding)) != 1
        or padding[0] not in _CONV_PADDINGS
    ):
        raise UnsupportedOperatorError(
            f"a convolution with {form} has no provable gradient here; supported: 2-D, "
            "groups=1, dilation=1, equal strides of 1 or 2, equal padding of 0 or 1",
            form=form,
        )
    s, p = stride[0], padding[0]
    k_h, k_w = weight.shape[2], weight.shape[3]
    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:
        grad_input = _conv_input_grad(grad_output, weight, input.shape, s, p)
    if output_mask[1]:
        grad_weight = _conv_weight_grad(input, grad_output, (k_h, k_w), s, p)
    if output_mask[2]:
        grad_bias = grad_output.sum([0, 2, 3])
    return grad_input, grad_weight, grad_bias


def _convolution(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
    output_padding: list[int],
    groups: int,
) -> Any:
    """A convolution with bias as one without plus an explicit Add of the bias expanded to
    the full output shape. ezkl fails (a scale assertion) on a Conv whose bias is computed
    from a graph input, as the weights are here; tract folds an Add of a broadcast
    ``[1, C, 1, 1]`` bias back into the Conv, so the bias is expanded first."""
    if bias is None:
        return NotImplemented
    out = aten.convolution(
        input, weight, None, stride, padding, dilation, transposed, output_padding, groups
    )
    return out + bias.reshape([1, -1] + [1] * (out.dim() - 2)).expand(out.shape)


def _avg_pool2d_backward(
    grad_output: torch.Tensor,
    input: torch.Tensor,
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> torch.Tensor:
    """Average-pool backward for kernel = stride: repeat each gradient over its window."""
    k_h, k_w = (list(kernel_size) * 2)[:2]  # ATen allows one value for both axes
    s_h, s_w = (list(stride or kernel_size) * 2)[:2]
    if (k_h, k_w) != (s_h, s_w) or any(padding) or ceil_mode:
        raise UnsupportedOperatorError(
            f"average pooling with kernel {list(kernel_size)}, stride {list(stride)}, padding "
            f"{list(padding)}, ceil_mode={ceil_mode} has no provable gradient here; "
            "supported: kernel = stride, no padding",
        )
    b, c, o_h, o_w = grad_output.shape
    h, w = input.shape[-2], input.shape[-1]
    g = grad_output.reshape(b, c, o_h, 1, o_w, 1).expand(b, c, o_h, k_h, o_w, k_w)
    g = g.reshape(b, c, o_h * k_h, o_w * k_w) / float(divisor_override or k_h * k_w)
    if (h, w) != (o_h * k_h, o_w * k_w):
        g = aten.constant_pad_nd(g, [0, w - o_w * k_w, 0, h - o_h * k_h], 0.0)
    return g.reshape(input.shape)


def _decompositions() -> dict[Any, Callable[..., Any]]:
    table = dict(core_aten_decompositions())
    table[aten.convolution_backward.default] = _convolution_backward
    table[aten.convolution.default] = _convolution
    table[aten.avg_pool2d_backward.default] = _avg_pool2d_backward
    return table


def _fix_graph(gm: torch.fx.GraphModule) -> None:
    """``sum(x, [])`` (an empty dim list, meaning all dims) becomes ``sum(x)``.

    The exporter turns the empty list into a ReduceSum that sums nothing; ``keepdim``
    becomes a reshape to all-ones dims.
    """
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != aten.sum.dim_IntList:
            continue
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        if dims:
            continue
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        source = node.args[0]
        dtype = {k: v for k, v in node.kwargs.items() if k == "dtype"}
        with gm.graph.inserting_after(node):
            total = gm.graph.call_function(aten.sum.default, (source,), dtype)
        replacement = total
        if keepdim:
            rank = len(source.meta["val"].shape) if "val" in source.meta else None
            if rank is None:
                raise InvalidModelError("cannot rewrite a keepdim sum over all dims")
            with gm.graph.inserting_after(total):
                replacement = gm.graph.call_function(aten.view.default, (total, [1] * rank))
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()


# --- tracing and export ---------------------------------------------------------------


def _loss_value(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "mse":
        return ((out - y) ** 2).mean()
    return -(y * F.log_softmax(out, dim=1)).sum(dim=1).mean()


def _loss_and_seed(
    out: torch.Tensor, y: torch.Tensor, loss: str, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and ``lr * d loss / d out`` in closed form, its constants folded into one
    factor.

    Back-propagating this seed instead of ``d loss / d out`` yields ``lr * gradient`` for
    every parameter at once, so the graph has no per-parameter ``lr`` product and no
    separate ``2`` and ``1/N`` factors: in the circuit each would be a fixed-point rescale.
    """
    if loss == "mse":
        diff = out - y
        return (diff * diff).mean(), diff * (2.0 * lr / out.numel())
    # Probability targets (one-hot rows sum to 1): d/d out = (softmax(out) - y) / B.
    log_p = F.log_softmax(out, dim=1)
    return -(y * log_p).sum(dim=1).mean(), (torch.exp(log_p) - y) * (lr / out.shape[0])


def _example_inputs(
    parameter_count: int, x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero (weights, x, y) of the step's shapes, to trace and export with."""
    return (
        torch.zeros(parameter_count, dtype=torch.float32),
        torch.zeros(x_shape, dtype=torch.float32),
        torch.zeros(y_shape, dtype=torch.float32),
    )


def _trace_step(
    module: nn.Module,
    loss: str,
    lr: float,
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    fold: bool,
) -> torch.fx.GraphModule:
    from torch.fx.experimental.proxy_tensor import make_fx

    params = _trainable(module)
    names = [n for n, _ in params]
    shapes = [tuple(p.shape) for _, p in params]
    sizes = [p.numel() for _, p in params]

    def forward(flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, sizes)
        values = {n: t.view(s) for n, t, s in zip(names, pieces, shapes, strict=True)}
        return torch.func.functional_call(module, values, (x,))

    def folded_step(
        flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Without has_aux, vjp returns (output, pullback); its stub also allows a 3-tuple.
        out, pullback = torch.func.vjp(lambda w: forward(w, x), flat)[:2]
        value, seed = _loss_and_seed(out, y, loss, lr)
        (scaled_grad,) = pullback(seed)
        return flat - scaled_grad, value.reshape(1)

    def autograd_step(
        flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grad, value = torch.func.grad_and_value(lambda w: _loss_value(forward(w, x), y, loss))(flat)
        return flat - lr * grad, value.reshape(1)

    examples = _example_inputs(sum(sizes), x_shape, y_shape)
    step = folded_step if fold else autograd_step
    gm = make_fx(step, decomposition_table=_decompositions())(*examples)
    _fix_graph(gm)
    return gm


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class _StepModule(nn.Module):
    """The traced step as a module with named inputs, for the TorchScript exporter."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__()
        self.step = gm

    def forward(
        self, weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        new_weights, loss = self.step(weights, x, y)
        return new_weights, loss


@dataclass(frozen=True)
class StepSpec:
    """What an exported training step takes and gives."""

    path: Path
    loss: Loss
    lr: float
    parameter_count: int
    parameter_names: list[str]
    parameter_shapes: list[tuple[int, ...]]
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    opset: int
    operators: dict[str, int] = field(default_factory=dict)
    input_names: tuple[str, ...] = INPUT_NAMES
    output_names: tuple[str, ...] = OUTPUT_NAMES

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        for key in ("x_shape", "y_shape", "output_shape", "input_names", "output_names"):
            d[key] = list(d[key])
        d["parameter_shapes"] = [list(s) for s in self.parameter_shapes]
        return d


def _check_onnx(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise InvalidModelError(f"the exported training step is not valid ONNX: {exc}") from exc
    unsupported = unsupported_operators(model)
    if unsupported:
        names = ", ".join(sorted(unsupported))
        raise UnsupportedOperatorError(
            f"the exported training step uses operators ezkl cannot put in a circuit: {names}",
            operators=sorted(unsupported),
            nodes={op: nodes[:5] for op, nodes in sorted(unsupported.items())},
        )


def export_sgd_step(
    module: nn.Module,
    loss: Loss,
    lr: float,
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    path: Path,
    opset: int = DEFAULT_OPSET,
    fold: bool = True,
) -> StepSpec:
    """Write one plain SGD step of ``module`` as ONNX at ``path`` (atomically).

    Inputs ``weights`` [P] (see :func:`flatten_params`), ``x`` ``x_shape`` and ``y``
    ``y_shape`` (targets shaped like the output for ``"mse"``; one-hot ``[B, C]`` for
    ``"cross_entropy"``, see ``graph.one_hot``); outputs ``new_weights`` [P] and ``loss`` [1].
    Only ``lr`` is taken: momentum and weight decay are not supported. Shapes are fixed.
    Unsupported layers are refused before any tracing.

    With ``fold`` (the default) the loss gradient is written in closed form with ``lr`` and
    the loss's constants folded into it (see ``_loss_and_seed``): fewer rescales, smaller
    circuits. ``fold=False`` differentiates the loss as autograd does and multiplies each
    gradient by ``lr``: the plain export, kept as the benchmark's baseline.
    """
    _check_args(loss, lr)
    check_module(module)
    x_shape, y_shape = tuple(int(d) for d in x_shape), tuple(int(d) for d in y_shape)
    work = copy.deepcopy(module)
    out_shape = _check_shapes(work, loss, x_shape, y_shape)
    params = _trainable(work)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            gm = _trace_step(work, loss, float(lr), x_shape, y_shape, fold)
        except ProverError:
            raise
        except Exception as exc:
            raise InvalidModelError(
                f"the training step of this module cannot be traced: {_first_line(exc)}"
            ) from exc
        examples = _example_inputs(sum(p.numel() for _, p in params), x_shape, y_shape)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                torch.onnx.export(
                    _StepModule(gm),
                    examples,
                    str(tmp),
                    input_names=list(INPUT_NAMES),
                    output_names=list(OUTPUT_NAMES),
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            except Exception as exc:
                raise UnsupportedOperatorError(
                    f"the training step cannot be exported to ONNX: {_first_line(exc)}"
                ) from exc
            model = onnx.load(str(tmp))
            _check_onnx(model)
            graph = StepGraph(
                loss=loss,
                lr=float(lr),
                parameter_names=[n for n, _ in params],
                parameter_shapes=[list(p.shape) for _, p in params],
                x_shape=list(x_shape),
                y_shape=list(y_shape),
            )
            describe(model, graph)
            onnx.save(model, str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return StepSpec(
        path=path,
        loss=loss,
        lr=float(lr),
        parameter_count=sum(p.numel() for _, p in params),
        parameter_names=[n for n, _ in params],
        parameter_shapes=[tuple(p.shape) for _, p in params],
        x_shape=x_shape,
        y_shape=y_shape,
        output_shape=out_shape,
        opset=opset,
        operators=dict(sorted(Counter(n.op_type for n in model.graph.node).items())),
    )


def reference_step(
    module: nn.Module,
    loss: Loss,
    lr: float,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
) -> tuple[np.ndarray, float]:
    """One ``torch.optim.SGD(lr)`` step on a deep copy of ``module``: (new weights, loss).

    ``y`` is laid out as for :func:`export_sgd_step` (one-hot for cross-entropy). The
    module itself is left unchanged.
    """
    _check_args(loss, lr)
    work = copy.deepcopy(module)
    optimizer = torch.optim.SGD([p for _, p in _trainable(work)], lr=lr)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
    optimizer.zero_grad()
    out = work(xt)
    value = F.mse_loss(out, yt) if loss == "mse" else F.cross_entropy(out, yt)
    value.backward()
    optimizer.step()
    return flatten_params(work), float(value.detach())
