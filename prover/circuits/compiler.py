"""Circuit compilation: intake → settings search → compile → SRS → setup, once per request.

A circuit id is the digest of everything that determines the circuit (model digest,
calibration digest, requested options, SRS source, ezkl version), so the same request is
answered from the store without recompiling.

The ezkl work (search, compile, setup) runs in a sandboxed child under a memory limit
(``compile_limits``): ezkl aborts its process when an allocation fails, and that must fail
the compile with a ``ResourceLimitError``, not kill the worker or the CLI.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np

from prover.circuits import estimate, gas
from prover.circuits.backend import prove_witness, setup_keys
from prover.circuits.data import Sample, parse_samples, sample_digest_material
from prover.circuits.intake import ModelInfo, load_model
from prover.circuits.sandbox import Limits, machine_memory, run_limited
from prover.circuits.search import (
    LARGE_ROWS,
    Progress,
    SearchSpace,
    Trial,
    Visibility,
    Workspace,
    choose_finalist,
    estimate_large,
    search,
    search_large,
)
from prover.circuits.srs import SRS, resolve_srs, srs_source
from prover.circuits.witness import generate_witness, write_input
from prover.config import Settings
from prover.errors import CircuitError, InvalidInputError
from prover.store import ArtifactStore, canonical_digest, now_iso

# 2: the finalist is the one with the smallest proving key, no longer the measured fastest
# (format 1 ids could name different circuits on different machines).
CIRCUIT_FORMAT = 2
EZKL_VERSION = version("ezkl")
CIRCUIT_FILES = ("settings.json", "model.compiled", "vk.key", "pk.key")

Strategy = Literal["search", "ezkl-default"]


@dataclass(frozen=True)
class CompileOptions:
    """What the user asks for; part of the circuit id."""

    visibility: Visibility = field(default_factory=Visibility)
    tolerance: float = 0.01
    strategy: Strategy = "search"
    space: SearchSpace = field(default_factory=SearchSpace)
    measure_top: int = 3
    # Lookup tables (exp, sigmoid, ...) cover the calibration range times this margin.
    lookup_margin: float = 2.0
    # Keys for ezkl's reusable EVM verifier (one shared contract per chain plus a
    # per-circuit key artifact): for circuits whose own verifier exceeds EIP-170. With
    # the verify-gas objective, False lets the gas model choose (``verifier_pin``).
    reusable_verifier: bool = False
    # What the finalists compete on: proving time, or on-chain verify gas as the fitted
    # gas model predicts it (``gas.predict``: columns, lookups, public instances).
    objective: Literal["prove-time", "verify-gas"] = "prove-time"

    def __post_init__(self) -> None:
        if self.strategy not in ("search", "ezkl-default"):
            raise InvalidInputError(f"strategy {self.strategy!r} is not search or ezkl-default")
        if not self.tolerance > 0:
            raise InvalidInputError(f"tolerance {self.tolerance} must be positive")
        if self.objective not in ("prove-time", "verify-gas"):
            raise InvalidInputError(f"objective {self.objective!r} is not prove-time or verify-gas")
        if not self.lookup_margin >= 1:
            raise InvalidInputError(f"lookup margin {self.lookup_margin} must be at least 1")


def synthetic_samples(info: ModelInfo, n: int = 8) -> list[Sample]:
    """Standard-normal inputs, used only when the user gives no calibration data."""
    rng = np.random.default_rng(0)
    return [[rng.standard_normal(t.size) for t in info.inputs] for _ in range(n)]


def store_model(store: ArtifactStore, info: ModelInfo) -> dict[str, Any]:
    """Keep the ONNX file under its digest (no-op when already stored)."""
    if not store.exists("models", info.model_id):
        with store.create("models", info.model_id) as out:
            shutil.copyfile(info.path, out / "model.onnx")
            record = {
                "id": info.model_id,
                "type": "model",
                "name": info.path.name,
                "bytes": info.path.stat().st_size,
                "created_at": now_iso(),
                **info.to_dict(),
            }
            del record["model_id"]
            (out / "record.json").write_text(_json(record))
    return store.read_record("models", info.model_id)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


def _measure(trial: Trial, ws: Workspace, settings: Settings, reusable_verifier: bool) -> SRS:
    """Set up keys for a finalist and time one real proof on the first sample."""
    assert trial.logrows is not None
    srs = resolve_srs(trial.logrows, settings.data_dir, settings.srs_path)
    trial_dir = trial.compiled_path.parent
    vk, pk, setup_s = setup_keys(trial.compiled_path, srs.path, trial_dir, reusable_verifier)
    input_path = write_input(trial_dir / "input.json", ws.samples[:1])
    witness = trial_dir / "witness.json"
    polycommit = ws.visibility.polycommit
    generate_witness(
        trial.compiled_path,
        input_path,
        witness,
        vk if polycommit else None,
        srs.path if polycommit else None,
    )
    trial.prove_s = round(
        prove_witness(
            trial.compiled_path, pk, witness, trial_dir / "proof.json", srs.path, polycommit
        ),
        4,
    )
    trial.setup_s = round(setup_s, 4)
    trial.pk_bytes = pk.stat().st_size
    return srs


def verifier_pin(options: CompileOptions) -> bool | None:
    """The verifier the request pins (True: reusable, False: own), or None: the gas
    model chooses. ``reusable_verifier`` has no unset value, so its default (False) is
    read as unpinned where verify gas is the objective: the own verifier is then kept
    unless predicted over EIP-170, where it could not deploy at all. Circuit ids are
    unchanged: the choice is a function of the request."""
    if options.reusable_verifier:
        return True
    return None if options.objective == "verify-gas" else False


def predicted_gas(trial: Trial, pin: bool | None) -> dict[str, Any]:
    """The gas model's prediction for a calibrated trial (``gas.predict``)."""
    return gas.predict(json.loads(trial.settings_path.read_text()), pin)


