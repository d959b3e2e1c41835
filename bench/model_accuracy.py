"""Classification accuracy of the example models, in float and inside their circuits.

Each example model (each directory under ``models/`` holding a ``model.onnx``) is compiled
with the default settings search (``CompileOptions()``, calibrated on its
``calibration.json``) into a fresh temporary data dir, or into ``--data-dir`` (where a
circuit compiled before is reused). On the digits test split (``models/digits.py``:
``digits_split()``, each sample reshaped to the input shape in ``metrics.json``) it reports:

* float accuracy on the full test set, from onnxruntime (``FloatReference``);
* float accuracy on the first ``--samples`` test samples;
* circuit accuracy on those samples: ezkl's witness of ``model.compiled`` for each sample
  (the circuit's exact computation, so no proof is needed), argmax of ``rescaled_outputs``;
* argmax agreement between float and circuit on those samples.

A sample the circuit cannot represent (ezkl refuses its witness) counts as a wrong circuit
prediction and is listed under ``witness_failures`` in the JSON.

Run from the repository root (ezkl prints its own noise to stdout; the table comes last)::

    .venv/bin/python bench/model_accuracy.py [--models digits_mlp] [--samples 200] \
        [--data-dir DIR] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from common import MODELS_DIR, format_table, load_file, model_dirs, write_json

from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.intake import FloatReference, load_model
from prover.circuits.tensors import TensorSpec
from prover.circuits.witness import generate_witness, rescaled_outputs, write_input
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.store import ArtifactStore

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def digits_split_fn() -> Callable[[], Split]:
    """``digits_split`` from models/digits.py (a script directory, not a package)."""
    return load_file("digits", MODELS_DIR / "digits.py").digits_split


def measure(
    model_dir: Path,
    store: ArtifactStore,
    settings: Settings,
    split: Split,
    n_samples: int,
    work: Path,
) -> dict[str, Any]:
    """Compile with the search, then score float and circuit predictions on the test set."""
    _, x_test, _, y_test = split
    metrics = json.loads((model_dir / "metrics.json").read_text())
    shape = tuple(metrics["input_shape"])
    calibration = json.loads((model_dir / "calibration.json").read_text())

    print(f"[accuracy] compiling {model_dir.name} (search)", flush=True)
    started = time.perf_counter()
    record = compile_model(model_dir / "model.onnx", calibration, CompileOptions(), store, settings)
    compile_s = time.perf_counter() - started
    compiled = store.path("circuits", record["id"]) / "model.compiled"
    outputs = [TensorSpec.from_dict(o) for o in record["outputs"]]

    info = load_model(model_dir / "model.onnx", settings)
    reference = FloatReference(info.path, info.inputs)
    float_logits = [reference.run([x.reshape(shape)])[0].reshape(-1) for x in x_test]
    float_pred = np.array([int(np.argmax(z)) for z in float_logits])

    n = min(n_samples, len(x_test))
    print(f"[accuracy] {model_dir.name}: {n} circuit witnesses", flush=True)
    circuit_pred, max_abs_diff, witness_s = [], 0.0, 0.0
    failures: list[dict[str, Any]] = []
    sample_dir = work / model_dir.name
    sample_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sample = [x_test[i].reshape(shape).astype(np.float64).reshape(-1)]
        input_path = write_input(sample_dir / "input.json", [sample])
        started = time.perf_counter()
        try:
            witness = generate_witness(compiled, input_path, sample_dir / "witness.json")
        except InvalidInputError as exc:  # outside the calibrated ranges: counts as wrong
            failures.append({"sample": i, "reason": str(exc)[:300]})
            circuit_pred.append(-1)
            continue
        finally:
            witness_s += time.perf_counter() - started
        logits = rescaled_outputs(witness, outputs)[0].reshape(-1)
        circuit_pred.append(int(np.argmax(logits)))
        max_abs_diff = max(max_abs_diff, float(np.max(np.abs(logits - float_logits[i]))))
    circuit = np.array(circuit_pred)

    return {
        "model": model_dir.name,
        "circuit_id": record["id"],
        "chosen": record["search"]["chosen"],
        "parameters": info.parameter_count,
        "trainable_parameters": metrics.get("parameters"),
        "logrows": record["logrows"],
        "compile_s": compile_s,
        "compile_cached": record["cached"],
        "test_samples": len(y_test),
        "samples": n,
        "float_accuracy_full": float(np.mean(float_pred == y_test)),
        "float_accuracy_metrics_json": metrics.get("float_test_accuracy"),
        "float_accuracy_samples": float(np.mean(float_pred[:n] == y_test[:n])),
        "circuit_accuracy_samples": float(np.mean(circuit == y_test[:n])),
        "argmax_agreement": float(np.mean(circuit == float_pred[:n])),
        "max_abs_logit_diff_samples": max_abs_diff,
        "calibration_max_abs_error": record["accuracy"]["max_abs_error"],
        "witness_s_mean": witness_s / n if n else None,
        "witness_failures": failures,
    }


def results_table(rows: list[dict[str, Any]], n: int, markdown: bool) -> str:
    """One row per model."""
    headers = [
        "model", "parameters", "logrows", "float acc (test)", f"float acc ({n})",
        f"circuit acc ({n})", "argmax agreement",
    ]  # fmt: skip
    cells = [
        [
            r["model"],
            str(r["parameters"]),
            str(r["logrows"]),
            f"{r['float_accuracy_full']:.4f}",
            f"{r['float_accuracy_samples']:.4f}",
            f"{r['circuit_accuracy_samples']:.4f}",
            f"{r['argmax_agreement']:.4f}",
        ]
        for r in rows
    ]
    return format_table(headers, cells, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure every model, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", metavar="NAME", help="model dirs under models/")
    parser.add_argument("--samples", type=int, default=200, help="test samples run in-circuit")
    parser.add_argument("--data-dir", type=Path, help="prover data dir (default: a fresh temp)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw numbers here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")

    split = digits_split_fn()()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accuracy-work-")))
        data_dir = args.data_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="accuracy-data-"))
        )
        settings = Settings(data_dir=data_dir)
        store = ArtifactStore(settings.data_dir)
        rows = [
            measure(d, store, settings, split, args.samples, work) for d in model_dirs(args.models)
        ]

    n = min(args.samples, len(split[1]))
    print()
    print(results_table(rows, n, args.markdown))
    if args.json:
        write_json(args.json, {"samples": n, "rows": rows})
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
