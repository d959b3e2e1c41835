"""Settings search: try ezkl run-arg candidates, keep the cheapest one that stays accurate.

ezkl's own calibration optimises scales but keeps its default range-check decomposition
(base 16384, 2 legs), whose table alone needs 2^15 rows. The search instead sizes the
decomposition to the values the circuit must represent: for a fixed-point scale s and
``headroom_bits`` h, every (base, legs) with base^legs >= 2^(s+h) represents |x| < 2^h.
More legs mean a smaller table but more rows per check; more inner columns mean fewer
rows but more columns. Both trade-offs depend on the model, so candidates are compiled and
checked for accuracy, and the finalists are set up: the one with the smallest proving key
wins. A circuit id names one circuit, so the choice is a function of the request alone,
never of how fast the machine that compiled it happened to be.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, cast

import ezkl
import numpy as np

from prover.circuits import estimate
from prover.circuits.data import Sample
from prover.circuits.intake import FloatReference, ModelInfo
from prover.circuits.progress import Progress  # re-exported: its old home
from prover.circuits.witness import generate_witness, rescaled_outputs, write_input
from prover.errors import CircuitError, InvalidInputError

INPUT_VISIBILITIES = ("public", "private", "hashed", "polycommit")
PARAM_VISIBILITIES = ("fixed", "private", "public", "hashed", "polycommit")
# The largest scale the search widens to: ezkl warns that scales above 20 may impact
# performance, and each bit of scale doubles every range-check table's span.
MAX_SCALE = 20
# Past this many rows (ezkl's count at its default run args) the range-check table no longer
# sets the circuit's size and each trial costs a calibration, a compile and a setup of a
# large circuit: ``search_large`` ranks a few candidates with the cost model instead.
LARGE_ROWS = 2**15
# Rows a circuit cannot use (blinding) and slack for ezkl's own layout, when estimating.
RESERVED_ROWS = 32
# A candidate replaces ezkl's calibration only when predicted this much faster: the cost
# model's prove times are within about 25% on a quiet machine, and a near tie (measured:
# 1 inner column at 2^17 rows against ezkl's 2 at 2^16) proved 10% slower.
PREDICTED_GAIN = 0.8


class _RunArgFields(Protocol):
    """The ``ezkl.PyRunArgs`` attributes the search sets: ezkl's stub declares the class
    without its attributes, so they are typed here."""

    input_visibility: str
    param_visibility: str
    output_visibility: str
    variables: list[tuple[str, int]]
    input_scale: int
    param_scale: int
    decomp_base: int
    decomp_legs: int
    num_inner_cols: int


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
    """Scales, decomposition legs, inner-column counts and value ranges to try."""

    scales: tuple[int, ...] = (7, 10, 13)
    legs: tuple[int, ...] = (2, 3, 4)
    inner_cols: tuple[int, ...] = (1, 2, 4)
    # The circuit represents |x| < 2^h; a larger h is tried only when a smaller one fails.
    headroom_bits: tuple[int, ...] = (11, 15, 19)
    # Range beyond the smallest headroom that holds the calibration data: m more bits, so
    # values up to 2^m times larger. For circuits whose inputs vary more than one
    # calibration sample can show (a training step on other batches).
    margin_bits: int = 0

    def decomposition(self, scale: int, legs: int, headroom: int) -> tuple[int, int]:
        """The smallest power-of-two base whose ``legs`` digits cover 2^(scale+headroom)."""
        return 2 ** math.ceil((scale + headroom) / legs), legs

    def candidate(self, scale: int, legs: int, cols: int, headroom: int) -> Candidate:
        return Candidate(scale, *self.decomposition(scale, legs, headroom), cols)

    def wider_scales(self) -> tuple[int, ...]:
        """Scales to try when none of ``scales`` is accurate enough: onward from the largest
        in the space's own step, up to ``MAX_SCALE``. A space of one scale pins the scale
        (a circuit that must share its scale with another) and never widens."""
        ordered = sorted(set(self.scales))
        if len(ordered) < 2:
            return ()
        return tuple(
            range(ordered[-1] + ordered[-1] - ordered[-2], MAX_SCALE + 1, ordered[-1] - ordered[-2])
        )


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
    pk_bytes: int | None = None  # the proving key's size once set up: what finalists compete on
    search_s: float | None = None
    run_args: dict = field(default_factory=dict)
    estimate: dict | None = None  # the cost model's prediction (large circuits' search)

    @property
    def est_cost(self) -> float:
        """Proving work proxy within one column count: the circuit's rows."""
        return float("inf") if self.logrows is None else float(2**self.logrows)

    def summary(self) -> dict:
        predicted = {} if self.estimate is None else {"estimate": self.estimate}
        return {
            **predicted,
            "name": self.name,
            "logrows": self.logrows,
            "num_rows": self.num_rows,
            "est_cost": None if self.logrows is None else self.est_cost,
            "setup_s": self.setup_s,
            "prove_s": self.prove_s,
            "pk_bytes": self.pk_bytes,
            "search_s": self.search_s,
            "accuracy": asdict(self.accuracy) if self.accuracy else None,
            "error": self.error,
        }


