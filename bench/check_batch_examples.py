"""Batch models of ezkl's own example models: does ``batch_model`` make a batch model that
computes N single inferences, and does ezkl accept it?

For each example model (``examples/onnx/*/network.onnx`` of ezkl's repository, read from
its git directory) or the ``--models`` named: the product's intake (``load_model``,
default settings; a model it refuses is recorded with the reason, not a batch failure),
then ``batch_model(..., "copies")`` and ``batch_model(..., "auto")`` with N = ``--n``. Each
batch model runs in onnxruntime on N inputs (the example's ``input.json`` item and
perturbed copies, laid out by ``batch_input``); after ``split_outputs`` its outputs must
equal N single runs (``np.allclose`` rtol 1e-4, atol 1e-5). Then ezkl's ``gen_settings``
must accept the batch model (no calibrate or prove). Models over 20 MB, or whose file the
mirror lacks, are skipped; each model's batch checks run in a sandbox child under a time
and memory limit.

Run from the repository root (a few minutes)::

    .venv/bin/python bench/check_batch_examples.py [--models mlp lenet_5] [--n 2]
        [--ezkl-repo /work/.mirror/zkonduit+ezkl/repo] [--timeout 240]
        [--json bench/results/check_batch_examples.json] [--markdown]

Prints a table to stdout (ezkl's own output goes to stderr) and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# The sandbox's helper process imports this module by name to run ``check_batch``.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p
)
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from common import RESULTS, environment, format_table, write_json  # noqa: E402

from prover.circuits.batch import batch_model  # noqa: E402
from prover.circuits.data import load_json, parse_samples  # noqa: E402
from prover.circuits.intake import load_model  # noqa: E402
from prover.circuits.layouts import batch_input, read_layout, split_outputs  # noqa: E402
from prover.circuits.operators import ezkl_verdict  # noqa: E402
from prover.circuits.sandbox import Limits, run_limited  # noqa: E402
from prover.circuits.tensors import TensorSpec  # noqa: E402
from prover.config import Settings  # noqa: E402
from prover.errors import ProverError  # noqa: E402

EZKL_REPO = Path("/work/.mirror/zkonduit+ezkl/repo")
MAX_BYTES = 20 * 1024 * 1024
RTOL, ATOL = 1e-4, 1e-5
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}
_QUIET = ort.SessionOptions()
_QUIET.log_severity_level = 3
COLUMNS = ("model", "intake", "copies", "auto", "auto mode", "error")


def example_models(repo: Path, names: list[str] | None) -> list[str]:
    """The example directories with a network.onnx (all, or the named ones)."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD", "examples/onnx"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    found = sorted(p.split("/")[2] for p in listing if p.endswith("/network.onnx"))
    if names:
        missing = sorted(set(names) - set(found))
        if missing:
            raise SystemExit(f"no example model named: {', '.join(missing)}")
        return [n for n in found if n in names]
    return found


def extract(repo: Path, name: str, into: Path) -> str | None:
    """Write the example's network.onnx and input.json into ``into``; why not, if not."""
    into.mkdir(parents=True, exist_ok=True)
    for file in ("network.onnx", "input.json"):
        spec = f"HEAD:examples/onnx/{name}/{file}"
        size = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "-s", spec], capture_output=True, text=True
        )
        if size.returncode:
            return f"{file} is not in the mirror"
        if int(size.stdout) > MAX_BYTES:
            return f"{file} is {int(size.stdout) / 2**20:.0f} MB (over 20 MB)"
        blob = subprocess.run(["git", "-C", str(repo), "show", spec], capture_output=True)
        (into / file).write_bytes(blob.stdout)
    return None


def _feed(session: ort.InferenceSession, arrays: list[Any]) -> dict[str, np.ndarray]:
    """Flat arrays as the session's inputs, in its shapes and element types."""
    feed: dict[str, np.ndarray] = {}
    for spec, arr in zip(session.get_inputs(), arrays, strict=True):
        shape = [d if isinstance(d, int) and d > 0 else -1 for d in spec.shape]
        dtype = _ORT_TYPES.get(spec.type, np.float32)
        feed[spec.name] = np.asarray(arr).astype(dtype).reshape(shape)
    return feed


