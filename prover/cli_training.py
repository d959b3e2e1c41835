"""``prover train``: compile a model's SGD step into a circuit, prove steps, verify chains."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import typer

from prover.cli import JsonOpt, _emit, _progress, _run, _store, app
from prover.config import get_settings
from prover.errors import InvalidInputError

train_app = typer.Typer(no_args_is_help=True, help="Proven training: SGD steps and chains.")
app.add_typer(train_app, name="train")


def load_module(ref: str) -> Any:
    """``path/to/file.py:factory`` → the nn.Module the factory returns."""
    path, _, name = ref.partition(":")
    if not name or not Path(path).is_file():
        raise InvalidInputError(f"{ref!r}: expected FILE.py:FACTORY naming a function in a file")
    spec = importlib.util.spec_from_file_location(f"prover_user_{Path(path).stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise InvalidInputError(f"{path} has no function {name!r}")
    return factory()


def load_batch(path: Path, loss: str, classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A batch file ``{"x": [...], "y": [...]}``; for cross-entropy, y may hold class
    indices (turned one-hot) or one-hot rows."""
    from prover.circuits.data import load_json
    from prover.training.step_export import one_hot

    data = load_json(path)
    if not isinstance(data, dict) or "x" not in data or "y" not in data:
        raise InvalidInputError(f'{path}: a batch file is {{"x": [...], "y": [...]}}')
    x = np.asarray(data["x"], dtype=np.float32)
    y = np.asarray(data["y"], dtype=np.float32)
    if loss == "cross_entropy" and y.ndim == 1:
        if classes is None:
            raise InvalidInputError("class labels need the number of classes")
        y = one_hot(y.astype(int), classes)
    return x, y


