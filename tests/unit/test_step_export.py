"""One SGD training step exported as ONNX matches torch.optim.SGD, and bad models are refused."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import ezkl
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prover.circuits.intake import load_model
from prover.config import Settings
from prover.errors import InvalidInputError, InvalidModelError, UnsupportedOperatorError
from prover.training import step_export
from prover.training.graph import describe, one_hot, read_step_graph
from prover.training.step_export import (
    export_sgd_step,
    flatten_params,
    reference_step,
    unflatten_into,
)

TOLERANCE = 1e-6
LR = 0.1


def _run(path: Path, weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    new_weights, loss = session.run(None, {"weights": weights, "x": x, "y": y})
    assert loss.shape == (1,)
    return new_weights, float(loss[0])


def _batch(rng: np.random.Generator, loss: str, x_shape: tuple, y_shape: tuple) -> tuple:
    x = rng.standard_normal(x_shape).astype(np.float32)
    if loss == "cross_entropy":
        y = one_hot(rng.integers(0, y_shape[1], y_shape[0]), y_shape[1])
    else:
        y = rng.standard_normal(y_shape).astype(np.float32)
    return x, y


def _check_step(
    module: nn.Module,
    loss: str,
    x_shape: tuple,
    y_shape: tuple,
    tmp_path: Path,
    fold: bool = True,
) -> tuple[float, float]:
    """Export, run one step in onnxruntime, compare with torch SGD; the max abs diffs."""
    before = flatten_params(module)
    path = tmp_path / "step.onnx"
    spec = export_sgd_step(module, loss, LR, x_shape, y_shape, path, fold=fold)  # type: ignore[arg-type]
    assert spec.parameter_count == before.size
    x, y = _batch(np.random.default_rng(0), loss, x_shape, y_shape)
    weights = flatten_params(module)
    new_weights, value = _run(spec.path, weights, x, y)
    expected_weights, expected_loss = reference_step(module, loss, LR, x, y)  # type: ignore[arg-type]
    np.testing.assert_array_equal(flatten_params(module), before)  # module left unchanged
    weight_diff = float(np.max(np.abs(new_weights - expected_weights)))
    loss_diff = abs(value - expected_loss)
    assert weight_diff <= TOLERANCE, weight_diff
    assert loss_diff <= TOLERANCE, loss_diff
    assert float(np.max(np.abs(expected_weights - weights))) > 1e-4  # the step moved
    return weight_diff, loss_diff


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "plain"])
def test_mlp_cross_entropy_matches_sgd(tmp_path: Path, fold: bool) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    _check_step(module, "cross_entropy", (5, 4), (5, 3), tmp_path, fold)


def test_the_folded_export_has_no_per_parameter_lr_product(tmp_path: Path) -> None:
    """Folding lr into the loss gradient removes the [P]-wide multiply (one rescale per
    weight in the circuit) and the loss constants' multiplies."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    counts = {}
    for fold in (True, False):
        path = export_sgd_step(
            module, "mse", LR, (4, 4), (4, 3), tmp_path / f"{fold}.onnx", fold=fold
        ).path
        counts[fold] = sum(
            n.op_type in ("Mul", "Div", "Pow") for n in onnx.load(str(path)).graph.node
        )
    assert counts[True] == 2 and counts[False] > counts[True], counts


