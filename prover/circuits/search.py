"""Settings search: try ezkl run-arg candidates, keep the cheapest one that stays accurate.

ezkl's own calibration optimises scales but keeps its default range-check decomposition
(base 16384, 2 legs), whose lookup table alone needs 2^15 rows. Smaller bases with more
legs, fewer or more inner columns, and the lowest scale that meets the accuracy target
often cut the circuit by several powers of two with the same outputs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ezkl
import numpy as np

from prover.circuits.data import Sample
from prover.circuits.intake import FloatReference, ModelInfo
from prover.circuits.witness import generate_witness, rescaled_outputs, write_input
from prover.errors import CircuitError, InvalidInputError

Progress = Callable[[str, float], None]

INPUT_VISIBILITIES = ("public", "private", "hashed", "polycommit")
PARAM_VISIBILITIES = ("fixed", "private", "public", "hashed", "polycommit")


@dataclass(frozen=True)
class Visibility:
    """Who sees the model's inputs, parameters and outputs in the proof."""

    input: str = "public"
    param: str = "fixed"
    output: str = "public"

    def __post_init__(self) -> None:
        for what, value, allowed in (
            ("input", self.input, INPUT_VISIBILITIES),
            ("param", self.param, PARAM_VISIBILITIES),
            ("output", self.output, INPUT_VISIBILITIES),
        ):
            if value not in allowed:
                raise InvalidInputError(
                    f"{what} visibility {value!r} is not one of {', '.join(allowed)}"
                )

    @property
    def polycommit(self) -> bool:
        return "polycommit" in (self.input, self.param, self.output)


@dataclass(frozen=True)
class Candidate:
    """One point of the search space."""

    scale: int
    decomp_base: int
    decomp_legs: int
    num_inner_cols: int

    @property
    def key(self) -> str:
        return f"s{self.scale}-b{self.decomp_base}x{self.decomp_legs}-c{self.num_inner_cols}"


@dataclass(frozen=True)
class SearchSpace:
    scales: tuple[int, ...] = (7, 10, 13)
    decompositions: tuple[tuple[int, int], ...] = ((128, 4), (1024, 3), (16384, 2))
    inner_cols: tuple[int, ...] = (1, 2, 4)


@dataclass
class Accuracy:
    """Circuit outputs against onnxruntime's float outputs over the calibration samples."""

    max_abs_error: float
    relative_error: float  # max_abs_error / max(1, max |float output|)
    argmax_agreement: float | None
    samples: int


@dataclass
class Trial:
    """A candidate after calibration, compilation and the accuracy check."""

    name: str
    settings_path: Path
    compiled_path: Path
    logrows: int | None = None
    num_rows: int | None = None
    accuracy: Accuracy | None = None
    error: str | None = None
    setup_s: float | None = None
    prove_s: float | None = None
    seconds: float | None = None
    run_args: dict = field(default_factory=dict)

    @property
    def est_cost(self) -> float:
        """Proving work proxy: rows times (roughly) the columns committed per row."""
        if self.logrows is None:
            return float("inf")
        return float(2**self.logrows * (3 * self.run_args.get("num_inner_cols", 2) + 2))

    def summary(self) -> dict:
        return {
            "name": self.name,
            "logrows": self.logrows,
            "num_rows": self.num_rows,
            "est_cost": None if self.logrows is None else self.est_cost,
            "setup_s": self.setup_s,
            "prove_s": self.prove_s,
            "search_s": self.seconds,
            "accuracy": asdict(self.accuracy) if self.accuracy else None,
            "error": self.error,
        }


