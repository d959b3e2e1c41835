"""The finalist a compile keeps is a function of the request alone: timing cannot move it,
so one circuit id names one circuit on every machine."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from helpers.models import calibration_data
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace, Trial, choose_finalist, replaces_default
from prover.config import Settings
from prover.store import ArtifactStore


def finalist(name: str, pk_bytes: int | None, prove_s: float) -> Trial:
    return Trial(name, Path(name), Path(name), pk_bytes=pk_bytes, prove_s=prove_s)


def test_timing_cannot_change_the_choice() -> None:
    rng = random.Random(0)
    sizes = {"c4": 23_209_347, "c2": 17_311_499, "c1": 23_605_411}  # digits_mlp, measured
    for times in itertools.permutations([0.5, 1.0, 5.0]):
        for _ in range(20):
            perturbed = [t * rng.uniform(0.2, 5.0) for t in times]
            finalists = [finalist(n, sizes[n], s) for n, s in zip(sizes, perturbed, strict=True)]
            assert choose_finalist(finalists).name == "c2"


def test_ties_keep_the_search_order_and_unset_keys_rank_last() -> None:
    tied = [finalist("first", 100, 9.0), finalist("second", 100, 0.1)]
    assert choose_finalist(tied).name == "first"
    unset = [finalist("not set up", None, 0.1), finalist("set up", 10**9, 9.0)]
    assert choose_finalist(unset).name == "set up"


def test_wider_scales_continue_the_space() -> None:
    assert SearchSpace().wider_scales() == (16, 19)
    assert SearchSpace(scales=(13, 15, 17)).wider_scales() == (19,)
    assert SearchSpace(scales=(10,)).wider_scales() == ()  # a pinned scale never widens


@pytest.mark.slow
def test_compiles_on_two_stores_keep_the_smallest_key(mlp_path: Path, tmp_path: Path) -> None:
    space = SearchSpace(scales=(10,), legs=(3,), inner_cols=(1, 2, 4))
    records = []
    for name in ("a", "b"):
        settings = Settings(data_dir=tmp_path / name, measure_top=3)
        store = ArtifactStore(settings.data_dir)
        options = CompileOptions(space=space)
        records.append(compile_model(mlp_path, calibration_data(), options, store, settings))
    first, second = records
    assert first["id"] == second["id"] and first["settings"] == second["settings"]
    for record in records:
        measured = [t for t in record["search"]["trials"] if t["pk_bytes"] is not None]
        assert len(measured) == 3 and all(t["prove_s"] for t in measured)
        smallest = min(measured, key=lambda t: t["pk_bytes"])
        assert record["search"]["chosen"] == smallest["name"]


def _predicted(logrows: int, cols: int, lookups: int) -> Trial:
    from prover.circuits import estimate

    settings = {
        "num_rows": 2**logrows - 100,
        "run_args": {"logrows": logrows, "num_inner_cols": cols},
        "required_lookups": [{"Sigmoid": {}}] * lookups,
    }
    trial = Trial(f"k{logrows}-c{cols}", Path("s"), Path("c"))
    trial.estimate = estimate.predict(settings)
    return trial


def _by_time(trial: Trial) -> float:
    assert trial.estimate is not None
    return float(trial.estimate["prove_s"])


def test_a_candidate_replaces_ezkl_only_where_the_cost_model_was_fitted() -> None:
    """lstm_medium: ezkl's 2^18 rows, 2 inner columns and two lookup tables (Sigmoid,
    Tanh) against 2^17 and 1 column, predicted faster but measured 1.4x slower at 1.5x the
    memory: outside the fit, ezkl's choice stands."""
    default, candidate = _predicted(18, 2, 2), _predicted(17, 1, 2)
    assert _by_time(candidate) < 0.8 * _by_time(default)
    assert not replaces_default(candidate, default, _by_time, gas=False)
    # Inside the fit, a clear gain at no more memory replaces it; more memory does not.
    assert replaces_default(_predicted(14, 2, 0), _predicted(16, 2, 0), _by_time, gas=False)
    assert not replaces_default(_predicted(15, 4, 0), _predicted(16, 1, 0), _by_time, gas=False)