def test_the_exported_graph_describes_itself(tmp_path: Path) -> None:
    """The graph carries loss, lr and shapes (ONNX metadata) for a service without torch;
    a description that disagrees with the graph is refused."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    spec = export_sgd_step(module, "cross_entropy", LR, (5, 4), (5, 3), tmp_path / "s.onnx")
    graph = read_step_graph(spec.path)
    assert (graph.loss, graph.lr, graph.x_shape, graph.y_shape) == (
        "cross_entropy",
        LR,
        [5, 4],
        [5, 3],
    )
    assert graph.parameter_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert graph.parameter_count == spec.parameter_count == 51
    model = onnx.load(str(spec.path))
    describe(model, replace(graph, x_shape=[6, 4]))
    onnx.save(model, str(tmp_path / "lying.onnx"))
    with pytest.raises(InvalidModelError, match="'x' is shaped \\[5, 4\\]"):
        read_step_graph(tmp_path / "lying.onnx")


def test_mlp_sigmoid_tanh_mse_matches_sgd(tmp_path: Path) -> None:
    torch.manual_seed(1)
    module = nn.Sequential(
        nn.Linear(4, 6), nn.Sigmoid(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2)
    )
    _check_step(module, "mse", (5, 4), (5, 2), tmp_path)


def test_cnn_cross_entropy_matches_sgd(tmp_path: Path) -> None:
    torch.manual_seed(2)
    module = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * 3 * 3, 3),
    )
    _check_step(module, "cross_entropy", (2, 1, 6, 6), (2, 3), tmp_path)


def _strided_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2),
        nn.Sigmoid(),
        nn.AvgPool2d(2),
        nn.Conv2d(3, 2, 3, stride=2, padding=1),
        nn.Tanh(),
        nn.Conv2d(2, 2, 3, padding=1),
        nn.Flatten(),
        nn.Linear(2, 2),
    )


def _short_transpose_cnn() -> nn.Module:
    # The last conv's 1x1 output back-projects to 3x3 of its 4x4 input: a zero border.
    return nn.Sequential(
        nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2), nn.Flatten(), nn.Linear(2, 3)
    )


@pytest.mark.parametrize(
    ("make", "x_shape", "y_shape"),
    [(_strided_cnn, (3, 2, 9, 10), (3, 2)), (_short_transpose_cnn, (2, 1, 4, 4), (2, 3))],
)
def test_strided_cnn_mse_matches_sgd(
    make: object, x_shape: tuple, y_shape: tuple, tmp_path: Path
) -> None:
    """Stride 2, convolutions that need an input gradient, odd sizes a stride or pool drops."""
    torch.manual_seed(3)
    _check_step(make(), "mse", x_shape, y_shape, tmp_path)  # type: ignore[operator]


def test_second_step_matches_two_sgd_steps(tmp_path: Path) -> None:
    torch.manual_seed(4)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    spec = export_sgd_step(module, "cross_entropy", LR, (5, 4), (5, 3), tmp_path / "s.onnx")
    rng = np.random.default_rng(1)
    batches = [_batch(rng, "cross_entropy", (5, 4), (5, 3)) for _ in range(2)]

    weights = flatten_params(module)
    losses = []
    for x, y in batches:
        weights, value = _run(spec.path, weights, x, y)
        losses.append(value)

    trained = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    trained.load_state_dict(module.state_dict())
    optimizer = torch.optim.SGD(trained.parameters(), lr=LR)
    expected_losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(trained(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        expected_losses.append(float(loss.detach()))

    assert float(np.max(np.abs(weights - flatten_params(trained)))) <= TOLERANCE
    assert np.max(np.abs(np.array(losses) - expected_losses)) <= TOLERANCE


def test_frozen_parameters_stay_out_of_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(5)
    module = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    module[0].requires_grad_(False)
    spec = export_sgd_step(module, "mse", LR, (3, 4), (3, 2), tmp_path / "s.onnx")
    assert spec.parameter_names == ["2.weight", "2.bias"]
    assert spec.parameter_count == 8 * 2 + 2
    x, y = _batch(np.random.default_rng(2), "mse", (3, 4), (3, 2))
    new_weights, _ = _run(spec.path, flatten_params(module), x, y)
    expected, _ = reference_step(module, "mse", LR, x, y)
    assert float(np.max(np.abs(new_weights - expected))) <= TOLERANCE


def test_passes_intake_and_spec_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(6)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    spec = export_sgd_step(module, "cross_entropy", LR, (5, 4), (5, 3), tmp_path / "s.onnx")
    info = load_model(spec.path, Settings(data_dir=tmp_path))
    assert [(t.name, t.shape) for t in info.inputs] == [
        ("weights", (67,)),
        ("x", (5, 4)),
        ("y", (5, 3)),
    ]
    assert [(t.name, t.shape) for t in info.outputs] == [("new_weights", (67,)), ("loss", (1,))]
    assert list(tmp_path.iterdir()) == [spec.path]  # no temp file left behind
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["parameter_count"] == 67
    assert d["parameter_names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert d["parameter_shapes"] == [[8, 4], [8], [3, 8], [3]]
    assert (d["loss"], d["lr"], d["x_shape"], d["y_shape"]) == ("cross_entropy", LR, [5, 4], [5, 3])
    assert "Gradient" not in d["operators"]


class _OwnParameter(nn.Module):
    """A parameter used directly in ``forward`` rather than through a supported layer."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(8))
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * self.scale