class Workspace:
    """Shared state of one search: the model, its float reference, calibration samples.

    A model onnxruntime cannot run (``info.unchecked``) has no float outputs; its trials
    carry an unmeasured accuracy (NaN errors), and only ezkl's own calibration builds it.
    """

    def __init__(
        self,
        info: ModelInfo,
        samples: list[Sample],
        visibility: Visibility,
        directory: Path,
        max_logrows: int,
        lookup_margin: float,
    ) -> None:
        self.info = info
        self.samples = samples
        self.visibility = visibility
        self.dir = directory
        self.max_logrows = max_logrows
        self.lookup_margin = lookup_margin
        self.dir.mkdir(parents=True, exist_ok=True)
        self.calibration_path = write_input(self.dir / "calibration.json", samples)
        self.float_outputs = []
        if info.unchecked is None:
            reference = FloatReference(info.path, info.inputs)
            self.float_outputs = [reference.run(s) for s in samples]

    def run_args(self, candidate: Candidate | None) -> ezkl.PyRunArgs:
        args = ezkl.PyRunArgs()
        fields = cast(_RunArgFields, args)
        fields.input_visibility = self.visibility.input
        fields.param_visibility = self.visibility.param
        fields.output_visibility = self.visibility.output
        fields.variables = self.info.variables or [("batch_size", 1)]
        if candidate is not None:
            fields.input_scale = candidate.scale
            fields.param_scale = candidate.scale
            fields.decomp_base = candidate.decomp_base
            fields.decomp_legs = candidate.decomp_legs
            fields.num_inner_cols = candidate.num_inner_cols
        return args

    def evaluate(self, candidate: Candidate | None, compile: bool = True) -> Trial:
        """Calibrate, compile and check one candidate; ``None`` is ezkl's own calibration.
        Without ``compile``, only calibrate: the settings a cost estimate needs."""
        name = candidate.key if candidate else "ezkl-default"
        trial_dir = self.dir / name
        trial_dir.mkdir(exist_ok=True)
        trial = Trial(name, trial_dir / "settings.json", trial_dir / "model.compiled")
        self._attempt(trial, lambda: self._calibrate(trial, candidate))
        if compile and trial.error is None:
            self.finish(trial)
        return trial

    def finish(self, trial: Trial) -> Trial:
        """Compile a calibrated trial and check its accuracy."""
        return self._attempt(trial, lambda: self._compile(trial))

    def _attempt(self, trial: Trial, step: Callable[[], None]) -> Trial:
        try:
            step()
        except BaseException as exc:  # ezkl raises RuntimeError, or a pyo3 PanicException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            trial.error = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "failed"
            trial.logrows = None
        return trial

    def _calibrate(self, trial: Trial, candidate: Candidate | None) -> None:
        model = str(self.info.ezkl_path)
        ezkl.gen_settings(model, str(trial.settings_path), py_run_args=self.run_args(candidate))
        calibration: tuple[float, list[int] | None, list[int], int | None]
        if candidate is None:  # ezkl's own defaults throughout
            calibration = (2.0, None, [1, 2, 10], None)
        else:
            calibration = (self.lookup_margin, [candidate.scale], [1], self.max_logrows)
        ezkl.calibrate_settings(
            str(self.calibration_path), model, str(trial.settings_path), "resources", *calibration
        )
        settings = json.loads(trial.settings_path.read_text())
        trial.run_args = settings["run_args"]
        trial.logrows = int(trial.run_args["logrows"])
        trial.num_rows = int(settings["num_rows"])

    def _compile(self, trial: Trial) -> None:
        ezkl.compile_circuit(
            str(self.info.ezkl_path), str(trial.compiled_path), str(trial.settings_path)
        )
        trial.accuracy = self.accuracy(trial)

    def layout(self, cols: int | None) -> Trial:
        """ezkl's layout at its default run args (``cols`` inner columns, else its own)
        without calibration: one forward pass over a dummy input, seconds where a
        calibration of a large model takes minutes. logrows are the fewest that hold the
        rows and the range-check table; the cost model's prediction is in ``estimate``."""
        name = "ezkl-default" if cols is None else f"layout-c{cols}"
        trial_dir = self.dir / name
        trial_dir.mkdir(exist_ok=True)
        trial = Trial(name, trial_dir / "settings.json", trial_dir / "model.compiled")

        def lay_out() -> None:
            args = self.run_args(None)
            if cols is not None:
                cast(_RunArgFields, args).num_inner_cols = cols
            ezkl.gen_settings(str(self.info.ezkl_path), str(trial.settings_path), py_run_args=args)
            settings = json.loads(trial.settings_path.read_text())
            rows, base = int(settings["num_rows"]), int(settings["run_args"]["decomp_base"])
            logrows = max(
                math.ceil(math.log2(rows + RESERVED_ROWS)), math.ceil(math.log2(base)) + 1
            )
            settings["run_args"]["logrows"] = logrows
            trial.settings_path.write_text(json.dumps(settings))
            trial.run_args, trial.logrows, trial.num_rows = settings["run_args"], logrows, rows
            trial.estimate = estimate.predict(settings)

        return self._attempt(trial, lay_out)

    def probe_rows(self) -> int:
        """The rows ezkl counts for the model at its default run args, before any
        calibration (one forward pass over a dummy input); 0 when ezkl cannot count them."""
        path = self.dir / "probe.json"
        try:
            ezkl.gen_settings(str(self.info.ezkl_path), str(path), py_run_args=self.run_args(None))
            return int(json.loads(path.read_text())["num_rows"])
        except Exception:  # the search's own trials then report what ezkl refuses
            return 0

    def accuracy(self, trial: Trial) -> Accuracy:
        if self.info.unchecked is not None:
            return Accuracy(math.nan, math.nan, None, 0)
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


