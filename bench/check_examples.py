"""ezkl's own example models through the product: does intake agree with ezkl, and on the
large ones, how do the settings search and segmented proving do against ezkl's defaults?

For each example model (``examples/onnx/*/network.onnx`` of ezkl's repository, read from
its git directory) or the ``--models`` named:

1. Intake parity: the product's intake (``load_model``, default settings: accepted, or the
   error's code and message) against ezkl's own verdict (``ezkl_verdict``: ezkl's
   ``gen_settings`` at default run args with every symbolic input dim set to 1), and
   ezkl's ``num_rows`` and ``logrows`` where it accepts. A model intake refuses but ezkl
   accepts is a regression.
2. Unless ``--intake-only``, for each model intake accepts whose ezkl ``num_rows`` is at
   least ``--min-rows`` (default 2^15):

   a. compiled with ezkl's own calibration (``strategy="ezkl-default"``) and with the
      default settings search: logrows, inner columns, compile seconds; one input proven
      (the example's ``input.json``, or a synthetic one where it does not parse) in a
      spawned child (``RAYON_NUM_THREADS`` as the environment has it): ezkl's prove
      seconds and the child's peak RSS (``wait4``'s ``ru_maxrss``; the JSON keeps the
      memory the prover added too), then verified. Calibration is the example's input
      where it parses, else synthetic (the product's default).
   b. compiled into each ``--segments`` K (``plan_any(..., segments=K)`` then
      ``build_any``): the outcome is ``segmented``, ``unsplit`` (splitting did not pay)
      or ``refused`` (too few cut points, with the reason). A segmented circuit is proven
      the same way (``prove_composite`` in a spawned child), verified
      (``verify_composite``), and its outputs compared with onnxruntime's on the same
      input (max abs error; relative to the largest |float| output).

   Each step of a model runs in a sandbox child (``run_limited``) under the memory cap
   (``--memory``, GiB) and what is left of the model's ``--timeout``; a step that hits a
   limit is recorded as such and the run goes on.

Models over 20 MB, or whose file the mirror lacks, are skipped. The JSON is written after
every model; ``--resume`` keeps the models already in it (an intake-only row is redone by
a full run).

Run from the repository root (``--intake-only`` over all examples: a few minutes; the
full pass proves circuits of 2^15 rows and more: hours, and most of the machine's memory)::

    .venv/bin/python bench/check_examples.py [--models 1l_mlp lenet_5] [--intake-only]
        [--min-rows 32768] [--segments 2 4] [--timeout 1800] [--memory 12]
        [--ezkl-repo /work/.mirror/zkonduit+ezkl/repo] [--data-dir DIR] [--resume]
        [--json bench/results/check_examples.json] [--markdown]

Prints the tables to stdout (progress and ezkl's own output go to stderr) and writes the
JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# The sandbox's helper process imports this module by name to run the steps.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p
)
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from check_batch_examples import example_models, extract, since  # noqa: E402
from children import RssSampler  # noqa: E402
from common import RESULTS, environment, format_table, write_json  # noqa: E402

from prover.circuits.compiler import (  # noqa: E402
    CompileOptions,
    CompilePlan,
    build_circuit,
    plan_compile,
    synthetic_samples,
)
from prover.circuits.data import load_json, parse_samples  # noqa: E402
from prover.circuits.intake import FloatReference, ModelInfo, load_model  # noqa: E402
from prover.circuits.operators import EzklVerdict, ezkl_verdict  # noqa: E402
from prover.circuits.plans import build_any  # noqa: E402
from prover.circuits.sandbox import Limits, machine_memory, run_limited  # noqa: E402
from prover.circuits.segments import plan_any  # noqa: E402
from prover.config import Settings  # noqa: E402
from prover.errors import ProverError, ResourceLimitError  # noqa: E402
from prover.proving.composite import prove_composite, verify_composite  # noqa: E402
from prover.proving.plans import plan_proof  # noqa: E402
from prover.proving.proofs import prove_input, verify  # noqa: E402
from prover.store import ArtifactStore  # noqa: E402

EZKL_REPO = Path("/work/.mirror/zkonduit+ezkl/repo")
NOISE = 1.10  # a ratio within 10% of 1 is a match: timings on a shared machine wander
MIN_STEP_S = 5.0  # a step with less of the model's time left is not started
PARITY = ("both accept", "both refuse", "intake refuses", "intake accepts", "unknown")


# --- intake parity -------------------------------------------------------------------------


def symbolic_variables(model: Path) -> list[tuple[str, int]]:
    """Every named symbolic dim of the model's inputs, set to 1 (ezkl's ``variables``);
    none where onnx cannot parse the file (ezkl then gets its default ``batch_size``)."""
    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception:
        return []
    constants = {t.name for t in graph.initializer}
    names = {
        d.dim_param
        for v in graph.input
        if v.name not in constants
        for d in v.type.tensor_type.shape.dim
        if d.HasField("dim_param") and d.dim_param
    }
    return [(name, 1) for name in sorted(names)]


def intake_row(model: Path, limits: Limits) -> tuple[dict[str, Any], ModelInfo | None]:
    """The product's intake and ezkl's verdict on one model, and what they add up to; and
    intake's model info where it accepts."""
    started = time.monotonic()
    intake: dict[str, Any]
    info: ModelInfo | None = None
    try:
        info = load_model(model, Settings())
        intake = {"accepted": True, "unchecked": info.unchecked}
    except ProverError as exc:
        intake = {"accepted": False, "code": exc.code, "message": exc.message}
    intake["s"] = since(started)
    started = time.monotonic()
    variables = symbolic_variables(model)
    ezkl: dict[str, Any] = {"variables": [list(v) for v in variables]}
    try:
        verdict: EzklVerdict = run_limited(ezkl_verdict, model, variables, limits=limits)
    except ProverError as exc:  # gen_settings itself ran out of memory or time
        ezkl.update(accepted=None, error=f"{exc.code}: {exc.message}")
    else:
        ezkl["accepted"] = verdict.error is None
        if verdict.error is not None:
            ezkl.update(error=verdict.error, unknown=verdict.unknown)
        else:
            ezkl.update(
                num_rows=verdict.settings.get("num_rows"),
                logrows=verdict.settings.get("run_args", {}).get("logrows"),
            )
    ezkl["s"] = since(started)
    return {"intake": intake, "ezkl": ezkl, "parity": parity(intake, ezkl)}, info


