"""Cost estimates against real compiles: the estimate names the circuit the compile then
builds, its shape exactly and its key size and memory within the model's error; the search
for large circuits keeps ezkl's calibration as a candidate and never picks one predicted
slower."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cli import one_json, run_cli
from helpers.files import write_json
from helpers.models import calibration_data
from prover.circuits.compiler import (
    CompileOptions,
    compile_model,
    estimate_model,
    gas_ranking,
    synthetic_samples,
)
from prover.circuits.intake import load_model
from prover.circuits.search import SearchSpace, Visibility, Workspace, search_large
from prover.config import Settings
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow

SPACE = SearchSpace(scales=(10,), legs=(3,), inner_cols=(1, 2))


def within(predicted: float, measured: float, error: float) -> bool:
    return abs(predicted - measured) <= error * measured


def test_the_estimate_names_the_circuit_the_compile_builds(mlp_path: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", measure_top=2)
    options = CompileOptions(space=SPACE)
    estimated = estimate_model(mlp_path, calibration_data(), options, settings)
    store = ArtifactStore(settings.data_dir)
    assert not store.exists("circuits", estimated["circuit_id"]), "an estimate stores nothing"

    record = compile_model(mlp_path, calibration_data(), options, store, settings)
    assert record["id"] == estimated["circuit_id"]
    assert record["search"]["chosen"] == estimated["chosen"]
    assert record["logrows"] == estimated["logrows"]
    assert within(estimated["pk_bytes"], record["pk_bytes"], 0.3)
    # The record's own estimate is the same prediction, from the settings it was built with.
    assert record["estimate"]["pk_bytes"] == estimated["pk_bytes"]
    assert record["estimate"]["peak_memory_bytes"] == estimated["peak_memory_bytes"]
    assert estimated["peak_memory_bytes"] > estimated["pk_bytes"]


def test_the_large_search_keeps_ezkl_and_never_picks_a_slower_candidate(
    mlp_path: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    info = load_model(mlp_path, settings)
    ws = Workspace(info, synthetic_samples(info, 2), Visibility(), tmp_path / "ws", 22, 2.0)
    space = SearchSpace(inner_cols=(1, 2, 4))
    [chosen], tried = search_large(ws, space, 0.05)
    assert tried[0].name == "ezkl-default" and tried[0].accuracy is not None
    assert len(tried) == 3, "ezkl's calibration and one calibration per other column count"
    default_s = tried[0].estimate["prove_s"]  # type: ignore[index]
    assert chosen.estimate is not None and chosen.estimate["prove_s"] <= default_s
    assert chosen.accuracy is not None and chosen.accuracy.relative_error <= 0.05
    others = [t for t in tried[1:] if t is not chosen]
    assert all(not t.compiled_path.exists() for t in others), "ranked, not compiled"

    by_gas = gas_ranking(CompileOptions(objective="verify-gas"))
    cheapest = search_large(ws, space, 0.05, by_gas)[0][0]
    assert int(cheapest.run_args["num_inner_cols"]) <= int(tried[0].run_args["num_inner_cols"])


def test_compile_estimate_prints_without_setting_up(mlp_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    cal = write_json(tmp_path / "cal.json", calibration_data())
    args = ("compile", str(mlp_path), "--calibration", str(cal), "--strategy", "ezkl-default")
    estimated = one_json(run_cli(data, *args, "--estimate", "--json"))
    assert estimated["basis"] == "ezkl-default" and estimated["pk_bytes"] > 0
    assert not (data / "circuits").exists() or not any((data / "circuits").iterdir())
    human = run_cli(data, *args, "--estimate")
    assert human.returncode == 0 and "per proof" in human.stdout