def _items(model: Path, data: Any, specs: list[TensorSpec], n: int) -> list[list[np.ndarray]]:
    """The example's first input item and n - 1 perturbed copies (integer inputs, such as
    token ids, are rolled so they stay in range; floats get a little noise)."""
    if isinstance(data, dict) and len(data.get("input_data", [])) > len(specs):
        # Some examples list more tensors than the model takes (bitwise_ops: 4 for 2).
        data = {"input_data": data["input_data"][: len(specs)]}
    first = parse_samples(data, specs)[0]
    graph = onnx.load(str(model)).graph
    initializers = {t.name for t in graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
    kinds = [v.type.tensor_type.elem_type for v in graph.input if v.name not in initializers]
    rng = np.random.default_rng(11)
    items = [first]
    for k in range(1, n):
        item = []
        for arr, kind in zip(first, kinds, strict=True):
            if kind in floats:
                scale = 0.05 * (float(np.abs(arr).mean()) + 0.01)
                item.append(arr + rng.normal(0.0, scale, arr.shape))
            else:
                item.append(np.roll(arr, k))
        items.append(item)
    return items


def _compare(expected: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> str | None:
    """Why the batch results differ from the single runs, None when they are equal."""
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        for j, (a, b) in enumerate(zip(want, have, strict=True)):
            a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
            if a.size != b.size:
                return f"item {i} output {j}: {b.size} values, single run {a.size}"
            if not np.allclose(a, b, rtol=RTOL, atol=ATOL):
                return f"item {i} output {j}: max diff {np.abs(a - b).max():.3g}"
    return None


def _one_mode(
    model: Path, items: list[list[np.ndarray]], mode: str, out: Path, same: dict | None = None
) -> dict:
    """batch_model in one mode, its outputs against the single runs, and ezkl's verdict;
    ``same`` is the result of another mode, reused where this one chose its layout (the
    same file: ezkl's gen_settings takes a minute on nanoGPT's copies)."""
    result: dict[str, Any] = {"ok": False, "mode": None, "equal": None, "ezkl": None}
    try:
        path = batch_model(model, len(items), out, mode)
    except ProverError as exc:
        return {**result, "error": f"batch_model: {exc}"}
    layout = read_layout(path)
    assert layout is not None
    if same is not None and same["mode"] == layout.mode:
        return same
    result["mode"] = layout.mode
    try:
        single = ort.InferenceSession(str(model), _QUIET)
        expected = [single.run(None, _feed(single, item)) for item in items]
    except Exception as exc:  # onnxruntime cannot run the model: no float reference
        result["equal"], result["note"] = "n/a", f"onnxruntime: {str(exc)[:200]}"
    else:
        try:
            session = ort.InferenceSession(str(path), _QUIET)
            inputs = batch_input(layout, items)["input_data"]
            got = split_outputs(layout, session.run(None, _feed(session, inputs)))
            why = _compare(expected, got)
        except Exception as exc:  # the single model runs, so the batch model must
            why = f"onnxruntime on the batch model: {str(exc)[:200]}"
        result["equal"] = why is None
        if why:
            result["error"] = f"outputs differ: {why}"
    verdict = ezkl_verdict(path, [])
    result["ezkl"] = verdict.error is None
    if verdict.error:
        result["error"] = (result.get("error", "") + f" ezkl gen_settings: {verdict.error}").strip()
    result["ok"] = result["equal"] in (True, "n/a") and result["ezkl"]
    return result


def check_batch(directory: str, specs: list[TensorSpec], n: int) -> dict:
    """Both batch modes of one example model (runs in a sandbox child); ``specs`` are its
    inputs as intake saw them."""
    model = Path(directory) / "network.onnx"
    try:
        items = _items(model, load_json(Path(directory) / "input.json"), specs, n)
    except ProverError as exc:
        return {"error": f"input.json: {exc}"}
    copies = _one_mode(model, items, "copies", Path(directory) / "copies.onnx")
    auto = _one_mode(model, items, "auto", Path(directory) / "auto.onnx", copies)
    return {"copies": copies, "auto": auto}


def check_model(repo: Path, name: str, n: int, limits: Limits, work: Path) -> dict:
    """One example model's row: intake, then the batch checks in a sandbox child."""
    started = time.monotonic()
    row: dict[str, Any] = {"model": name, "intake": None, "copies": None, "auto": None}
    skipped = extract(repo, name, work / name)
    if skipped:
        return {**row, "intake": "skipped", "error": skipped}
    model = work / name / "network.onnx"
    row["bytes"] = model.stat().st_size
    try:
        info = load_model(model, Settings())
    except ProverError as exc:
        return {**row, "intake": "refused", "error": str(exc)[:300], "s": since(started)}
    row["intake"] = "ok"
    try:
        # Import by module name: the sandbox's helper unpickles ``check_batch`` from it.
        import check_batch_examples

        row.update(
            run_limited(
                check_batch_examples.check_batch, str(work / name), info.inputs, n, limits=limits
            )
        )
    except ProverError as exc:
        row["error"] = f"batch check: {str(exc)[:300]}"
    return {**row, "s": since(started)}


def since(started: float) -> float:
    """Seconds since ``started`` (``time.monotonic``), to the hundredth."""
    return round(time.monotonic() - started, 2)


def _cell(mode: dict | None) -> str:
    if mode is None:
        return "-"
    if mode["ok"]:
        return "ok" if mode["equal"] is True else "ok (no ort)"
    if mode["mode"] is None:
        return "FAIL batch"
    return "FAIL equal" if mode["equal"] is False else "FAIL ezkl"


def _errors(row: dict) -> str:
    texts = [row.get("error")] + [(row.get(m) or {}).get("error") for m in ("copies", "auto")]
    return " | ".join(dict.fromkeys(t for t in texts if t))[:160]


def summarize(rows: list[dict]) -> dict[str, Any]:
    """Counts over the rows: intake, and per mode how many intake-ok models batch right."""
    passed = [r for r in rows if r["intake"] == "ok"]
    summary: dict[str, Any] = {
        "models": len(rows),
        "skipped": sum(r["intake"] == "skipped" for r in rows),
        "intake_refused": sum(r["intake"] == "refused" for r in rows),
        "intake_ok": len(passed),
    }
    for mode in ("copies", "auto"):
        good = [r for r in passed if (r.get(mode) or {}).get("ok")]
        summary[f"{mode}_ok"] = len(good)
        summary[f"{mode}_failed"] = sorted(
            set(r["model"] for r in passed) - {r["model"] for r in good}
        )
    summary["auto_axis"] = sum((r.get("auto") or {}).get("mode") == "axis" for r in passed)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--ezkl-repo", type=Path, default=EZKL_REPO)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--json", type=Path, default=RESULTS / "check_batch_examples.json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    limits = Limits("batch check", 4 * 1024**3, args.timeout, "--memory", "--timeout")
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="check-batch-") as tmp:
        for name in example_models(args.ezkl_repo, args.models):
            rows.append(check_model(args.ezkl_repo, name, args.n, limits, Path(tmp)))
            print(f"{name}: {_errors(rows[-1]) or 'ok'}", file=sys.stderr, flush=True)
    table = [
        [
            r["model"],
            r["intake"],
            _cell(r.get("copies")),
            _cell(r.get("auto")),
            (r.get("auto") or {}).get("mode") or "-",
            _errors(r),
        ]
        for r in rows
    ]
    print(format_table(COLUMNS, table, args.markdown))
    summary = summarize(rows)
    print(json.dumps(summary, indent=2))
    material = {
        "n": args.n,
        "environment": environment(load_start),
        "summary": summary,
        "rows": rows,
    }
    write_json(args.json, material)


if __name__ == "__main__":
    main()