def parity(intake: dict[str, Any], ezkl: dict[str, Any]) -> str:
    if ezkl.get("accepted") is None:
        return "unknown"
    if intake["accepted"]:
        return "both accept" if ezkl["accepted"] else "intake accepts"
    return "intake refuses" if ezkl["accepted"] else "both refuse"


# --- the steps (each in a sandbox child) ---------------------------------------------------


def _settings(data_dir: str, memory: int) -> Settings:
    return Settings(data_dir=Path(data_dir), compile_memory_bytes=memory)


def _error(exc: BaseException, stage: str) -> dict[str, Any]:
    if isinstance(exc, ResourceLimitError):
        limit = exc.details.get("limit")
        return {"outcome": "limit", "stage": stage, "limit": limit, "error": exc.message}
    if isinstance(exc, ProverError):
        return {"outcome": "error", "stage": stage, "code": exc.code, "error": exc.message}
    return {"outcome": "error", "stage": stage, "error": f"{type(exc).__name__}: {exc}"[:500]}


def unsplit_step(
    model: str, calibration: Any, input_obj: Any, strategy: str, data_dir: str, memory: int
) -> dict[str, Any]:
    """Compile one circuit (``strategy``), prove ``input_obj`` in a child, verify."""
    settings = _settings(data_dir, memory)
    options = CompileOptions(strategy="ezkl-default" if strategy == "ezkl-default" else "search")
    store = ArtifactStore(settings.data_dir)
    started = time.perf_counter()
    try:
        plan = plan_compile(Path(model), calibration, options, settings)
        record = build_circuit(plan, options, store, settings)
    except Exception as exc:
        return _error(exc, "compile")
    result: dict[str, Any] = {
        "outcome": "compiled",
        "circuit_id": record["id"],
        "cached": record["cached"],
        "compile_s": round(time.perf_counter() - started, 2),
        "logrows": record["logrows"],
        "num_inner_cols": record["settings"].get("num_inner_cols"),
        "scales": [record["settings"].get("input_scale"), record["settings"].get("param_scale")],
        "num_rows": _num_rows(store, record["id"]),
        "pk_bytes": record["pk_bytes"],
        "compile_accuracy": record["accuracy"],
    }
    result.update(_prove_and_check(store, record, plan.info, input_obj, data_dir))
    return result


