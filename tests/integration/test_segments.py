"""Segmented proving end to end with real ezkl: a small MLP cut into 2 and 3 circuits,
linked by KZG commitments (polycommit) or Poseidon hashes, proved, composed, verified,
and rejected when a segment proof is swapped, tampered with or taken from another model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.models import calibration_data
from prover.circuits.compiler import CompileOptions, CompilePlan, compile_model
from prover.circuits.intake import FloatReference
from prover.circuits.links import LinkChoice
from prover.circuits.search import SearchSpace
from prover.circuits.segment_build import build_segmented
from prover.circuits.segments import SegmentedPlan, plan_any, plan_segmented
from prover.circuits.tensors import TensorSpec
from prover.config import Settings
from prover.errors import CircuitError, InvalidInputError
from prover.proving.composite import (
    compose,
    prepare_segments,
    prove_composite,
    prove_segment,
    verify_composite,
    work_dir,
)
from prover.proving.proofs import plan_proof, prove_input, verify
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow

OPTIONS = CompileOptions(space=SearchSpace(scales=(8,), legs=(3,), inner_cols=(2,)), measure_top=1)
INPUT = {"input_data": [[0.5, -1.25, 0.75, 2.0]]}
OTHER = {"input_data": [[-0.3, 0.9, 1.5, -0.2]]}


def make_deep_mlp(path: Path, seed: int = 0) -> Path:
    """A 4-24-24-2 ReLU MLP: the wide middle layer makes segments of different sizes."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(seed)
    layers = [torch.nn.Linear(4, 24), torch.nn.ReLU(), torch.nn.Linear(24, 24), torch.nn.ReLU()]
    module = torch.nn.Sequential(*layers, torch.nn.Linear(24, 2))
    return export_onnx(module, torch.zeros(1, 4), path)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings, ArtifactStore]:
    root = tmp_path_factory.mktemp("segments")
    settings = Settings(data_dir=root / "data", measure_top=1)
    return make_deep_mlp(root / "deep.onnx"), settings, ArtifactStore(settings.data_dir)


def _build(env: tuple, segments: int, link: LinkChoice) -> dict[str, Any]:
    model, settings, store = env
    plan = plan_segmented(
        model, calibration_data(8), OPTIONS, settings, segments=segments, link=link
    )
    return build_segmented(plan, OPTIONS, store, settings)


@pytest.fixture(scope="module")
def poly2(env: tuple) -> dict[str, Any]:
    return _build(env, 2, "polycommit")


@pytest.fixture(scope="module")
def poly3(env: tuple) -> dict[str, Any]:
    return _build(env, 3, "polycommit")


@pytest.fixture(scope="module")
def hashed2(env: tuple) -> dict[str, Any]:
    return _build(env, 2, "hashed")


def _float(model: Path, data: dict) -> np.ndarray:
    reference = FloatReference(model, [TensorSpec("input", (1, 4), "float32")])
    return reference.run([np.asarray(data["input_data"][0])])[0].reshape(-1)


def _prove(store: ArtifactStore, circuit: dict, data: dict) -> dict[str, Any]:
    return prove_composite(store, plan_proof(store, circuit["id"], data))


def _assert_close(model: Path, proof: dict, data: dict) -> None:
    got = np.asarray(proof["outputs"][0]).reshape(-1)
    expected = _float(model, data)
    assert np.max(np.abs(got - expected)) <= OPTIONS.tolerance * max(1.0, np.max(np.abs(expected)))


@contextmanager
def _swapped(store: ArtifactStore, proof: dict, other: dict) -> Iterator[dict[str, Any]]:
    """``proof`` with segment 1 taken from ``other``, verified; restored afterwards (the
    proofs are shared by the module's tests)."""
    target = store.path("proofs", proof["id"]) / "segment-1.json"
    original = target.read_bytes()
    shutil.copyfile(store.path("proofs", other["id"]) / "segment-1.json", target)
    try:
        yield verify_composite(store, proof["id"])
    finally:
        target.write_bytes(original)


def test_two_segments_prove_verify_and_match_unsplit(env: tuple, poly2: dict) -> None:
    model, settings, store = env
    assert poly2["type"] == "segmented" and poly2["link"] == "polycommit"
    assert len(poly2["segments"]) == 2 and poly2["links"][0]["tensors"] == [poly2["cuts"][0]]
    assert len({s["logrows"] for s in poly2["segments"]}) == 1  # a commitment needs one k
    assert poly2["accuracy"]["relative_error"] <= OPTIONS.tolerance
    proof = _prove(store, poly2, INPUT)
    assert proof["type"] == "composite" and len(proof["segments"]) == 2
    checked = verify(store, proof["id"])  # the ordinary verify dispatches to the composite
    assert checked["valid"] and [link["valid"] for link in checked["links"]] == [True]
    _assert_close(model, proof, INPUT)
    unsplit = compile_model(model, calibration_data(8), OPTIONS, store, settings)
    single = prove_input(store, unsplit["id"], INPUT)
    assert np.allclose(proof["outputs"], single["outputs"], atol=2 * OPTIONS.tolerance)
    again = build_segmented(
        plan_segmented(model, calibration_data(8), OPTIONS, settings, segments=2),
        OPTIONS,
        store,
        settings,
    )
    assert again["cached"] and again["id"] == poly2["id"]


