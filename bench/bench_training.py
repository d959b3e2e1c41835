"""Benchmark proven SGD steps: step circuits from the settings search against ezkl's defaults.

For every example training model the step circuit (inputs weights, x, y; outputs new
weights, loss; all hashed) is compiled three ways, each into its own fresh temporary data
dir and in its own child process, all with the same hashed visibility, sample step and
reusable-verifier keys:

* ``ezkl-default`` (the baseline): the plain export (``export_sgd_step(fold=False)``: the
  loss differentiated as autograd does, each gradient times ``lr``) compiled with ezkl's
  own ``calibrate_settings`` (``CompileOptions(strategy="ezkl-default")``);
* ``folded-default``: the product's export (``lr`` and the loss's constants folded into the
  closed-form loss gradient) with ezkl's own calibration: what the export alone buys;
* ``search``: what ``compile_step`` does: the folded export and the settings search over
  ``STEP_SCALES``.

With ``--floors`` two more circuits per model bound what any step circuit of this ezkl
could reach, each found by the same search:

* ``floor-no-commitments``: the folded step with private inputs and outputs: the step
  arithmetic alone, what is left if commitments cost nothing;
* ``floor-commitments-only``: a graph with the step's inputs and outputs and no arithmetic
  (new weights = weights, loss = sum of y), hashed like a step: what the Poseidon
  commitments alone cost (ezkl hashes in its own columns, ~41 rows per value).

A step circuit with Poseidon commitments holds both parts, so it cannot prove faster than
either floor: ``baseline / floor`` is the most any search over this ezkl could gain.

The models are ``tiny`` (the 4-6-3 MLP of ``tests/helpers/models.py``, batch ``step_batch(0)``,
MSE, lr 0.5) and ``digits_train`` (``models/digits_train``: the 16-8-10 MLP on its first
batch of 8, MSE on one-hot targets, lr 1.0). For each circuit it reports logrows, the
chosen settings (scale, decomposition base^legs, inner columns), the compile wall time and
the setup time recorded by compile, the median prove time of ``--repeat`` step proofs
(``prove_input(..., fresh=True)`` on the sample step, each in a fresh spawned process, as
``bench_core`` does) with the peak RSS of the largest proving process, the median verify
time (fresh process), the pk and vk sizes, and the quantization error of the proven new
weights against the float SGD step (torch), as max abs and as a share of the mean update.

The summary gives per model the prove speedup (baseline / search) and whether the goal
holds: search at least 5x faster per step proof at equal accuracy, i.e. search error <=
default error * 1.05, or within the step's own bar (``UPDATE_FRACTION`` of the mean update).

Run from the repository root (ezkl prints its own noise to stdout; the tables come last)::

    .venv/bin/python bench/bench_training.py [--models tiny digits_train] [--repeat 3] \
        [--floors] [--json out.json] [--markdown]

A compile or proof that fails is shown as FAILED with its reason. Timings are wall clock:
run it on an otherwise idle machine (the JSON records load averages).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from children import peak_rss_mb
from common import (
    GOAL_SPEEDUP,
    MODELS_DIR,
    TEST_MODELS,
    environment,
    format_table,
    load_file,
    measurements,
    strategy_pairs,
    summary_table,
    write_json,
)
from torch import nn
from workers import compile_and_prove

from prover.circuits.compiler import Strategy as Calibration
from prover.circuits.compiler import build_circuit, plan_compile
from prover.circuits.search import Visibility
from prover.config import Settings
from prover.store import ArtifactStore
from prover.training.graph import Loss, one_hot
from prover.training.step_export import export_sgd_step, flatten_params, reference_step
from prover.training.steps import (
    STEP_SCALES,
    UPDATE_FRACTION,
    build_step_circuit,
    plan_step,
    planned_step,
)

MODELS = ("tiny", "digits_train")
ERROR_SLACK = 1.05


@dataclasses.dataclass(frozen=True)
class Strategy:
    """How one benchmarked circuit is made: which graph, which calibration, whether the
    inputs and outputs are hashed (committed) or private."""

    graph: str  # "plain" or "folded" step export, or "commitments-only"
    compile: Calibration
    committed: bool = True
    floor: bool = False  # measured only with --floors


STRATEGIES = {
    "ezkl-default": Strategy("plain", "ezkl-default"),
    "folded-default": Strategy("folded", "ezkl-default"),
    "search": Strategy("folded", "search"),
    "floor-no-commitments": Strategy("folded", "search", committed=False, floor=True),
    "floor-commitments-only": Strategy("commitments-only", "search", floor=True),
}


# --- the step cases ----------------------------------------------------------------------


def step_case(name: str) -> tuple[nn.Module, Loss, float, np.ndarray, np.ndarray]:
    """(module, loss, lr, x, y) of one benchmarked training step."""
    if name == "tiny":
        tests = load_file("bench_test_models", TEST_MODELS)
        x, y = tests.step_batch(0)
        return tests.step_model(), "mse", 0.5, x, y
    if name == "digits_train":
        digits = load_file("bench_digits_train_model", MODELS_DIR / "digits_train" / "model.py")
        batch = digits.batches(1)[0]
        x = np.asarray(batch["x"], dtype=np.float32)
        return digits.make_model(), "mse", 1.0, x, one_hot(batch["y"], digits.CLASSES)
    raise SystemExit(f"unknown model {name!r}: choose from {', '.join(MODELS)}")


def commitments_only_graph(
    path: Path, weights: int, x_shape: Sequence[int], y_shape: Sequence[int]
) -> Path:
    """A graph with a step's inputs and outputs and no arithmetic: new weights = weights,
    loss = sum(y)."""
    helper, floats = onnx.helper, onnx.TensorProto.FLOAT
    nodes = [
        helper.make_node("Identity", ["weights"], ["new_weights"]),
        helper.make_node("ReduceSum", ["y"], ["total"], keepdims=0),
        helper.make_node("Reshape", ["total", "shape"], ["loss"]),
    ]
    graph = helper.make_graph(
        nodes,
        "commitments_only",
        [
            helper.make_tensor_value_info("weights", floats, [weights]),
            helper.make_tensor_value_info("x", floats, list(x_shape)),
            helper.make_tensor_value_info("y", floats, list(y_shape)),
        ],
        [
            helper.make_tensor_value_info("new_weights", floats, [weights]),
            helper.make_tensor_value_info("loss", floats, [1]),
        ],
        initializer=[helper.make_tensor("shape", onnx.TensorProto.INT64, [1], [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


# --- child-process worker (module level, so the spawn context can import it) -------------


def compile_worker(model: str, strategy: str, data_dir: str, measure_top: int) -> dict[str, Any]:
    """Compile one step circuit with one strategy; returns the record, wall time, peak MB."""
    settings = Settings(data_dir=Path(data_dir), measure_top=measure_top)
    store = ArtifactStore(settings.data_dir)
    module, loss, lr, x, y = step_case(model)
    started = time.perf_counter()
    sample = {"weights": flatten_params(module), "x": x, "y": y}
    how = STRATEGIES[strategy]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sgd_step.onnx"
        fold = how.graph != "plain"
        spec = export_sgd_step(module, loss, lr, x.shape, y.shape, path, fold=fold)
        step = plan_step(spec.path, sample, settings, strategy=how.compile)
        if how.graph == "commitments-only":
            weights_count = int(sample["weights"].size)
            graph = commitments_only_graph(Path(tmp) / "io.onnx", weights_count, x.shape, y.shape)
            plan = plan_compile(graph, step.calibration, step.options, settings)
            record = build_circuit(plan, step.options, store, settings)
        elif not how.committed:
            options = dataclasses.replace(
                step.options, visibility=Visibility("private", "fixed", "private")
            )
            private = planned_step(spec.path, step.calibration, options, step.mean_update, settings)
            record = build_circuit(private.compile, options, store, settings)
        elif how.compile == "search":
            record = build_step_circuit(step, store, settings)
        else:  # ezkl's own calibration, without the step checks (it may fail them)
            record = build_circuit(step.compile, step.options, store, settings)
    circuit_settings = json.loads(
        (store.path("circuits", record["id"]) / "settings.json").read_text()
    )
    return {
        "record": record,
        "input_scales": circuit_settings["model_input_scales"],
        "output_scales": circuit_settings["model_output_scales"],
        "wall_s": time.perf_counter() - started,
        "peak_mb": peak_rss_mb(),
    }


# --- measurement -------------------------------------------------------------------------


def measure(model: str, strategy: str, repeat: int, measure_top: int) -> dict[str, Any]:
    """Compile, then prove the sample step ``repeat`` times and verify each proof, in child
    processes. A failure is recorded in the row's ``error``."""
    module, loss, lr, x, y = step_case(model)
    weights = flatten_params(module)
    float_new, float_loss = reference_step(module, loss, lr, x, y)
    mean_update = float(np.mean(np.abs(float_new - weights)))
    input_obj = {"input_data": [weights.tolist(), x.reshape(-1).tolist(), y.reshape(-1).tolist()]}
    row: dict[str, Any] = {
        "model": model,
        "strategy": strategy,
        "error": None,
        "loss": loss,
        "lr": lr,
        "parameters": int(weights.size),
        "batch": int(x.shape[0]),
        "mean_update": mean_update,
    }
    with tempfile.TemporaryDirectory(prefix=f"bench-train-{model}-") as data_dir:
        compile_call = partial(compile_worker, model, strategy, data_dir, measure_top)
        label = f"{model} step ({strategy})"
        run = compile_and_prove(label, compile_call, data_dir, input_obj, repeat)
    row["compile_s"] = run.compile_s
    if run.compiled:
        row["logrows"] = run.compiled["record"]["logrows"]
    if run.error:
        row["error"] = run.error
        return row
    compiled, record = run.compiled, run.compiled["record"]
    accuracy: dict[str, float | None]
    if STRATEGIES[strategy].graph == "commitments-only":  # computes no step: no accuracy
        accuracy = {"weight_error": None, "error_over_update": None, "loss_error": None}
    else:
        outputs = run.proofs[0]["outputs"]
        proven_new = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        proven_loss = float(np.asarray(outputs[1]).reshape(-1)[0])
        weight_error = float(np.max(np.abs(proven_new - float_new)))
        accuracy = {
            "weight_error": weight_error,
            "error_over_update": weight_error / mean_update,
            "loss_error": abs(proven_loss - float_loss),
        }
    run_args = record["settings"]
    row.update(
        circuit_id=record["id"],
        model_id=record["model_id"],
        calibration_digest=record["calibration"]["digest"],
        chosen=record["search"]["chosen"],
        scale=int(run_args["input_scale"]),
        param_scale=int(run_args["param_scale"]),
        decomp_base=int(run_args["decomp_base"]),
        decomp_legs=int(run_args["decomp_legs"]),
        inner_cols=int(run_args["num_inner_cols"]),
        input_scales=compiled["input_scales"],
        output_scales=compiled["output_scales"],
        chainable=compiled["input_scales"][0] == compiled["output_scales"][0],
        **measurements(record, compiled, run.proofs, run.verifies),
        **accuracy,
        calibration_max_abs_error=record["accuracy"]["max_abs_error"],
        run_args=run_args,
        search_trials=record["search"]["trials"],
    )
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-model speedup, the accuracy check and the goal verdict."""
    models: list[dict[str, Any]] = []
    for name, default, found, failed in strategy_pairs(rows):
        if failed:
            models.append({"model": name, "speedup": None, "failed": failed})
            continue
        accuracy_ok = (
            found["weight_error"] <= default["weight_error"] * ERROR_SLACK
            or found["error_over_update"] <= UPDATE_FRACTION
        )
        speedup = default["prove_s"] / found["prove_s"] if found["prove_s"] else float("inf")
        floors = {
            r["strategy"]: r["prove_s"]
            for r in rows
            if r["model"] == name and STRATEGIES[r["strategy"]].floor and not r["error"]
        }
        models.append(
            {
                "model": name,
                "default_prove_s": default["prove_s"],
                "search_prove_s": found["prove_s"],
                "speedup": speedup,
                "default_error_over_update": default["error_over_update"],
                "search_error_over_update": found["error_over_update"],
                "accuracy_ok": accuracy_ok,
                "goal_met": accuracy_ok and speedup >= GOAL_SPEEDUP,
                # The most a committed step circuit could gain: baseline / its slower floor.
                "floors_s": floors,
                "speedup_bound": default["prove_s"] / max(floors.values()) if floors else None,
                "failed": None,
            }
        )
    compared = [m for m in models if m["speedup"] is not None]
    return {
        "models": models,
        "goal": (
            f"search >= {GOAL_SPEEDUP:g}x faster per step proof at equal accuracy (new-weight "
            f"error <= default * {ERROR_SLACK} or <= {UPDATE_FRACTION:g} of the mean update)"
        ),
        "goal_met_every_model": bool(compared)
        and len(compared) == len(models)
        and all(m["goal_met"] for m in compared),
    }


# --- output ------------------------------------------------------------------------------


def results_table(rows: list[dict[str, Any]], markdown: bool) -> str:
    """One row per (model, strategy); a failed one shows FAILED and dashes."""
    headers = [
        "model", "strategy", "scale", "decomp", "cols", "logrows", "compile s", "setup s",
        "prove s", "verify s", "peak MB", "pk MB", "vk kB", "max err", "err/update",
    ]  # fmt: skip
    cells = []
    for r in rows:
        head = [r["model"], r["strategy"]]
        if r["error"]:
            logrows = str(r["logrows"]) if r.get("logrows") else "-"
            compile_s = f"{r['compile_s']:.1f}" if r.get("compile_s") is not None else "-"
            cells.append([*head, "FAILED", "-", "-", logrows, compile_s, *["-"] * 8])
            continue
        cells.append(
            [
                *head,
                str(r["scale"]),
                f"{r['decomp_base']}^{r['decomp_legs']}",
                str(r["inner_cols"]),
                str(r["logrows"]),
                f"{r['compile_s']:.1f}",
                f"{r['setup_s']:.2f}",
                f"{r['prove_s']:.2f}",
                f"{r['verify_s']:.3f}",
                f"{r['peak_mb']:.0f}",
                f"{r['pk_bytes'] / 1e6:.1f}",
                f"{r['vk_bytes'] / 1e3:.1f}",
                "-" if r["weight_error"] is None else f"{r['weight_error']:.3g}",
                "-" if r["error_over_update"] is None else f"{r['error_over_update']:.2%}",
            ]
        )
    return format_table(headers, cells, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the tables, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="NAME",
        help=f"step models to measure ({', '.join(MODELS)})",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="proofs per circuit (median)")
    parser.add_argument(
        "--measure-top",
        type=int,
        default=Settings().measure_top,
        help="finalists the search proves for real during compile",
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="also measure the two floors (step arithmetic alone, commitments alone)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw numbers here")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    started, load_start = time.perf_counter(), os.getloadavg()
    rows = [
        measure(model, strategy, args.repeat, args.measure_top)
        for model in args.models
        for strategy, how in STRATEGIES.items()
        if args.floors or not how.floor
    ]
    summary = summarize(rows)

    print()
    print(results_table(rows, args.markdown))
    for row in rows:
        if row["error"]:
            print(f"FAILED {row['model']} ({row['strategy']}): {row['error']}")
        elif not row["chainable"]:
            print(
                f"note: {row['model']} ({row['strategy']}) weight input scale "
                f"{row['input_scales'][0]} != output scale {row['output_scales'][0]}: "
                "its steps could not be chained by commitments"
            )
    print()
    print(summary_table(summary, args.markdown))
    print()
    verdict = "MET for every model" if summary["goal_met_every_model"] else "NOT MET everywhere"
    print(f"goal: {summary['goal']}: {verdict}")
    for m in summary["models"]:
        if m["speedup"] is not None:
            print(f"  {m['model']}: {'met' if m['goal_met'] else 'not met'}")
        if m.get("speedup_bound") is not None:
            floors = ", ".join(f"{k} {v:.2f} s" for k, v in m["floors_s"].items())
            print(
                f"  {m['model']}: floors {floors}: no committed step circuit can beat the "
                f"baseline by more than {m['speedup_bound']:.2f}x"
            )

    if args.json:
        report = {
            "environment": environment(load_start),
            "repeat": args.repeat,
            "measure_top": args.measure_top,
            "step_scales": list(STEP_SCALES),
            "update_fraction": UPDATE_FRACTION,
            "wall_s": time.perf_counter() - started,
            "rows": rows,
            "summary": summary,
        }
        write_json(args.json, report)
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