def finalists_for(ranked: list[Trial], options: CompileOptions) -> list[Trial]:
    """The candidates to set up: the search's first ``measure_top``, or, for verify gas,
    the one of least predicted gas with the verifier it would use (ties go to the
    search's order, which ranks cheaper proofs first)."""
    if options.objective != "verify-gas":
        return ranked[: max(1, options.measure_top)]
    pin = verifier_pin(options)
    return [min(ranked, key=lambda t: predicted_gas(t, pin)["gas"])]


@dataclass(frozen=True)
class CompilePlan:
    """A checked compile request: the model, its calibration samples and the circuit id.

    Made before any long work, so a service can answer bad input and repeat requests at once.
    """

    info: ModelInfo
    samples: list[Sample]
    source: Literal["user", "synthetic"]
    calibration_digest: str
    circuit_id: str


def _id_options(options: CompileOptions) -> dict[str, Any]:
    """The options as a circuit id takes them; without a range margin, as they were before
    margins existed (so those circuits keep their ids)."""
    material = asdict(options)
    if not options.space.margin_bits:
        del material["space"]["margin_bits"]
    return material


def plan_compile(
    model_path: Path, calibration: Any | None, options: CompileOptions, settings: Settings
) -> CompilePlan:
    """Check the model and calibration data and derive the circuit id (no circuit work)."""
    info = load_model(Path(model_path), settings)
    source: Literal["user", "synthetic"]
    if calibration is None:
        samples, source = synthetic_samples(info), "synthetic"
    else:
        samples, source = parse_samples(calibration, info.inputs), "user"
    samples = samples[: settings.calibration_samples]
    calibration_digest = canonical_digest([sample_digest_material(s) for s in samples])
    circuit_id = canonical_digest(
        {
            "format": CIRCUIT_FORMAT,
            "ezkl": EZKL_VERSION,
            "model": info.model_id,
            "calibration": calibration_digest,
            "options": _id_options(options),
            "srs": srs_source(settings.srs_path, settings.env == "production"),
        }
    )
    return CompilePlan(info, samples, source, calibration_digest, circuit_id)


