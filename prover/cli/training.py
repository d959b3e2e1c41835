"""``prover train``: proven training. Export or compile a model's SGD step into a circuit,
prove steps and runs of steps, verify that a chain of step proofs links up, and put a
service run on the chain's TrainingLedger."""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from prover.cli import remote as api
from prover.cli.inputs import store
from prover.cli.output import JsonOpt, emit, progress, run_action
from prover.cli.remote import RemoteOpt
from prover.config import get_settings
from prover.errors import InvalidInputError

if TYPE_CHECKING:  # numpy is imported by the commands that need it
    import numpy as np

train_app = typer.Typer(no_args_is_help=True, help="Proven training: SGD steps and chains.")


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


def load_batch(path: Path) -> dict[str, Any]:
    """A batch file ``{"x": [...], "y": [...]}`` (for cross-entropy, y may hold class
    indices or one-hot rows; the step circuit lays it out)."""
    from prover.circuits.data import load_json

    data = load_json(path)
    if not isinstance(data, dict) or "x" not in data or "y" not in data:
        raise InvalidInputError(f'{path}: a batch file is {{"x": [...], "y": [...]}}')
    return {"x": data["x"], "y": data["y"]}


def load_weights(path: Path) -> np.ndarray:
    """A weights file: ``{"weights": [...]}``, a step record, or a flat list."""
    import numpy as np

    from prover.circuits.data import load_json

    data = load_json(path)
    if isinstance(data, dict):
        data = data.get("weights", data.get("new_weights"))
    if not isinstance(data, list):
        raise InvalidInputError(f'{path}: expected {{"weights": [...]}} or a list of numbers')
    return np.asarray(data, dtype=np.float64).reshape(-1)


