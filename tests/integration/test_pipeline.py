"""The proving core end to end with real ezkl: compile, prove, verify, export, tamper."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import ezkl
import numpy as np
import pytest

from helpers.models import calibration_data, make_mlp
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.intake import FloatReference, load_model
from prover.circuits.search import SearchSpace, Visibility
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.proving.proofs import export_proof, prove_input, verify
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow

SMALL = SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,))


def test_search_beats_ezkl_default(
    compiled: dict, mlp_path: Path, session_settings: Settings, session_store: ArtifactStore
) -> None:
    default = compile_model(
        mlp_path,
        calibration_data(),
        CompileOptions(strategy="ezkl-default"),
        session_store,
        session_settings,
    )
    assert default["settings"]["decomp_base"] == 16384 and default["logrows"] >= 15
    assert compiled["logrows"] <= default["logrows"] - 4
    assert compiled["timings"]["trial_prove_s"] < default["timings"]["trial_prove_s"]
    assert compiled["accuracy"]["relative_error"] <= compiled["tolerance"]
    assert compiled["dev_srs"] is True
    assert not any(t["logrows"] and t["logrows"] >= 15 for t in compiled["search"]["trials"])


def test_same_request_is_not_recompiled(
    compiled: dict, mlp_path: Path, session_settings: Settings
) -> None:
    store = ArtifactStore(session_settings.data_dir)
    started = time.perf_counter()
    again = compile_model(mlp_path, calibration_data(), CompileOptions(), store, session_settings)
    assert again["id"] == compiled["id"] and again["cached"] is True
    assert time.perf_counter() - started < 1.0
    other = compile_model(
        mlp_path,
        calibration_data(),
        CompileOptions(tolerance=0.02, space=SMALL),
        store,
        session_settings,
    )
    assert other["id"] != compiled["id"]


def test_prove_matches_onnxruntime_and_verifies(
    compiled: dict,
    session_store: ArtifactStore,
    sample_input: dict,
    mlp_path: Path,
    session_settings: Settings,
) -> None:
    proof = prove_input(session_store, compiled["id"], sample_input, fresh=True)
    info = load_model(mlp_path, session_settings)
    reference = FloatReference(info.path, info.inputs)
    expected = reference.run([np.asarray(sample_input["input_data"][0])])[0]
    got = np.asarray(proof["outputs"][0])
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= compiled["tolerance"] * max(1, np.abs(expected).max())
    assert set(proof["timings"]) == {"witness_s", "prove_s", "verify_s"}
    assert proof["instances"] and all(x.startswith("0x") for x in proof["instances"][0])
    assert proof["proof"].startswith("0x")
    assert verify(session_store, proof["id"])["valid"] is True


def test_same_input_reuses_proof_unless_fresh(
    compiled: dict, session_store: ArtifactStore, sample_input: dict
) -> None:
    first = prove_input(session_store, compiled["id"], sample_input)
    second = prove_input(session_store, compiled["id"], sample_input)
    assert second["id"] == first["id"] and second["cached"] is True
    fresh = prove_input(session_store, compiled["id"], sample_input, fresh=True)
    assert fresh["id"] != first["id"]


def test_wrong_input_length_leaves_no_proof(compiled: dict, session_store: ArtifactStore) -> None:
    before = len(session_store.list_records("proofs"))
    with pytest.raises(InvalidInputError, match="expects 4 values"):
        prove_input(session_store, compiled["id"], [1.0, 2.0, 3.0])
    assert len(session_store.list_records("proofs")) == before


def test_input_outside_calibrated_range_is_refused(
    compiled: dict, session_store: ArtifactStore
) -> None:
    before = len(session_store.list_records("proofs"))
    with pytest.raises(InvalidInputError, match="outside what the circuit represents"):
        prove_input(session_store, compiled["id"], [1e7, -1e7, 1e7, 1e7])
    assert len(session_store.list_records("proofs")) == before


def _tampered_copy(src: Path, dst: Path, position: int) -> Path:
    proof = json.loads(src.read_text())
    raw = bytearray(bytes.fromhex(proof["hex_proof"][2:]))
    raw[position % len(raw)] ^= 0x01
    proof["hex_proof"] = "0x" + raw.hex()
    proof["proof"] = list(raw)
    dst.write_text(json.dumps(proof))
    return dst


def test_tampered_proofs_are_rejected(
    compiled: dict, session_store: ArtifactStore, sample_input: dict, tmp_path: Path
) -> None:
    proof = prove_input(session_store, compiled["id"], sample_input)
    exported = export_proof(session_store, proof["id"], tmp_path / "proof.json")
    rng = np.random.default_rng(7)
    for position in rng.integers(0, 1 << 20, size=6):
        bad = _tampered_copy(exported, tmp_path / f"bad{position}.json", int(position))
        result = verify(session_store, str(bad), compiled["id"])
        assert result["valid"] is False and result["reason"]

    changed = json.loads(exported.read_text())
    changed["instances"][0][0], changed["instances"][0][1] = (
        changed["instances"][0][1],
        changed["instances"][0][0],
    )
    (tmp_path / "instances.json").write_text(json.dumps(changed))
    assert verify(session_store, str(tmp_path / "instances.json"), compiled["id"])["valid"] is False


def test_exported_proof_checks_with_ezkl_alone(
    compiled: dict, session_store: ArtifactStore, sample_input: dict, tmp_path: Path
) -> None:
    proof = prove_input(session_store, compiled["id"], sample_input)
    out = export_proof(session_store, proof["id"], tmp_path / "exported.json")
    circuit_dir = session_store.path("circuits", compiled["id"])
    assert ezkl.verify(
        str(out),
        str(circuit_dir / "settings.json"),
        str(circuit_dir / "vk.key"),
        str(session_store.srs_path(compiled)),
        False,
    )
    assert verify(session_store, str(out), compiled["id"][:12])["valid"] is True
    with pytest.raises(InvalidInputError, match="name the circuit"):
        verify(session_store, str(out))


@pytest.mark.parametrize(
    "visibility",
    [
        Visibility("hashed", "fixed", "private"),
        Visibility("private", "private", "public"),
        Visibility("polycommit", "fixed", "public"),
    ],
    ids=lambda v: f"{v.input}-{v.param}-{v.output}",
)
def test_visibility_modes(
    visibility: Visibility,
    mlp_path: Path,
    settings: Settings,
    store: ArtifactStore,
    sample_input: dict,
) -> None:
    options = CompileOptions(visibility=visibility, space=SMALL)
    circuit = compile_model(mlp_path, calibration_data(), options, store, settings)
    proof = prove_input(store, circuit["id"], sample_input)
    assert verify(store, proof["id"])["valid"] is True
    assert proof["outputs_public"] is (visibility.output == "public")
    if visibility.input == "hashed":
        # One Poseidon hash of the inputs stands in for the four input values.
        assert len(proof["instances"][0]) == 1


def test_ceremony_srs_serves_smaller_circuits(
    mlp_path: Path, tmp_path: Path, sample_input: dict
) -> None:
    ceremony = tmp_path / "ceremony-k12.srs"
    ezkl.gen_srs(str(ceremony), 12)
    settings = Settings(data_dir=tmp_path / "data", srs_path=ceremony, measure_top=1)
    store = ArtifactStore(settings.data_dir)
    circuit = compile_model(
        mlp_path, calibration_data(), CompileOptions(space=SMALL), store, settings
    )
    assert circuit["dev_srs"] is False and circuit["srs"]["logrows"] == 12
    assert circuit["logrows"] < 12
    proof = prove_input(store, circuit["id"], sample_input)
    assert proof["dev_srs"] is False
    assert verify(store, proof["id"])["valid"] is True


def test_ezkl_default_strategy_and_synthetic_calibration(
    tmp_path: Path, settings: Settings, store: ArtifactStore, sample_input: dict
) -> None:
    path = make_mlp(tmp_path / "other.onnx", seed=3)
    circuit = compile_model(path, None, CompileOptions(strategy="ezkl-default"), store, settings)
    assert circuit["calibration"]["source"] == "synthetic"
    assert circuit["settings"]["decomp_base"] == 16384 and circuit["logrows"] >= 15
    proof = prove_input(store, circuit["id"], sample_input)
    assert verify(store, proof["id"])["valid"] is True


def test_moved_data_dir_still_proves_and_verifies(
    mlp_path: Path, settings: Settings, store: ArtifactStore, sample_input: dict, tmp_path: Path
) -> None:
    """A data dir (development SRS included) can be moved, e.g. onto a shared volume."""
    circuit = compile_model(
        mlp_path, calibration_data(), CompileOptions(space=SMALL), store, settings
    )
    proof = prove_input(store, circuit["id"], sample_input)
    moved = ArtifactStore(tmp_path / "moved")
    shutil.move(store.root, moved.root)
    assert verify(moved, proof["id"])["valid"] is True
    again = prove_input(moved, circuit["id"], sample_input, fresh=True)
    assert verify(moved, again["id"])["valid"] is True


def test_verify_gas_objective_prefers_fewest_columns(
    mlp_path: Path, settings: Settings, store: ArtifactStore
) -> None:
    space = SearchSpace(scales=(10,), legs=(3,), inner_cols=(4, 1))
    by_time = compile_model(
        mlp_path, calibration_data(), CompileOptions(space=space), store, settings
    )
    assert by_time["settings"]["num_inner_cols"] == 4  # fewer rows rank first
    by_gas = compile_model(
        mlp_path,
        calibration_data(),
        CompileOptions(space=space, objective="verify-gas"),
        store,
        settings,
    )
    assert by_gas["settings"]["num_inner_cols"] == 1
    with pytest.raises(InvalidInputError, match="objective"):
        CompileOptions(objective="cheapest")  # type: ignore[arg-type]