def compile_model(
    model_path: Path,
    calibration: Any | None,
    options: CompileOptions,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Compile (or fetch) the circuit for a model; returns the circuit record."""
    say = progress or (lambda _m, _f: None)
    say("checking model", 0.0)
    plan = plan_compile(model_path, calibration, options, settings)
    return build_circuit(plan, options, store, settings, say)


def compile_limits(settings: Settings) -> Limits:
    """A compile's child: the configured memory (3/4 of the machine's when unset), and a
    time limit inside the worker's soft limit (90% of the hard one), so the child's end
    is reported as a limit, not a killed task."""
    return Limits(
        "compile",
        settings.compile_memory_bytes or int(machine_memory() * 0.75),
        settings.compile_time_limit_s * 0.85,
        "PROVER_COMPILE_MEMORY_BYTES",
        "PROVER_COMPILE_TIME_LIMIT_S",
    )


def build_circuit(
    plan: CompilePlan,
    options: CompileOptions,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Search, compile and set up the planned circuit (or fetch it when already built).

    The work runs in a child under ``compile_limits``; ``ResourceLimitError`` when the
    child runs out of memory or time.
    """
    say = progress or (lambda _m, _f: None)
    if store.exists("circuits", plan.circuit_id):
        say("cached", 1.0)
        return {**store.read_record("circuits", plan.circuit_id), "cached": True}
    record = run_limited(
        build_in_process,
        plan,
        options,
        store,
        settings,
        limits=compile_limits(settings),
        progress=say,
    )
    say("done", 1.0)
    return {**record, "cached": False}


UNCHECKED_SETTINGS = (
    "ezkl's own calibration (ezkl-default): without a float reference the search has "
    "no accuracy to compare its candidates on"
)


def _trials(
    ws: Workspace, options: CompileOptions, unchecked: bool, say: Progress
) -> tuple[list[Trial], list[Trial]]:
    """(ranked, tried): the search's, or ezkl's own calibration alone (asked for, or the
    only choice without a float reference)."""
    if options.strategy == "search" and not unchecked:
        searching: Progress = lambda m, f: say(m, 0.05 + 0.75 * f)  # noqa: E731
        if ws.probe_rows() > LARGE_ROWS:
            by_gas = gas_ranking(options)
            return search_large(ws, options.space, options.tolerance, by_gas, searching)
        return search(ws, options.space, options.tolerance, searching)
    say("ezkl calibration", 0.05)
    trial = ws.evaluate(None)
    if trial.error:
        raise CircuitError(f"ezkl could not build a circuit for this model: {trial.error}")
    return [trial], [trial]


def gas_ranking(options: CompileOptions) -> Callable[[Trial], float] | None:
    """The large search's ranking by predicted verify gas, when gas is the objective."""
    if options.objective != "verify-gas":
        return None
    pin = verifier_pin(options)
    return lambda trial: float(predicted_gas(trial, pin)["gas"])