def segments_step(
    model: str,
    calibration: Any,
    input_obj: Any,
    k: int,
    data_dir: str,
    memory: int,
    unsplit_logrows: int | None,
) -> dict[str, Any]:
    """Plan and build the model in ``k`` segments; prove, verify and check a split one."""
    settings = _settings(data_dir, memory)
    options = CompileOptions()
    store = ArtifactStore(settings.data_dir)
    started = time.perf_counter()
    try:
        plan = plan_any(Path(model), calibration, options, settings, segments=k)
    except ProverError as exc:  # too few cut points, or a segment that cannot fit
        if isinstance(exc, ResourceLimitError):
            return _error(exc, "plan")
        return {"outcome": "refused", "code": exc.code, "error": exc.message}
    except Exception as exc:
        return _error(exc, "plan")
    plan_s = round(time.perf_counter() - started, 2)
    if isinstance(plan, CompilePlan):
        return {"outcome": "unsplit", "plan_s": plan_s, "error": "plan_any kept one circuit"}
    try:
        record = build_any(plan, options, store, settings)
    except Exception as exc:
        return {**_error(exc, "compile"), "plan_s": plan_s}
    result: dict[str, Any] = {
        "plan_s": plan_s,
        "compile_s": round(time.perf_counter() - started, 2),
        "cached": record["cached"],
        "circuit_id": record["id"],
        "logrows": record["logrows"],
    }
    if record.get("type") != "segmented":
        return {**result, "outcome": "unsplit", "error": "build_any made one circuit"}
    segment_logrows = [int(s["logrows"]) for s in record["segments"]]
    result.update(
        outcome="segmented",
        segments=len(record["segments"]),
        link=record["link"],
        scale=record["scale"],
        cuts=record["cuts"],
        segment_logrows=segment_logrows,
        max_logrows=max(segment_logrows),
        unsplit_logrows=unsplit_logrows,
        logrows_saved=None if unsplit_logrows is None else unsplit_logrows - max(segment_logrows),
        compile_accuracy=record["accuracy"],
        # where the record has them: the plan's estimate, and why the split saves nothing
        estimated_logrows=record.get("estimated_logrows"),
        note=record.get("note"),
    )
    result.update(_prove_and_check(store, record, plan.info, input_obj, data_dir))
    return result


def _num_rows(store: ArtifactStore, circuit_id: str) -> int | None:
    path = store.path("circuits", circuit_id) / "settings.json"
    return json.loads(path.read_text()).get("num_rows") if path.is_file() else None


def _prove_and_check(
    store: ArtifactStore, record: dict[str, Any], info: ModelInfo, input_obj: Any, data_dir: str
) -> dict[str, Any]:
    """Prove in a spawned child, verify here, and compare the outputs with onnxruntime."""
    segmented = record.get("type") == "segmented"
    try:
        proof = prove_in_child(data_dir, record["id"], input_obj, segmented)
    except Exception as exc:  # the circuit stays recorded; the proof's failure beside it
        failed = _error(exc, "prove")
        return {"prove_outcome": failed["outcome"], "prove_error": failed["error"]}
    out: dict[str, Any] = {k: v for k, v in proof.items() if k != "outputs"}
    try:
        checked = (verify_composite if segmented else verify)(store, proof["proof_id"])
        out["verified"] = bool(checked["valid"])
        if not checked["valid"]:
            out["verify_reason"] = checked.get("reason")
    except Exception as exc:
        out.update(verified=False, verify_reason=f"{type(exc).__name__}: {exc}"[:300])
    out["accuracy"] = _accuracy(info, input_obj, proof["outputs"], record)
    return out


def _accuracy(
    info: ModelInfo, input_obj: Any, outputs: list[Any], record: dict[str, Any]
) -> dict[str, Any]:
    """The proof's outputs against onnxruntime's on the same input."""
    if info.unchecked is not None:
        return {"status": "unchecked", "reason": info.unchecked}
    try:
        expected = FloatReference(info.path, info.inputs).run(
            parse_samples(input_obj, info.inputs)[0]
        )
    except ProverError as exc:
        return {"status": "unchecked", "reason": exc.message}
    errors, largest = [], 0.0
    for got, want in zip(outputs, expected, strict=True):
        g = np.asarray(got, np.float64).ravel()
        w = np.asarray(want, np.float64).ravel()
        if g.size != w.size:
            return {"status": "mismatch", "reason": f"{g.size} outputs, onnxruntime {w.size}"}
        if w.size:
            errors.append(float(np.max(np.abs(g - w))))
            largest = max(largest, float(np.max(np.abs(w))))
    err = max(errors, default=0.0)
    tolerance = float(record.get("tolerance", CompileOptions().tolerance))
    return {
        "status": "checked",
        "max_abs_error": err,
        "max_abs_float": largest,
        "relative_error": err / largest if largest > 0 else err,
        # the product's own test: within tolerance of max(1, largest |float|)
        "accurate": err <= tolerance * max(1.0, largest),
    }