class Workspace:
    """Shared state of one search: the model, its float reference, calibration samples."""

    def __init__(
        self,
        info: ModelInfo,
        samples: list[Sample],
        visibility: Visibility,
        directory: Path,
        max_logrows: int,
        lookup_margin: float = 2.0,
    ) -> None:
        self.info = info
        self.samples = samples
        self.visibility = visibility
        self.dir = directory
        self.max_logrows = max_logrows
        self.lookup_margin = lookup_margin
        self.dir.mkdir(parents=True, exist_ok=True)
        self.calibration_path = write_input(self.dir / "calibration.json", samples)
        reference = FloatReference(info)
        self.float_outputs = [reference.run(s) for s in samples]

    def run_args(self, candidate: Candidate | None) -> ezkl.PyRunArgs:
        args = ezkl.PyRunArgs()
        args.input_visibility = self.visibility.input
        args.param_visibility = self.visibility.param
        args.output_visibility = self.visibility.output
        args.variables = self.info.variables or [("batch_size", 1)]
        if candidate is not None:
            args.input_scale = candidate.scale
            args.param_scale = candidate.scale
            args.decomp_base = candidate.decomp_base
            args.decomp_legs = candidate.decomp_legs
            args.num_inner_cols = candidate.num_inner_cols
        return args

    def evaluate(self, candidate: Candidate | None) -> Trial:
        """Calibrate, compile and check one candidate; ``None`` is ezkl's own calibration."""
        name = candidate.key if candidate else "ezkl-default"
        trial_dir = self.dir / name
        trial_dir.mkdir(exist_ok=True)
        trial = Trial(name, trial_dir / "settings.json", trial_dir / "model.compiled")
        model = str(self.info.path)
        try:
            ezkl.gen_settings(model, str(trial.settings_path), py_run_args=self.run_args(candidate))
            if candidate is None:
                ezkl.calibrate_settings(
                    str(self.calibration_path),
                    model,
                    str(trial.settings_path),
                    "resources",
                    2.0,
                    None,
                    [1, 2, 10],
                    self.max_logrows,
                )
            else:
                ezkl.calibrate_settings(
                    str(self.calibration_path),
                    model,
                    str(trial.settings_path),
                    "resources",
                    self.lookup_margin,
                    [candidate.scale],
                    [1],
                    self.max_logrows,
                )
            ezkl.compile_circuit(model, str(trial.compiled_path), str(trial.settings_path))
            settings = json.loads(trial.settings_path.read_text())
            trial.run_args = settings["run_args"]
            trial.logrows = int(trial.run_args["logrows"])
            trial.num_rows = int(settings["num_rows"])
            trial.accuracy = self.accuracy(trial)
        except BaseException as exc:  # ezkl raises RuntimeError, or a pyo3 PanicException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            trial.error = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "failed"
            trial.logrows = None
        return trial

    def accuracy(self, trial: Trial) -> Accuracy:
        errors, scale, agree = [], 1.0, []
        for i, (sample, expected) in enumerate(zip(self.samples, self.float_outputs, strict=True)):
            input_path = write_input(trial.compiled_path.parent / "input.json", [sample])
            witness = generate_witness(
                trial.compiled_path, input_path, trial.compiled_path.parent / f"witness{i}.json"
            )
            got = rescaled_outputs(witness, self.info.outputs)
            for g, e in zip(got, expected, strict=True):
                errors.append(float(np.max(np.abs(g - e))) if e.size else 0.0)
                scale = max(scale, float(np.max(np.abs(e))) if e.size else 0.0)
            first_expected = expected[0].reshape(-1)
            if first_expected.size > 1:
                agree.append(int(np.argmax(got[0])) == int(np.argmax(first_expected)))
        max_err = max(errors) if errors else 0.0
        return Accuracy(
            max_abs_error=max_err,
            relative_error=max_err / scale,
            argmax_agreement=float(np.mean(agree)) if agree else None,
            samples=len(self.samples),
        )


def _passes(trial: Trial, tolerance: float) -> bool:
    return (
        trial.error is None
        and trial.accuracy is not None
        and (trial.accuracy.relative_error <= tolerance)
    )


def _rank_key(trial: Trial) -> tuple[float, float]:
    assert trial.accuracy is not None
    return (trial.est_cost, trial.accuracy.relative_error)


def search(
    ws: Workspace,
    space: SearchSpace,
    tolerance: float,
    progress: Progress | None = None,
) -> tuple[list[Trial], list[Trial]]:
    """Return (passing trials, cheapest first; every trial tried).

    Stage 1 picks the scale: each scale at a small-table reference structure, cheapest
    passing one wins (ties go to the more accurate). Stage 2 varies the range-check
    decomposition and column count at that scale.
    """
    say = progress or (lambda _m, _f: None)
    ref_base, ref_legs = space.decompositions[0]
    ref_cols = 2 if 2 in space.inner_cols else space.inner_cols[0]
    total = len(space.scales) + len(space.decompositions) * len(space.inner_cols) - 1
    tried: list[Trial] = []

    def run(candidate: Candidate) -> Trial:
        say(f"trying {candidate.key}", len(tried) / total)
        started = time.perf_counter()
        trial = ws.evaluate(candidate)
        trial.seconds = round(time.perf_counter() - started, 3)
        tried.append(trial)
        return trial

    scale_trials = [run(Candidate(s, ref_base, ref_legs, ref_cols)) for s in space.scales]
    passing = sorted((t for t in scale_trials if _passes(t, tolerance)), key=_rank_key)
    if not passing:
        best = min(
            (t for t in scale_trials if t.accuracy),
            key=lambda t: t.accuracy.relative_error,  # type: ignore[union-attr]
            default=None,
        )
        if best is None:
            reasons = "; ".join(f"{t.name}: {t.error}" for t in scale_trials)
            raise CircuitError(f"ezkl could not build a circuit for this model ({reasons})")
        raise CircuitError(
            f"no candidate reaches the accuracy tolerance {tolerance}: the best, {best.name}, "
            f"has relative error {best.accuracy.relative_error:.4g}; raise the tolerance or "  # type: ignore[union-attr]
            "add scales to the search",
            trials=[t.summary() for t in scale_trials],
        )
    scale = int(passing[0].run_args["input_scale"])
    best_logrows = passing[0].logrows or ws.max_logrows
    for base, legs in sorted(space.decompositions):
        # The range-check table alone needs `base` rows plus blinding rows: a base whose
        # table cannot fit below the best circuit so far cannot win.
        if math.ceil(math.log2(base)) + 1 > best_logrows:
            continue
        for cols in space.inner_cols:
            candidate = Candidate(scale, base, legs, cols)
            if all(t.name != candidate.key for t in tried):
                trial = run(candidate)
                if _passes(trial, tolerance) and trial.logrows:
                    best_logrows = min(best_logrows, trial.logrows)
    say("search done", 1.0)
    return sorted((t for t in tried if _passes(t, tolerance)), key=_rank_key), tried