def _rank_key(trial: Trial) -> tuple[float, int, float]:
    assert trial.accuracy is not None and trial.num_rows is not None
    return (trial.est_cost, trial.num_rows, trial.accuracy.relative_error)


def _finalist_key(trial: Trial) -> tuple[float, float, int, float]:
    """Across column counts: the advice area (rows x inner columns), then the fewer rows."""
    cols = int(trial.run_args["num_inner_cols"])
    return (trial.est_cost * cols, *_rank_key(trial))


def search(
    ws: Workspace,
    space: SearchSpace,
    tolerance: float,
    progress: Progress | None = None,
) -> tuple[list[Trial], list[Trial]]:
    """Return (finalists, every trial tried).

    Stage 1 picks the scale: each scale at a reference structure (the middle legs and
    column counts) and the smallest value range that builds (widened by the space's
    margin); the cheapest passing one wins, ties going to the more accurate. When none is
    accurate enough, larger scales are tried one at a time (``SearchSpace.wider_scales``,
    while the range-check table fits ``max_logrows``) before the request is refused.
    Stage 2 tries every legs x columns combination at that scale, skipping those whose
    range-check table alone is larger than the best circuit found. The finalists are the
    cheapest passing trial for each column count, the smallest rows x columns first (a
    compile that sets up only one keeps that one); ``choose_finalist`` picks among those
    set up.
    """
    say = progress or (lambda _m, _f: None)
    ref_legs = sorted(space.legs)[len(space.legs) // 2]
    ref_cols = sorted(space.inner_cols)[len(space.inner_cols) // 2]
    total = len(space.scales) + len(space.legs) * len(space.inner_cols) - 1
    tried: list[Trial] = []

    def run(candidate: Candidate) -> Trial:
        say(f"trying {candidate.key}", min(0.99, len(tried) / total))
        started = time.perf_counter()
        trial = ws.evaluate(candidate)
        trial.search_s = round(time.perf_counter() - started, 3)
        tried.append(trial)
        return trial

    def first_that_builds(scale: int) -> tuple[Trial, int]:
        for headroom in space.headroom_bits:
            trial = run(space.candidate(scale, ref_legs, ref_cols, headroom))
            if trial.error is None:
                break
        if space.margin_bits and trial.error is None:  # that range, then the margin on top
            tried.remove(trial)
            headroom += space.margin_bits
            trial = run(space.candidate(scale, ref_legs, ref_cols, headroom))
        return trial, headroom

    def passing_of(by_scale: list[tuple[Trial, int]]) -> list[Trial]:
        return sorted((t for t, _ in by_scale if _passes(t, tolerance)), key=_rank_key)

    scales = list(space.scales)
    by_scale = [first_that_builds(s) for s in scales]
    passing = passing_of(by_scale)
    for wider in space.wider_scales():
        base, _ = space.decomposition(wider, ref_legs, space.headroom_bits[0] + space.margin_bits)
        if passing or math.ceil(math.log2(base)) + 1 > ws.max_logrows:
            break
        say(f"no scale up to {scales[-1]} is accurate enough: widening to {wider}", 0.5)
        scales.append(wider)
        by_scale.append(first_that_builds(wider))
        passing = passing_of(by_scale)
    if not passing:
        _raise_no_candidate([t for t, _ in by_scale], tolerance, scales)
    scale = int(passing[0].run_args["input_scale"])
    headroom = next(h for t, h in by_scale if t is passing[0])
    best_logrows = passing[0].logrows or ws.max_logrows
    for legs in sorted(space.legs, reverse=True):
        base, _ = space.decomposition(scale, legs, headroom)
        # The table alone needs `base` rows plus blinding rows.
        if math.ceil(math.log2(base)) + 1 > best_logrows:
            continue
        for cols in space.inner_cols:
            candidate = space.candidate(scale, legs, cols, headroom)
            if all(t.name != candidate.key for t in tried):
                trial = run(candidate)
                if _passes(trial, tolerance) and trial.logrows:
                    best_logrows = min(best_logrows, trial.logrows)
    say("search done", 1.0)
    ranked = sorted((t for t in tried if _passes(t, tolerance)), key=_rank_key)
    finalists: dict[int, Trial] = {}
    for trial in ranked:
        finalists.setdefault(int(trial.run_args["num_inner_cols"]), trial)
    return sorted(finalists.values(), key=_finalist_key), tried


def choose_finalist(finalists: list[Trial]) -> Trial:
    """The set-up finalist with the smallest proving key; ties go to the search's ranking.

    A proving key holds the circuit's fixed and permutation polynomials over its evaluation
    domain, so its size grows with the rows times the fixed and equality-constrained columns
    (ezkl adds selectors per inner column): the work a proof does beyond the advice columns,
    which cost about the same rows x columns for every finalist. It is an exact byte count
    fixed by the circuit and ezkl's version, so every machine picks the same finalist; the
    trial proofs' times are recorded but cannot change the choice. ``finalists`` are in the
    search's order; one that was not set up (no ``pk_bytes``) ranks after those that were.
    """
    order = {id(t): i for i, t in enumerate(finalists)}
    return min(finalists, key=lambda t: (t.pk_bytes is None, t.pk_bytes or 0, order[id(t)]))


def _raise_no_candidate(trials: list[Trial], tolerance: float, scales: list[int]) -> None:
    measured = [(t, t.accuracy) for t in trials if t.accuracy]
    if not measured:
        reasons = "; ".join(f"{t.name}: {t.error}" for t in trials)
        raise CircuitError(f"ezkl could not build a circuit for this model ({reasons})")
    best, accuracy = min(measured, key=lambda m: m[1].relative_error)
    raise CircuitError(
        f"no candidate reaches the accuracy tolerance {tolerance} at scales "
        f"{', '.join(map(str, scales))}: the best, {best.name}, has relative error "
        f"{accuracy.relative_error:.4g}; raise the tolerance",
        trials=[t.summary() for t in trials],
        scales=scales,
        best_relative_error=accuracy.relative_error,
    )


def search_large(
    ws: Workspace,
    space: SearchSpace,
    tolerance: float,
    verify_gas: Callable[[Trial], float] | None = None,
    progress: Progress | None = None,
) -> tuple[list[Trial], list[Trial]]:
    """Return ([chosen], every trial tried) for a circuit past ``LARGE_ROWS`` rows.

    ezkl's own calibration is always a candidate, and the fallback. Its scales and
    decomposition are kept (the model's rows, not the table, set the size) and the other
    inner-column counts of the space are only calibrated, not compiled: the cost model
    ranks them by predicted prove time, and one is chosen only when predicted clearly
    faster than ezkl's (``PREDICTED_GAIN``) and, compiled, accurate enough. So a compile
    costs ezkl's own path plus a calibration per column count, and proves no slower than
    ezkl's defaults (as far as the model predicts, and only where it was fitted: see
    ``replaces_default``). With ``verify_gas`` (a trial's
    predicted verify gas: the objective is gas) they are ranked by it instead, and one
    replaces ezkl's when predicted to cost less gas. When ezkl's calibration fails or is
    not accurate enough, the full ``search`` runs, as it does for a space pinned to one
    scale (a segment, whose scale must match its neighbours').
    """
    if len(set(space.scales)) == 1:  # a pinned scale (a segment): ezkl's own would not keep it
        return search(ws, space, tolerance, progress)
    say = progress or (lambda _m, _f: None)
    tried: list[Trial] = []

    def run(candidate: Candidate | None, full: bool) -> Trial:
        say(f"trying {candidate.key if candidate else 'ezkl-default'}", len(tried) / 4)
        started = time.perf_counter()
        trial = ws.evaluate(candidate, compile=full)
        trial.search_s = round(time.perf_counter() - started, 3)
        if trial.error is None:
            trial.estimate = estimate.predict(json.loads(trial.settings_path.read_text()))
        tried.append(trial)
        return trial

    default = run(None, True)
    if default.error is not None or not _passes(default, tolerance):
        say("ezkl's calibration fails or is not accurate enough: searching", 0.3)
        finalists, rest = search(ws, space, tolerance, progress)
        return finalists, [default, *rest]
    assert default.estimate is not None
    if verify_gas is None and not default.estimate["within_fit"]:
        return [default], tried  # no prediction could replace it (``replaces_default``)
    cols = int(default.run_args["num_inner_cols"])
    scale = int(default.run_args["input_scale"])
    base, legs = int(default.run_args["decomp_base"]), int(default.run_args["decomp_legs"])
    others = [c for c in space.inner_cols if c != cols]
    key = verify_gas or _predicted_prove_s
    ranked = sorted(
        (t for t in (run(Candidate(scale, base, legs, c), False) for c in others) if t.estimate),
        key=key,
    )
    best = ranked[0] if ranked else None
    if best is None or not replaces_default(best, default, key, verify_gas is not None):
        return [default], tried
    say(f"compiling {best.name}", 0.9)
    started = time.perf_counter()
    ws.finish(best)
    best.search_s = round((best.search_s or 0) + time.perf_counter() - started, 3)
    if not _passes(best, tolerance):
        return [default], tried
    return [best], tried


def estimate_large(
    ws: Workspace, space: SearchSpace, verify_gas: Callable[[Trial], float] | None = None
) -> list[Trial]:
    """[the circuit ``search_large`` would keep], as the cost model sees it without any
    calibration (``Workspace.layout``): ezkl's layout, replaced by another column count
    of the space only as ``replaces_default`` allows. An estimate of a 2^20-row model in
    seconds; the scales a calibration would choose are not known, so lookup tables are
    at ezkl's default scale."""
    default = ws.layout(None)
    if default.error is not None:
        return [default]
    cols = int(default.run_args["num_inner_cols"])
    others = [ws.layout(c) for c in space.inner_cols if c != cols]
    key = verify_gas or _predicted_prove_s
    ranked = sorted((t for t in others if t.error is None), key=key)
    if ranked and replaces_default(ranked[0], default, key, verify_gas is not None):
        return [ranked[0]]
    return [default]


def replaces_default(
    candidate: Trial, default: Trial, key: Callable[[Trial], float], gas: bool
) -> bool:
    """Whether a candidate's predicted cost replaces ezkl's calibration: any gas saved
    (the gas model's error is a few percent); or prove time by ``PREDICTED_GAIN`` at no
    more predicted peak memory, where the cost model was fitted on circuits like both
    (``estimate.within_fit``): outside it, ezkl's own choice stands."""
    if gas:
        return key(candidate) < key(default)
    assert candidate.estimate is not None and default.estimate is not None
    return (
        bool(candidate.estimate["within_fit"] and default.estimate["within_fit"])
        and key(candidate) <= PREDICTED_GAIN * key(default)
        and candidate.estimate["peak_memory_bytes"] <= default.estimate["peak_memory_bytes"]
    )


def _predicted_prove_s(trial: Trial) -> float:
    assert trial.estimate is not None
    return float(trial.estimate["prove_s"])