# --- the prove child -------------------------------------------------------------------------


def prove_in_child(
    data_dir: str, circuit_id: str, input_obj: Any, segmented: bool
) -> dict[str, Any]:
    """Prove in a fresh interpreter (this script with ``--prove-child``); its result, with
    the child's peak RSS from ``wait4``."""
    with tempfile.TemporaryDirectory(prefix="check-examples-prove-") as tmp:
        request = Path(tmp) / "request.json"
        answer = Path(tmp) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "data_dir": data_dir,
                    "circuit_id": circuit_id,
                    "input": input_obj,
                    "segmented": segmented,
                    "result": str(answer),
                    "parent": os.getpid(),
                }
            )
        )
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--prove-child", str(request)],
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall_s = time.perf_counter() - started
        peak_mb = usage.ru_maxrss / 1024
        if not answer.is_file():
            code = child.returncode
            died = f"died of {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            raise ProverError(
                f"the prove child {died} after {wall_s:.0f} s at {peak_mb:.0f} MB peak RSS, "
                "with no result (an abort or SIGSEGV under --memory is likely out of memory)"
            )
        result: dict[str, Any] = json.loads(answer.read_text())
    if "error" in result:
        raise ProverError(result["error"])
    return {**result, "child_wall_s": round(wall_s, 2), "peak_rss_mb": round(peak_mb, 1)}


def _die_with_parent() -> None:
    """SIGKILL when the parent dies (Linux): a step that hits its time limit takes its
    prover along."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def prove_child(request_path: Path) -> None:
    """The child: prove one input (``prove_input``, or ``prove_composite`` for a segmented
    circuit), timing it and sampling the RSS the prover adds."""
    _die_with_parent()
    request = json.loads(request_path.read_text())
    if os.getppid() != request["parent"]:  # the step ended while this one started
        return
    store = ArtifactStore(Path(request["data_dir"]))
    out: dict[str, Any]
    started = time.perf_counter()
    try:
        with RssSampler() as rss:
            if request["segmented"]:
                plan = plan_proof(store, request["circuit_id"], request["input"], fresh=True)
                record = prove_composite(store, plan)
            else:
                record = prove_input(store, request["circuit_id"], request["input"], fresh=True)
        out = {
            "proof_id": record["id"],
            "prove_s": record["timings"]["prove_s"],
            "witness_s": record["timings"]["witness_s"],
            "wall_in_child_s": round(time.perf_counter() - started, 2),
            "prover_mb": round(rss.report()["prover_mb"], 1),
            "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default"),
            "outputs": record["outputs"],
        }
        if request["segmented"]:
            out["prove_max_s"] = record["timings"]["prove_max_s"]
            out["segment_prove_s"] = [s["timings"]["prove_s"] for s in record["segments"]]
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    Path(request["result"]).write_text(json.dumps(out))


# --- one model -------------------------------------------------------------------------------


def example_input(directory: Path, info: ModelInfo) -> tuple[Any, Any, str]:
    """(calibration, one input, where they came from): the example's input.json where it
    parses (its first item proven; an input list longer than the model's inputs trimmed,
    as bitwise_ops has), else the product's synthetic calibration and its first sample."""
    try:
        data = load_json(directory / "input.json")
        if isinstance(data, dict) and len(data.get("input_data", [])) > len(info.inputs):
            data = {"input_data": data["input_data"][: len(info.inputs)]}
        samples = parse_samples(data, info.inputs)
        calibration = {"input_data": [list(map(float, a)) for a in _laid_out(samples)]}
        source = "example"
    except ProverError:
        samples, calibration, source = synthetic_samples(info, 1), None, "synthetic"
    first = {"input_data": [np.asarray(a, np.float64).tolist() for a in samples[0]]}
    return calibration, first, source