@pytest.mark.parametrize(
    ("module", "named"),
    [
        (
            nn.Sequential(
                OrderedDict(conv=nn.Conv2d(1, 2, 3), bn1=nn.BatchNorm2d(2), flat=nn.Flatten())
            ),
            "layer 'bn1' (BatchNorm2d)",
        ),
        (nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), "layer '1' (LSTM)"),
        (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), "layer '0' (Conv2d) uses groups=2"),
        (nn.Sequential(nn.Conv2d(1, 1, 3, stride=3)), "layer '0' (Conv2d) uses stride"),
        (nn.Sequential(nn.Conv2d(1, 1, 3, stride=(1, 2))), "uses stride=(1, 2)"),
        (nn.Sequential(nn.Conv2d(1, 1, 3, padding=2)), "uses padding=(2, 2)"),
        (_OwnParameter(), "the root module (_OwnParameter)"),
        (nn.Sequential(nn.AvgPool2d(3, stride=1), nn.Flatten()), "kernel_size=3 != stride=1"),
    ],
)
def test_unsupported_layers_are_refused_before_tracing(
    module: nn.Module, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_trace(*_args: object) -> None:
        raise AssertionError("traced an unsupported module")

    monkeypatch.setattr(step_export, "_trace_step", no_trace)
    with pytest.raises(UnsupportedOperatorError, match="supported: Linear, Conv2d") as info:
        export_sgd_step(module, "mse", LR, (1, 8, 1, 1), (1, 8), tmp_path / "s.onnx")
    assert named in info.value.message
    assert not (tmp_path / "s.onnx").exists()


def test_unsupported_operator_in_custom_forward_is_named(tmp_path: Path) -> None:
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fmod(self.fc(x), 1.5)

    with pytest.raises(UnsupportedOperatorError, match="Mod"):
        export_sgd_step(Wrapped(), "mse", LR, (2, 4), (2, 2), tmp_path / "s.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_step_compiles_as_an_ezkl_circuit(kind: str, tmp_path: Path) -> None:
    """ezkl turns the step into a circuit (mock-proven) that tracks the float step."""
    torch.manual_seed(8)
    if kind == "mlp":
        module: nn.Module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        x_shape: tuple[int, ...] = (4, 4)
    else:
        module = nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(2 * 2 * 2, 3),
        )  # fmt: skip
        x_shape = (2, 1, 4, 4)
    y_shape = (x_shape[0], 3)
    spec = export_sgd_step(module, "cross_entropy", LR, x_shape, y_shape, tmp_path / "s.onnx")
    rng = np.random.default_rng(3)
    weights = flatten_params(module)
    samples = []
    for _ in range(3):
        x, y = _batch(rng, "cross_entropy", x_shape, y_shape)
        samples.append([weights, x, y])
    data = {
        "input_data": [
            np.concatenate([s[i].reshape(-1) for s in samples]).tolist() for i in range(3)
        ]
    }
    (tmp_path / "cal.json").write_text(json.dumps(data))
    first = {"input_data": [a.reshape(-1).tolist() for a in samples[0]]}
    (tmp_path / "input.json").write_text(json.dumps(first))
    model, settings = str(spec.path), str(tmp_path / "settings.json")
    compiled, witness = str(tmp_path / "model.compiled"), str(tmp_path / "witness.json")
    run_args = ezkl.PyRunArgs()
    run_args.variables = [("batch_size", 1)]  # type: ignore[attr-defined]
    assert ezkl.gen_settings(model, settings, py_run_args=run_args)
    assert ezkl.calibrate_settings(
        str(tmp_path / "cal.json"), model, settings, "resources", 2.0, [13], [1], None
    )
    assert ezkl.compile_circuit(model, compiled, settings)
    ezkl.gen_witness(str(tmp_path / "input.json"), compiled, witness, None, None)
    assert ezkl.mock(witness, compiled)
    got = json.loads(Path(witness).read_text())["pretty_elements"]["rescaled_outputs"]
    expected = _run(spec.path, *samples[0])
    assert np.max(np.abs(np.asarray(got[0], dtype=float) - expected[0])) < 0.01
    assert abs(float(got[1][0]) - expected[1]) < 0.01


def test_unexportable_or_unprovable_forward_is_refused(tmp_path: Path) -> None:
    class Qr(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.qr(self.fc(x).T)[0].T

    class Dilated(nn.Module):  # passes the layer check; the gradient's form does not
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.conv.weight, dilation=2).flatten(1)

    with pytest.raises(UnsupportedOperatorError, match=r"cannot be exported to ONNX: .*linalg_qr"):
        export_sgd_step(Qr(), "mse", LR, (2, 4), (2, 2), tmp_path / "s.onnx")
    with pytest.raises(UnsupportedOperatorError, match=r"dilation=\[2, 2\].*no provable gradient"):
        export_sgd_step(Dilated(), "mse", LR, (1, 1, 5, 5), (1, 1), tmp_path / "s.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    module = nn.Sequential(nn.Linear(4, 3))
    path = tmp_path / "s.onnx"
    with pytest.raises(InvalidInputError, match="hinge"):
        export_sgd_step(module, "hinge", LR, (2, 4), (2, 3), path)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be positive"):
        export_sgd_step(module, "mse", 0.0, (2, 4), (2, 3), path)
    with pytest.raises(InvalidInputError, match="model output shape"):
        export_sgd_step(module, "cross_entropy", LR, (2, 4), (2,), path)
    with pytest.raises(InvalidInputError, match="does not run"):
        export_sgd_step(module, "mse", LR, (2, 5), (2, 3), path)
    with pytest.raises(TypeError):  # plain SGD only: no momentum, no weight decay
        export_sgd_step(module, "mse", LR, (2, 4), (2, 3), path, momentum=0.9)  # type: ignore[call-arg]
    assert not path.exists()


def test_parameter_vector_and_labels() -> None:
    torch.manual_seed(7)
    first, last = nn.Linear(3, 2), nn.Linear(2, 1)
    module = nn.Sequential(first, nn.ReLU(), last)
    flat = flatten_params(module)
    assert flat.dtype == np.float32 and flat.shape == (3 * 2 + 2 + 2 + 1,)
    unflatten_into(module, np.arange(flat.size, dtype=np.float32))
    assert first.weight[1, 0].item() == 3.0 and last.bias.item() == 10.0
    with pytest.raises(InvalidInputError, match="11 trainable"):
        unflatten_into(module, np.zeros(5))
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert one_hot(np.array([1]), 2).dtype == np.float32
    with pytest.raises(InvalidInputError, match=r"outside 0\.\.2"):
        one_hot([3], 3)


@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_over_empty_dim_list_becomes_sum_of_all(keepdim: bool) -> None:
    from torch.fx.experimental.proxy_tensor import make_fx

    def f(t: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.sum.dim_IntList(t, [], keepdim) * 2

    t = torch.arange(6.0).reshape(2, 3)
    gm = make_fx(f)(t)
    step_export._fix_graph(gm)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.sum.dim_IntList not in targets
    assert torch.ops.aten.sum.default in targets
    expected = torch.full((1, 1) if keepdim else (), 30.0)
    torch.testing.assert_close(gm(t), expected)