def build_in_process(
    plan: CompilePlan,
    options: CompileOptions,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``build_circuit``'s work in this process, without limits: its sandboxed child."""
    say = progress or (lambda _m, _f: None)
    started = time.perf_counter()
    info, samples, circuit_id = plan.info, plan.samples, plan.circuit_id
    unchecked = info.unchecked is not None
    store_model(store, info)
    with store.create("circuits", circuit_id) as out:
        ws = Workspace(
            info,
            samples,
            options.visibility,
            out / "work",
            settings.max_logrows,
            options.lookup_margin,
        )
        search_started = time.perf_counter()
        ranked, tried = _trials(ws, options, unchecked, say)
        search_s = time.perf_counter() - search_started

        finalists = finalists_for(ranked, options)
        gas_by_trial = {t.name: predicted_gas(t, verifier_pin(options)) for t in finalists}
        srs_by_trial = {}
        for i, trial in enumerate(finalists):
            say(f"setup + trial proof: {trial.name}", 0.8 + 0.2 * i / len(finalists))
            reusable = gas_by_trial[trial.name]["verifier"] == "reusable"
            srs_by_trial[trial.name] = _measure(trial, ws, settings, reusable)
        chosen = choose_finalist(finalists)
        srs, verify_gas = srs_by_trial[chosen.name], gas_by_trial[chosen.name]
        for name in CIRCUIT_FILES:
            shutil.move(chosen.compiled_path.parent / name, out / name)
        shutil.rmtree(out / "work")

        assert chosen.accuracy is not None
        record = {
            "id": circuit_id,
            "type": "circuit",
            "model_id": info.model_id,
            "model_name": info.path.name,
            "created_at": now_iso(),
            "ezkl_version": EZKL_VERSION,
            "logrows": chosen.logrows,
            "dev_srs": srs.dev,
            "srs": srs.to_dict(settings.data_dir),
            "settings": chosen.run_args,
            "visibility": asdict(options.visibility),
            "reusable_verifier": verify_gas["verifier"] == "reusable",
            "verify_gas": {**verify_gas, "chosen_by": _chosen_by(options)},
            "strategy": "ezkl-default" if unchecked else options.strategy,
            "objective": options.objective,
            "tolerance": options.tolerance,
            "accuracy": _accuracy(chosen, info),
            "calibration": {
                "source": plan.source,
                "samples": len(samples),
                "digest": plan.calibration_digest,
            },
            "inputs": [t.to_dict() for t in info.inputs],
            "outputs": [t.to_dict() for t in info.outputs],
            "search": {"chosen": chosen.name, "trials": [_summary(t, unchecked) for t in tried]},
            "timings": {
                "search_s": round(search_s, 3),
                "setup_s": chosen.setup_s,
                "trial_prove_s": chosen.prove_s,
                "total_s": round(time.perf_counter() - started, 3),
            },
            "pk_bytes": (out / "pk.key").stat().st_size,
            "vk_bytes": (out / "vk.key").stat().st_size,
            "estimate": estimate.predict(json.loads((out / "settings.json").read_text())),
        }
        (out / "record.json").write_text(_json(record))
    return record


def _chosen_by(options: CompileOptions) -> str:
    """Who chose the verifier: the request, or the gas model."""
    return "request" if verifier_pin(options) is not None else "predicted gas"


def _accuracy(chosen: Trial, info: ModelInfo) -> dict[str, Any]:
    """The chosen circuit's accuracy against onnxruntime, or why it is unchecked."""
    if info.unchecked is not None:
        return {"status": "unchecked", "reason": info.unchecked, "settings": UNCHECKED_SETTINGS}
    assert chosen.accuracy is not None
    return {**asdict(chosen.accuracy), "status": "checked"}


def _summary(trial: Trial, unchecked: bool) -> dict[str, Any]:
    return {**trial.summary(), "accuracy": None} if unchecked else trial.summary()


def estimate_model(
    model_path: Path,
    calibration: Any | None,
    options: CompileOptions,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The cost of the circuit a compile of this request would choose, without setup.

    The model and calibration are checked as a compile checks them; the calibration work
    (ezkl gen_settings + calibrate; for the search's small circuits, the search itself,
    whose trials compile but are never set up) runs in a child under the compile's limits.
    """
    plan = plan_compile(Path(model_path), calibration, options, settings)
    return estimate_plan(plan, options, settings, progress)


def estimate_plan(
    plan: CompilePlan,
    options: CompileOptions,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``estimate_model`` of a checked compile plan (``compiler.plan_compile``)."""
    started = time.perf_counter()
    predicted = run_limited(
        _estimate_in_process,
        plan,
        options,
        settings,
        limits=compile_limits(settings),
        progress=progress,
    )
    return {
        "model_id": plan.info.model_id,
        "circuit_id": plan.circuit_id,
        **predicted,
        "estimate_s": round(time.perf_counter() - started, 3),
        "fit_error": estimate.FIT_ERROR,
    }


def _estimate_in_process(
    plan: CompilePlan,
    options: CompileOptions,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``estimate_model``'s work in this process (its sandboxed child)."""
    say = progress or (lambda _m, _f: None)
    unchecked = plan.info.unchecked is not None
    with tempfile.TemporaryDirectory(prefix="prover-estimate-") as tmp:
        ws = Workspace(
            plan.info,
            plan.samples,
            options.visibility,
            Path(tmp),
            settings.max_logrows,
            options.lookup_margin,
        )
        if options.strategy != "search" or unchecked:
            finalists = [ws.evaluate(None, compile=False)]
            basis = "ezkl-default"
        elif ws.probe_rows() > LARGE_ROWS:
            say("ezkl layouts", 0.1)
            finalists = estimate_large(ws, options.space, gas_ranking(options))
            basis = "cost-model"
        else:
            finalists, _ = search(ws, options.space, options.tolerance, say)
            finalists = finalists_for(finalists, options)
            basis = "search"
        if finalists[0].error:
            raise CircuitError(
                f"ezkl could not build a circuit for this model: {finalists[0].error}"
            )
        pin = verifier_pin(options)
        candidates = [
            {"name": t.name, **_predicted(t), "verify_gas": predicted_gas(t, pin)}
            for t in finalists
        ]
    chosen = min(candidates, key=lambda c: c["pk_bytes"])  # as choose_finalist, predicted
    return {**chosen, "chosen": chosen["name"], "basis": basis, "candidates": candidates}


def _predicted(trial: Trial) -> dict[str, Any]:
    return estimate.predict(json.loads(trial.settings_path.read_text()))