def step_batch(path: Path, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A batch file laid out for a step circuit (its ``training`` record)."""
    classes = meta["y_shape"][-1] if meta["loss"] == "cross_entropy" else None
    return load_batch(path, meta["loss"], classes)


def load_weights(path: Path) -> np.ndarray:
    """A weights file: ``{"weights": [...]}``, a step record, or a flat list."""
    from prover.circuits.data import load_json

    data = load_json(path)
    if isinstance(data, dict):
        data = data.get("weights", data.get("new_weights"))
    if not isinstance(data, list):
        raise InvalidInputError(f'{path}: expected {{"weights": [...]}} or a list of numbers')
    return np.asarray(data, dtype=np.float64).reshape(-1)


@train_app.command("compile")
def train_compile(
    model: str = typer.Argument(..., help="FILE.py:FACTORY returning the nn.Module."),
    loss: str = typer.Option("cross_entropy", help="cross_entropy or mse."),
    lr: float = typer.Option(..., help="SGD learning rate (no momentum, no weight decay)."),
    batch: int = typer.Option(..., help="Batch size of every step."),
    sample_batch: Path = typer.Option(..., help='A batch {"x", "y"} to calibrate on.'),
    weights_out: Path | None = typer.Option(None, help="Write the initial weights here."),
    reusable_verifier: bool = typer.Option(
        True, help="Keys for ezkl's reusable EVM verifier (step verifiers exceed 24 KB)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Compile one SGD step of a model into a circuit (weights, batch in; new weights out;
    all as Poseidon commitments)."""

    def action() -> None:
        import torch

        from prover.training.step_export import flatten_params
        from prover.training.steps import commitment, compile_step

        module = load_module(model)
        x, _ = load_batch(sample_batch, "mse", None)
        with torch.no_grad():
            classes = int(module(torch.as_tensor(x)).shape[-1])
        x, y = load_batch(sample_batch, loss, classes)
        if x.shape[0] != batch:
            raise InvalidInputError(f"the sample batch has {x.shape[0]} rows; --batch is {batch}")
        settings = get_settings()
        with _progress(not as_json, "train compile") as progress:
            record = compile_step(
                module,
                loss,
                lr,
                x,
                y,
                _store(),
                settings,
                progress,
                reusable_verifier,  # type: ignore[arg-type]
            )
        weights = flatten_params(module)
        meta = record["training"]
        if weights_out is not None:
            weights_out.write_text(json.dumps({"weights": weights.tolist()}))
        result = {
            "circuit_id": record["id"],
            "logrows": record["logrows"],
            "training": meta,
            "initial_weights_commitment": commitment(weights, meta["scale"]),
            "dev_srs": record["dev_srs"],
        }

        def human(out: Any) -> None:
            out.print(f"step circuit {record['id']}  logrows {record['logrows']}")
            out.print(
                f"scale {meta['scale']}  quantization error {meta['quantization_error']:.3g}  "
                f"mean update {meta['mean_update']:.3g}  ({meta['error_over_update']:.1%})"
            )
            out.print(f"initial weights {result['initial_weights_commitment']}")

        _emit(result, as_json, human)

    _run(as_json, action)


@train_app.command("step")
def train_step(
    circuit_id: str = typer.Argument(..., help="Step circuit id (or a unique prefix)."),
    weights: Path = typer.Option(..., help='Weights {"weights": [...]} (or a step record).'),
    batch: Path = typer.Option(..., help='Batch {"x": [...], "y": [...]}.'),
    out: Path | None = typer.Option(None, help="Write the new weights here (next --weights)."),
    as_json: bool = JsonOpt,
) -> None:
    """Prove one SGD step; prints the proof id, new weights' commitment and the loss."""

    def action() -> None:
        from prover.training.steps import prove_step

        store = _store()
        circuit = store.read_record("circuits", circuit_id)
        meta = store.read_record("training", circuit["id"])
        x, y = step_batch(batch, meta)
        with _progress(not as_json, "train step") as progress:
            step = prove_step(store, circuit["id"], load_weights(weights), x, y, progress)
        if out is not None:
            out.write_text(json.dumps({"weights": step["new_weights"]}))
        result = {**step, "proof_id": step["proof_id"]}

        def human(console: Any) -> None:
            c = step["commitments"]
            console.print(f"proof    {step['proof_id']}")
            console.print(f"loss     {step['loss']:.6f}  (float {step['float_loss']:.6f})")
            console.print(f"weights  {c['weights_in']} -> {c['weights_out']}")
            console.print(f"batch    x {c['x']}  y {c['y']}")
            console.print(f"error vs float step {step['max_error_vs_float']:.3g}")

        _emit(result, as_json, human)

    _run(as_json, action)


@train_app.command("verify-chain")
def train_verify_chain(
    proof_ids: list[str] = typer.Argument(..., help="Step proof ids, in order."),
    initial: str | None = typer.Option(None, help="Expected initial weights commitment."),
    batches: list[Path] = typer.Option([], "--batch", help="Each step's batch file, in order."),
    as_json: bool = JsonOpt,
) -> None:
    """Check every step proof and that each starts from the previous one's new weights
    (and, if given, from the initial weights and on the committed batches)."""

    def action() -> None:
        from prover.training.steps import batch_commitment, verify_chain

        store = _store()
        expected = None
        if batches:
            first = store.read_record("proofs", proof_ids[0])
            meta = store.read_record("training", first["circuit_id"])
            expected = [batch_commitment(*step_batch(p, meta), meta["scale"]) for p in batches]
        result = verify_chain(store, proof_ids, expected, initial)

        def human(console: Any) -> None:
            if result["valid"]:
                console.print(
                    f"[green]valid[/green]  {len(proof_ids)} steps, final weights "
                    f"{result['final_weights']}"
                )
            else:
                console.print(
                    f"[red]BROKEN[/red] at step {result['broken_at']}: {result['reason']}"
                )

        _emit(result, as_json, human)
        if not result["valid"]:
            raise typer.Exit(1)

    _run(as_json, action)