def _export(
    model: str, loss: str, lr: float, batch: int, sample_batch: Path, out: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Export the model's step graph to ``out``; returns (graph description, sample step)."""
    import numpy as np
    import torch

    from prover.training.graph import read_step_graph, step_batch
    from prover.training.step_export import export_sgd_step, flatten_params

    module = load_module(model)
    data = load_batch(sample_batch)
    x = np.asarray(data["x"], dtype=np.float32)
    if x.shape[0] != batch:
        raise InvalidInputError(f"the sample batch has {x.shape[0]} rows; --batch is {batch}")
    with torch.no_grad():
        y_shape = tuple(module(torch.as_tensor(x)).shape)
    spec = export_sgd_step(module, loss, lr, x.shape, y_shape, out)  # type: ignore[arg-type]
    graph = read_step_graph(spec.path)
    x, y = step_batch(graph, data["x"], data["y"])
    sample = {"weights": flatten_params(module).tolist(), "x": x.tolist(), "y": y.tolist()}
    return graph.to_dict(), sample


@train_app.command("export")
def train_export(
    model: str = typer.Argument(..., help="FILE.py:FACTORY returning the nn.Module."),
    loss: str = typer.Option("cross_entropy", help="cross_entropy or mse."),
    lr: float = typer.Option(..., help="SGD learning rate (no momentum, no weight decay)."),
    batch: int = typer.Option(..., help="Batch size of every step."),
    sample_batch: Path = typer.Option(..., help='A batch {"x", "y"} fixing the shapes.'),
    out: Path = typer.Option(Path("sgd_step.onnx"), "-o", "--out", help="The step graph."),
    sample_out: Path | None = typer.Option(
        None, help="Write the sample step {weights, x, y} here (to compile the graph with)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Export one SGD step of a model as an ONNX graph (weights, x, y → new weights, loss)
    that carries its own description; the service compiles such graphs."""

    def action() -> None:
        graph, sample = _export(model, loss, lr, batch, sample_batch, out)
        if sample_out is not None:
            sample_out.write_text(json.dumps(sample))
        result = {"path": str(out), **graph}

        def human(console: Console) -> None:
            console.print(
                f"step graph {out}  {graph['parameter_count']} weights  loss {graph['loss']}  "
                f"lr {graph['lr']}  x {graph['x_shape']}  y {graph['y_shape']}"
            )

        emit(result, as_json, human)

    run_action(as_json, action)


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
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Compile one SGD step of a model into a circuit (weights, batch in; new weights out;
    all as Poseidon commitments)."""

    def action() -> None:
        from prover.training.steps import commitment, compile_step_graph

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sgd_step.onnx"
            _, sample = _export(model, loss, lr, batch, sample_batch, path)
            if remote:
                record = api.compile_step(path, sample, reusable_verifier, as_json)
            else:
                with progress(not as_json, "train compile") as say:
                    record = compile_step_graph(
                        path, sample, store(), get_settings(), say, reusable_verifier
                    )
        meta = record["training"]
        if weights_out is not None:
            weights_out.write_text(json.dumps({"weights": sample["weights"]}))
        result = {
            "circuit_id": record["id"],
            "logrows": record["logrows"],
            "training": meta,
            "initial_weights_commitment": commitment(sample["weights"], meta["scale"]),
            "dev_srs": record["dev_srs"],
        }

        def human(out: Console) -> None:
            out.print(f"step circuit {record['id']}  logrows {record['logrows']}")
            out.print(
                f"scale {meta['scale']}  quantization error {meta['quantization_error']:.3g}  "
                f"mean update {meta['mean_update']:.3g}  ({meta['error_over_update']:.1%})"
            )
            out.print(f"initial weights {result['initial_weights_commitment']}")

        emit(result, as_json, human)

    run_action(as_json, action)


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

        artifacts = store()
        circuit = artifacts.read_record("circuits", circuit_id)
        data = load_batch(batch)
        with progress(not as_json, "train step") as say:
            step = prove_step(
                artifacts, circuit["id"], load_weights(weights), data["x"], data["y"], say
            )
        if out is not None:
            out.write_text(json.dumps({"weights": step["new_weights"]}))

        def human(console: Console) -> None:
            c = step["commitments"]
            console.print(f"proof    {step['proof_id']}")
            console.print(f"loss     {step['loss']:.6f}  (float {step['float_loss']:.6f})")
            console.print(f"weights  {c['weights_in']} -> {c['weights_out']}")
            console.print(f"batch    x {c['x']}  y {c['y']}")
            console.print(f"error vs float step {step['max_error_vs_float']:.3g}")

        emit(step, as_json, human)

    run_action(as_json, action)


@train_app.command("run")
def train_run(
    circuit_id: str = typer.Argument(..., help="Step circuit id (or a unique prefix)."),
    weights: Path = typer.Option(..., help='Initial weights {"weights": [...]}.'),
    batches: list[Path] = typer.Option(..., "--batch", help="One batch file per step, in order."),
    out: Path | None = typer.Option(None, help="Write the final weights here."),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Prove one SGD step per batch, each from the weights the previous step produced
    (with --remote: a training run of the service, one queued job per step)."""

    def action() -> None:
        data = [load_batch(p) for p in batches]
        initial = load_weights(weights).tolist()
        if remote:
            run = api.train(circuit_id, initial, data, as_json)
        else:
            from prover.training.steps import prove_steps

            artifacts = store()
            circuit = artifacts.read_record("circuits", circuit_id)
            with progress(not as_json, "train run") as say:
                steps = prove_steps(artifacts, circuit["id"], initial, data, say)
            run = {
                "circuit_id": circuit["id"],
                "state": "succeeded",
                "steps": [{"step": i, **s} for i, s in enumerate(steps)],
                "final_weights": steps[-1]["new_weights"],
                "final_commitment": steps[-1]["commitments"]["weights_out"],
            }
        if out is not None:
            out.write_text(json.dumps({"weights": run["final_weights"]}))

        def human(console: Console) -> None:
            for s in run["steps"]:
                console.print(
                    f"step {s['step']:>3}  proof {s['proof_id'][:16]}  loss {s['loss']:.6f} "
                    f"(float {s['float_loss']:.6f})  error vs float {s['max_error_vs_float']:.3g}"
                )
            console.print(f"final weights {run['final_commitment']}")

        emit(run, as_json, human)

    run_action(as_json, action)


@train_app.command("verify-chain")
def train_verify_chain(
    proof_ids: list[str] = typer.Argument(..., help="Step proof ids, in order."),
    initial: str | None = typer.Option(None, help="Expected initial weights commitment."),
    batches: list[Path] = typer.Option([], "--batch", help="Each step's batch file, in order."),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check every step proof and that each starts from the previous one's new weights
    (and, if given, from the initial weights and on the committed batches)."""

    def action() -> None:
        data = [load_batch(p) for p in batches] or None
        if remote:
            with api.client() as service:
                result = service.verify_chain(proof_ids, data, initial)
        else:
            from prover.training.steps import batch_commitments, verify_chain

            artifacts = store()
            expected = batch_commitments(artifacts, proof_ids[0], data) if data else None
            result = verify_chain(artifacts, proof_ids, expected, initial)

        def human(console: Console) -> None:
            if result["valid"]:
                console.print(
                    f"[green]valid[/green]  {len(proof_ids)} steps, final weights "
                    f"{result['final_weights']}"
                )
            else:
                console.print(
                    f"[red]BROKEN[/red] at step {result['broken_at']}: {result['reason']}"
                )

        emit(result, as_json, human)
        if not result["valid"]:
            raise typer.Exit(1)

    run_action(as_json, action)


@train_app.command("ledger")
def train_ledger(
    run_id: str = typer.Argument(..., help="A succeeded training run of the service."),
    as_json: bool = JsonOpt,
) -> None:
    """Put a service training run on the chain's TrainingLedger (through the service): the
    run starts with its initial weights and batch schedule pinned, and every step proof is
    submitted in order; repeating it submits only what the ledger lacks."""

    def action() -> None:
        result = api.run_job(lambda client: client.put_on_ledger(run_id), as_json)

        def human(console: Console) -> None:
            schedule = result["batch_schedule"]
            console.print(
                f"run {result['run_key']} on ledger {result['ledger_address']} "
                f"(chain {result['chain_id']}): {result['steps']} steps accepted"
            )
            console.print(
                f"batch schedule {schedule['root']} ({schedule['batches']} batches); "
                f"current weights {result['current_weights']}"
            )
            for s in result["submitted"]:
                console.print(
                    f"step {s['step']:>3}  accepted  tx {s['tx_hash']}  gas {s['gas_used']}"
                )

        emit(result, as_json, human)

    run_action(as_json, action)