def _laid_out(samples: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Samples end to end per input (ezkl's calibration layout)."""
    return [np.concatenate([s[i] for s in samples]) for i in range(len(samples[0]))]


class Budget:
    """What is left of one model's time, as each step's limits."""

    def __init__(self, timeout: float, memory: int) -> None:
        self.deadline, self.timeout, self.memory = time.monotonic() + timeout, timeout, memory

    def limits(self, what: str) -> Limits | None:
        left = self.deadline - time.monotonic()
        if left < MIN_STEP_S:
            return None
        return Limits(what, self.memory, left, "--memory", f"--timeout {self.timeout:g} s")


def run_step(budget: Budget, what: str, fn: Any, *args: Any) -> dict[str, Any]:
    """One step in a sandbox child under the model's remaining time and the memory cap."""
    limits = budget.limits(what)
    if limits is None:
        return {"outcome": "limit", "limit": "time", "error": "the model's --timeout was spent"}
    started = time.monotonic()
    try:
        import check_examples  # by module name: the sandbox's helper unpickles the step

        step = getattr(check_examples, fn.__name__)
        result: dict[str, Any] = run_limited(step, *args, limits=limits)
    except Exception as exc:
        result = _error(exc, what)
    result["step_s"] = since(started)
    return result


def heavy_checks(
    name: str, directory: Path, info: ModelInfo, args: argparse.Namespace, data_dir: str
) -> dict[str, Any]:
    """Part 2 for one model: ezkl-default vs search, then each segment count."""
    model = str(directory / "network.onnx")
    calibration, input_obj, source = example_input(directory, info)
    budget = Budget(args.timeout, args.memory_bytes)
    out: dict[str, Any] = {"input": source}
    for strategy in ("ezkl-default", "search"):
        _say(f"{name}: compile + prove ({strategy})")
        out[strategy] = run_step(
            budget,
            f"{strategy} compile + prove",
            unsplit_step,
            model,
            calibration,
            input_obj,
            strategy,
            data_dir,
            args.memory_bytes,
        )
    out["ratios"] = ratios(out["ezkl-default"], out["search"])
    unsplit = out["search"].get("logrows")
    for k in args.segments:
        _say(f"{name}: {k} segments")
        out[f"segments_{k}"] = run_step(
            budget,
            f"{k}-segment compile + prove",
            segments_step,
            model,
            calibration,
            input_obj,
            k,
            data_dir,
            args.memory_bytes,
            unsplit,
        )
    return out


def ratios(default: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """search / ezkl-default: prove seconds and the prove child's peak RSS."""
    if "prove_s" not in default or "prove_s" not in found:
        return {"prove_time": None, "peak_rss": None}
    return {
        "prove_time": found["prove_s"] / default["prove_s"] if default["prove_s"] else None,
        "peak_rss": found["peak_rss_mb"] / default["peak_rss_mb"],
        "prover_mb": found["prover_mb"] / default["prover_mb"] if default["prover_mb"] else None,
    }


def check_model(
    repo: Path, name: str, args: argparse.Namespace, work: Path, data_dir: str
) -> dict[str, Any]:
    """One example model's row: intake parity, then (large, accepted) the heavy checks."""
    started = time.monotonic()
    row: dict[str, Any] = {"model": name, "mode": "intake-only" if args.intake_only else "full"}
    skipped = extract(repo, name, work / name) or _lfs_pointer(work / name)
    if skipped:
        return {**row, "parity": "skipped", "skipped": skipped}
    model = work / name / "network.onnx"
    row["bytes"] = model.stat().st_size
    limits = Limits("ezkl gen_settings", args.memory_bytes, args.timeout, "--memory", "--timeout")
    found, info = intake_row(model, limits)
    row.update(found)
    rows = row["ezkl"].get("num_rows")
    row["large"] = info is not None and rows is not None and rows >= args.min_rows
    if info is not None and row["large"] and not args.intake_only:
        row.update(heavy_checks(name, work / name, info, args, data_dir))
    row["s"] = since(started)
    return row


def _lfs_pointer(directory: Path) -> str | None:
    """Why not, where the mirror holds a Git LFS pointer instead of the file."""
    for file in ("network.onnx", "input.json"):
        with (directory / file).open("rb") as stream:
            if stream.read(24) == b"version https://git-lfs.":
                return f"{file} is a Git LFS pointer (the mirror lacks the file)"
    return None


def _say(text: str) -> None:
    print(f"[check] {text}", file=sys.stderr, flush=True)


# --- report ----------------------------------------------------------------------------------


def _intake_cell(row: dict[str, Any]) -> str:
    intake = row.get("intake")
    if intake is None:
        return "skipped"
    return "ok" if intake["accepted"] else f"refused ({intake['code']})"


def _ezkl_cell(row: dict[str, Any]) -> str:
    ezkl = row.get("ezkl")
    if ezkl is None:
        return "-"
    if ezkl["accepted"] is None:
        return "limit"
    return f"ok {ezkl['num_rows']} rows" if ezkl["accepted"] else "refused"


def _note(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return str(row["skipped"])
    parts = []
    if not row["intake"]["accepted"]:
        parts.append(row["intake"]["message"])
    if row["ezkl"].get("error") and row["parity"] != "both refuse":
        parts.append(f"ezkl: {row['ezkl']['error']}")
    return " | ".join(parts)[:140]


def parity_table(rows: list[dict[str, Any]], markdown: bool) -> str:
    headers = ["model", "intake", "ezkl", "parity", "note"]
    cells = [[r["model"], _intake_cell(r), _ezkl_cell(r), r["parity"], _note(r)] for r in rows]
    return format_table(headers, cells, markdown)


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _outcome(step: dict[str, Any]) -> str:
    """A step that did not get as far as a proof, in a few words."""
    if step.get("outcome") == "limit":
        return f"{step.get('limit') or ''} limit".strip()
    if step.get("outcome") == "error" and step.get("stage") in ("plan", "compile", "prove"):
        return f"error at {step['stage']}"
    return str(step.get("outcome"))


def _unsplit_cell(step: dict[str, Any] | None) -> str:
    if not step:
        return "-"
    if step.get("outcome") != "compiled":
        return _outcome(step)
    ok = "ok" if step.get("verified") else "NOT VERIFIED" if "verified" in step else "no proof"
    return f"k{step['logrows']}/c{step['num_inner_cols']} {ok}"


def _segments_cell(step: dict[str, Any] | None) -> str:
    if not step:
        return "-"
    if step.get("outcome") != "segmented":
        return _outcome(step)
    ks = ",".join(map(str, step["segment_logrows"]))
    if "verified" not in step:
        return f"k{ks} no proof"
    accuracy = step.get("accuracy", {})
    rel = accuracy.get("relative_error")
    verdict = "ok" if step["verified"] else "NOT VERIFIED"
    seconds = f"{_fmt(step.get('prove_s'))}/{_fmt(step.get('prove_max_s'))}s"
    return f"k{ks} {verdict} rel {_fmt(rel, '.2g')} {seconds}"


def large_table(rows: list[dict[str, Any]], segments: list[int], markdown: bool) -> str:
    headers = [
        "model", "ezkl rows", "ezkl-default", "search", "prove s (def/search)",
        "time x", "peak MB (def/search)", "mem x",
        *[f"{k} segments (prove s all/slowest)" for k in segments],
    ]  # fmt: skip
    cells = []
    for r in rows:
        if "search" not in r:
            continue
        d, s, q = r["ezkl-default"], r["search"], r["ratios"]
        cells.append(
            [
                r["model"],
                str(r["ezkl"]["num_rows"]),
                _unsplit_cell(d),
                _unsplit_cell(s),
                f"{_fmt(d.get('prove_s'))}/{_fmt(s.get('prove_s'))}",
                _fmt(q["prove_time"], ".2f", "x"),
                f"{_fmt(d.get('peak_rss_mb'), '.0f')}/{_fmt(s.get('peak_rss_mb'), '.0f')}",
                _fmt(q["peak_rss"], ".2f", "x"),
                *[_segments_cell(r.get(f"segments_{k}")) for k in segments],
            ]
        )
    if not cells:
        return "(no large model was checked)"
    return format_table(headers, cells, markdown)


def step_problems(rows: list[dict[str, Any]], segments: list[int]) -> list[str]:
    """One line per large-model step that failed, hit a limit, did not verify or split."""
    lines = []
    for r in rows:
        for key in ("ezkl-default", "search", *[f"segments_{k}" for k in segments]):
            step = r.get(key) or {}
            why = step.get("error") or step.get("prove_error") or step.get("verify_reason")
            if why:
                what = f"prove {step['prove_outcome']}" if "prove_outcome" in step else None
                lines.append(f"{r['model']} {key}: {what or _outcome(step)}: {why}"[:300])
    return lines


def summarize(rows: list[dict[str, Any]], segments: list[int]) -> dict[str, Any]:
    """Intake parity counts, and over the large models how the search and splits did."""
    by = {p: sorted(r["model"] for r in rows if r.get("parity") == p) for p in PARITY}
    summary: dict[str, Any] = {
        "models": len(rows),
        "skipped": sorted(r["model"] for r in rows if r.get("parity") == "skipped"),
        **{p.replace(" ", "_"): len(names) for p, names in by.items()},
        "intake_refuses_ezkl_accepts": by["intake refuses"],
        "intake_accepts_ezkl_refuses": by["intake accepts"],
        "ezkl_unknown": by["unknown"],
        # accepted without a float reference (onnxruntime cannot run them): no accuracy
        # check, and no split (segments are calibrated on the float tensors at each cut)
        "intake_unchecked": sorted(
            r["model"] for r in rows if (r.get("intake") or {}).get("unchecked")
        ),
    }
    checked = [r for r in rows if "search" in r]
    both = [r for r in checked if r["ratios"]["prove_time"] is not None]
    differ = [r for r in both if not _same_circuit(r)]  # the same circuit differs by noise
    summary["large"] = {
        "eligible": sum(bool(r.get("large")) for r in rows),
        "models": sorted(r["model"] for r in rows if r.get("large")),
        "checked": len(checked),
        "both_proven": len(both),
        "both_verified": sum(
            bool(r["ezkl-default"].get("verified") and r["search"].get("verified")) for r in both
        ),
        "search_kept_ezkl_circuit": sorted(r["model"] for r in both if _same_circuit(r)),
        "search_time_worse": _worse(differ, "prove_time"),
        "search_memory_worse": _worse(differ, "peak_rss"),
    }
    for k in segments:
        steps = [(r["model"], r.get(f"segments_{k}") or {}) for r in checked]
        split = [(m, s) for m, s in steps if s.get("outcome") == "segmented"]
        summary[f"segments_{k}"] = {
            "tried": len(steps),
            "outcomes": {
                o: sum(s.get("outcome") == o for _, s in steps)
                for o in sorted({str(s.get("outcome")) for _, s in steps})
            },
            "split": len(split),
            "proven": sum("proof_id" in s for _, s in split),
            "verified": sum(bool(s.get("verified")) for _, s in split),
            "accurate": sum(bool(s.get("accuracy", {}).get("accurate")) for _, s in split),
            "smaller_logrows": sum((s.get("logrows_saved") or 0) > 0 for _, s in split),
            "not_verified_or_accurate": sorted(
                m
                for m, s in split
                if not (s.get("verified") and s.get("accuracy", {}).get("accurate"))
            ),
        }
    return summary


def totals_table(
    summary: dict[str, Any], segments: list[int], intake_only: bool, markdown: bool
) -> str:
    large = summary["large"]
    cells = [
        ["models", str(summary["models"]), ""],
        [
            "skipped (size, missing, LFS)",
            str(len(summary["skipped"])),
            " ".join(summary["skipped"]),
        ],
        ["both accept", str(summary["both_accept"]), ""],
        ["both refuse", str(summary["both_refuse"]), ""],
        [
            "intake refuses, ezkl accepts (regression)",
            str(summary["intake_refuses"]),
            " ".join(summary["intake_refuses_ezkl_accepts"]),
        ],
        [
            "intake accepts, ezkl refuses",
            str(summary["intake_accepts"]),
            " ".join(summary["intake_accepts_ezkl_refuses"]),
        ],
        ["ezkl verdict hit a limit", str(summary["unknown"]), " ".join(summary["ezkl_unknown"])],
        [
            "intake ok, no float reference",
            str(len(summary["intake_unchecked"])),
            " ".join(summary["intake_unchecked"]),
        ],
        ["large (>= --min-rows, intake ok)", str(large["eligible"]), " ".join(large["models"])],
    ]
    if intake_only:
        return format_table(["total", "count", "models"], cells, markdown)
    cells += [
        ["large checked / both proven", f"{large['checked']} / {large['both_proven']}", ""],
        ["both verified", str(large["both_verified"]), ""],
        [
            "search kept ezkl's circuit (same k, columns, key)",
            f"{len(large['search_kept_ezkl_circuit'])}/{large['both_proven']}",
            " ".join(large["search_kept_ezkl_circuit"]),
        ],
        [
            "search prove time <= 1.1x default (or same circuit)",
            f"{large['both_proven'] - len(large['search_time_worse'])}/{large['both_proven']}",
            "worse: " + " ".join(large["search_time_worse"]) if large["search_time_worse"] else "",
        ],
        [
            "search peak RSS <= 1.1x default (or same circuit)",
            f"{large['both_proven'] - len(large['search_memory_worse'])}/{large['both_proven']}",
            "worse: " + " ".join(large["search_memory_worse"])
            if large["search_memory_worse"]
            else "",
        ],
    ]
    for k in segments:
        seg = summary[f"segments_{k}"]
        outcomes = ", ".join(f"{o} {n}" for o, n in seg["outcomes"].items())
        cells.append(
            [
                f"into {k} segments: split / proven / verified / accurate",
                f"{seg['split']}/{seg['proven']}/{seg['verified']}/{seg['accurate']}"
                f" of {seg['tried']}",
                outcomes
                + (
                    "; not ok: " + " ".join(seg["not_verified_or_accurate"])
                    if seg["not_verified_or_accurate"]
                    else ""
                ),
            ]
        )
    return format_table(["total", "count", "models"], cells, markdown)


# --- main ------------------------------------------------------------------------------------


def _worse(rows: list[dict[str, Any]], ratio: str) -> list[str]:
    """The models whose search circuit is worse than ezkl's on ``ratio`` beyond noise."""
    return sorted(r["model"] for r in rows if r["ratios"][ratio] > NOISE)


def _same_circuit(row: dict[str, Any]) -> bool:
    """Whether the search kept ezkl's own circuit: the same logrows, columns and proving key
    size (then a difference in prove time is the machine's noise, not the search's)."""
    keys = ("logrows", "num_inner_cols", "pk_bytes")
    return all(row["search"].get(k) == row["ezkl-default"].get(k) for k in keys)


def _write(path: Path, args: argparse.Namespace, load_start: Any, rows: list[dict]) -> None:
    material = {
        "options": {
            "intake_only": args.intake_only,
            "min_rows": args.min_rows,
            "segments": args.segments,
            "timeout_s": args.timeout,
            "memory_bytes": args.memory_bytes,
            "rayon_num_threads": os.environ.get("RAYON_NUM_THREADS", "default"),
        },
        "environment": environment(load_start),
        "summary": summarize(rows, args.segments),
        "rows": rows,
    }
    write_json(path, material)


def _previous(path: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Rows of an earlier run to keep (``--resume``): any row for an intake-only run; for a
    full run, rows a full run made, unless this run's ``--min-rows`` makes a model large
    that the earlier run left out."""
    if not path.is_file():
        return {}

    def done(row: dict[str, Any]) -> bool:
        if args.intake_only:
            return True
        if row.get("mode") != "full":
            return False
        rows = (row.get("ezkl") or {}).get("num_rows")
        accepted = (row.get("intake") or {}).get("accepted")
        return "search" in row or not (accepted and rows is not None and rows >= args.min_rows)

    rows = json.loads(path.read_text()).get("rows", [])
    return {r["model"]: r for r in rows if done(r)}


def _clean(data_dir: Path) -> None:
    """Drop a model's circuits and proofs (keys take GBs); the SRS files stay for the next."""
    for part in ("circuits", "proofs", "models", ".staging"):
        shutil.rmtree(data_dir / part, ignore_errors=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--prove-child":
        prove_child(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--ezkl-repo", type=Path, default=EZKL_REPO)
    parser.add_argument("--json", type=Path, default=RESULTS / "check_examples.json")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--intake-only", action="store_true")
    parser.add_argument("--min-rows", type=int, default=2**15)
    parser.add_argument("--segments", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    parser.add_argument(
        "--memory", type=float, default=machine_memory() * 0.75 / 2**30, help="GiB per child"
    )
    parser.add_argument("--data-dir", type=Path, help="artifact store (default: a temp dir)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    args.memory_bytes = int(args.memory * 2**30)
    load_start = os.getloadavg()
    names = example_models(args.ezkl_repo, args.models)
    kept = _previous(args.json, args) if args.resume else {}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="check-examples-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        for name in names:
            if name in kept:
                rows.append(kept[name])
                continue
            _say(f"{name}: intake")
            work = Path(tmp) / "models"
            rows.append(check_model(args.ezkl_repo, name, args, work, str(data_dir)))
            if args.data_dir is None:
                _clean(data_dir)
            shutil.rmtree(work / name, ignore_errors=True)
            _say(f"{name}: {rows[-1].get('parity')} {_note(rows[-1])}")
            for line in step_problems(rows[-1:], args.segments):
                _say(line)
            others = [r for n, r in kept.items() if n not in names]  # other models' rows
            _write(args.json, args, load_start, rows + others)
    summary = summarize(rows, args.segments)
    print(parity_table(rows, args.markdown))
    print()
    if not args.intake_only:
        print(large_table(rows, args.segments, args.markdown))
        problems = step_problems(rows, args.segments)
        print("\n".join(["", *problems]) if problems else "")
        print()
    print(totals_table(summary, args.segments, args.intake_only, args.markdown))
    print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