def test_three_segments_proved_out_of_order_then_composed(env: tuple, poly3: dict) -> None:
    model, _, store = env
    assert len(poly3["segments"]) == 3 and len({s["logrows"] for s in poly3["segments"]}) == 1
    # The last segment needs fewer rows alone: it was laid out again on the others' k.
    last = store.read_record("circuits", poly3["segments"][2]["circuit_id"])
    assert last.get("resized_from") and last["logrows"] == poly3["logrows"]
    plan = plan_proof(store, poly3["id"], INPUT)
    staged = prepare_segments(store, plan)
    assert [s["index"] for s in staged] == [0, 1, 2]
    with pytest.raises(CircuitError, match="segment 1 has not been proven"):
        prove_segment(store, plan.proof_id, 0)
        compose(store, plan)
    for index in (2, 1):
        prove_segment(store, plan.proof_id, index)
    first = prove_segment(store, plan.proof_id, 0)
    assert prove_segment(store, plan.proof_id, 0) == first  # idempotent
    proof = compose(store, plan)
    assert not work_dir(store, plan.proof_id).exists()
    result = verify_composite(store, proof["id"])
    assert result["valid"] and len(result["segments"]) == 3 and len(result["links"]) == 2
    _assert_close(model, proof, INPUT)


def test_hashed_link_proves_and_rejects_a_swapped_segment(env: tuple, hashed2: dict) -> None:
    model, _, store = env
    assert hashed2["link"] == "hashed"
    proof, other = _prove(store, hashed2, INPUT), _prove(store, hashed2, OTHER)
    assert verify_composite(store, proof["id"])["valid"]
    _assert_close(model, proof, INPUT)
    with _swapped(store, proof, other) as result:
        assert not result["valid"] and result["reason"].startswith("link 0->1")
        assert "hash" in result["reason"] and all(s["valid"] for s in result["segments"])


def test_swapped_segment_from_another_input_is_rejected(env: tuple, poly3: dict) -> None:
    _, _, store = env
    proof, other = _prove(store, poly3, INPUT), _prove(store, poly3, OTHER)
    with _swapped(store, proof, other) as result:
        assert not result["valid"] and result["reason"].startswith("link 0->1")
        assert [link["valid"] for link in result["links"]] == [False, False]
        assert all(s["valid"] for s in result["segments"])  # each proof alone is fine


def test_segment_from_another_model_or_tampered_is_rejected(
    env: tuple, poly2: dict, poly3: dict
) -> None:
    _, _, store = env
    proof, two = _prove(store, poly3, INPUT), _prove(store, poly2, INPUT)
    pdir = store.path("proofs", proof["id"])
    original = (pdir / "segment-1.json").read_bytes()
    shutil.copyfile(store.path("proofs", two["id"]) / "segment-1.json", pdir / "segment-1.json")
    result = verify_composite(store, proof["id"])
    assert not result["valid"] and result["reason"].startswith("segment 1 does not verify")
    tampered = json.loads(original)
    tampered["proof"][5] ^= 1  # inside segment 1's input commitment
    (pdir / "segment-1.json").write_text(json.dumps(tampered))
    result = verify_composite(store, proof["id"])
    assert not result["valid"] and result["reason"].startswith("segment 1 does not verify")
    (pdir / "segment-1.json").write_bytes(original)
    assert verify_composite(store, proof["id"])["valid"]


def test_compose_refuses_a_staged_segment_of_another_input(env: tuple, poly2: dict) -> None:
    _, _, store = env
    other = plan_proof(store, poly2["id"], OTHER, fresh=True)
    prepare_segments(store, other)
    prove_segment(store, other.proof_id, 1)
    plan = plan_proof(store, poly2["id"], INPUT, fresh=True)
    prepare_segments(store, plan)
    prove_segment(store, plan.proof_id, 0)
    staged = work_dir(store, plan.proof_id) / "segment-1"
    shutil.copyfile(
        work_dir(store, other.proof_id) / "segment-1" / "proof.json", staged / "proof.json"
    )
    result = json.loads((work_dir(store, other.proof_id) / "segment-1" / "result.json").read_text())
    (staged / "result.json").write_text(json.dumps(result))
    with pytest.raises(CircuitError, match="link 0->1"):
        compose(store, plan)
    assert not store.exists("proofs", plan.proof_id)


def test_a_worker_memory_budget_chooses_the_segments(env: tuple, tmp_path: Path) -> None:
    """``plan_any``: a budget too small for the whole model splits it into as few segments
    as fit; a budget that holds it keeps one circuit; one no segment fits is refused,
    naming what a segment needs."""
    import torch

    from prover.circuits.export import export_onnx

    _model, settings, _store = env
    torch.manual_seed(3)
    layers = [torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU()]
    model = export_onnx(
        torch.nn.Sequential(*layers, torch.nn.Linear(16, 2)), torch.zeros(1, 4), tmp_path / "m.onnx"
    )
    cal = calibration_data(8)
    whole = plan_any(model, cal, OPTIONS, settings, max_memory_bytes=2**33)
    assert isinstance(whole, CompilePlan)
    split = plan_any(model, cal, OPTIONS, settings, max_memory_bytes=150 * 2**20)
    assert isinstance(split, SegmentedPlan) and len(split.cuts) == 1
    with pytest.raises(InvalidInputError, match="needs about 2\\^10 rows"):
        plan_any(model, cal, OPTIONS, settings, max_memory_bytes=125 * 2**20)
