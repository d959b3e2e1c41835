"""Composite (segmented) results on a real anvil chain with real ezkl proofs: one
transaction accepts a result only when every segment proof verifies and every link holds.

The model is a 3-layer MLP. The hashed composite is built by hand, as segmentation would
write it to the store (composite circuit and proof records over ordinary segment circuits
and proofs): the model cut after each ReLU with ``onnx.utils.extract_model``, every
segment compiled at one pinned scale so the cut values quantize alike on both sides. The
polycommit composite is built and proven by segmentation itself
(``prover.circuits.segments``, ``prover.proving.composite``). Bad composites are records
over other segment proofs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers.chain import OTHER_KEY
from helpers.models import calibration_data
from prover.chain.client import Chain, connect
from prover.chain.composites import (
    commitment_points,
    composite_arguments,
    deploy_composite,
    link_layout,
    submit_composite,
    verify_composite_onchain,
)
from prover.chain.contracts import contract, transact
from prover.chain.node import ANVIL_DEV_KEY, LocalChain
from prover.chain.onchain import verifier_arguments
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace, Visibility
from prover.circuits.segment_build import build_segmented
from prover.circuits.segments import plan_segmented
from prover.config import Settings
from prover.errors import ChainError, InvalidInputError
from prover.proving.composite import prove_composite
from prover.proving.proofs import plan_proof, prove_input
from prover.store import ArtifactStore, canonical_digest, now_iso

pytestmark = pytest.mark.slow

CUTS = ("/1/Relu_output_0", "/3/Relu_output_0")
SAMPLE = [0.5, -1.25, 0.75, 2.0]
# One scale for every segment; for polycommit, 2 legs make the range-check table set
# every segment's logrows alike (KZG commitments agree only within one domain size).
SPACES = {
    "hashed": SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,)),
    "polycommit": SearchSpace(scales=(10,), legs=(2,), inner_cols=(2,)),
}


def make_mlp3(path: Path, seed: int = 0) -> Path:
    """A 4-8-6-2 ReLU MLP exported to ONNX (cut points: CUTS)."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(seed)
    module = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 6),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 2),
    )
    return export_onnx(module, torch.zeros(1, 4), path)


def _visibility(mode: str, index: int, count: int) -> Visibility:
    return Visibility(
        "public" if index == 0 else mode, "fixed", "public" if index == count - 1 else mode
    )


def build_composite(
    store: ArtifactStore, settings: Settings, model: Path, cuts: tuple[str, ...], mode: str
) -> dict[str, Any]:
    """Split ``model`` at ``cuts``, compile each segment, store the composite record."""
    bounds = ["input", *cuts, "output"]
    count = len(bounds) - 1
    x = np.asarray(calibration_data()["input_data"][0], dtype=np.float32).reshape(-1, 1, 4)
    segments = []
    for i in range(count):
        path = model.with_name(f"{model.stem}-{mode}-{count}-{i}.onnx")
        onnx.utils.extract_model(str(model), str(path), [bounds[i]], [bounds[i + 1]])
        options = CompileOptions(
            visibility=_visibility(mode, i, count), space=SPACES[mode], measure_top=1
        )
        circuit = compile_model(
            path, {"input_data": [x.reshape(-1).tolist()]}, options, store, settings
        )
        segments.append({"index": i, "circuit_id": circuit["id"], "cut_after": bounds[i + 1]})
        session = ort.InferenceSession(str(path))
        x = np.stack([session.run(None, {bounds[i]: row})[0] for row in x])
    links = [{"from": i, "to": i + 1, "tensors": [bounds[i + 1]]} for i in range(count - 1)]
    record: dict[str, Any] = {"type": "segmented", "link": mode, "segments": segments}
    record["links"] = links
    composite_id = canonical_digest(record)
    store.save_record(
        "circuits", composite_id, {**record, "id": composite_id, "created_at": now_iso()}
    )
    return store.read_record("circuits", composite_id)


def prove_segments(
    store: ArtifactStore, composite: dict[str, Any], sample: list[float]
) -> list[dict[str, Any]]:
    """Prove each segment on the previous segment's output (ordinary proofs)."""
    proofs, values = [], sample
    for segment in composite["segments"]:
        proof = prove_input(store, segment["circuit_id"], {"input_data": [values]})
        proofs.append(proof)
        values = np.asarray(proof["outputs"][0]).reshape(-1).tolist()
    return proofs


def store_composite_proof(
    store: ArtifactStore, composite: dict[str, Any], proofs: list[dict[str, Any]]
) -> str:
    """A composite proof record over segment proofs (any, to build bad ones too)."""
    segments = [
        {
            "index": i,
            "circuit_id": p["circuit_id"],
            "proof_id": p["id"],
            "proof_file": f"segment-{i}.json",
            "instances": p["instances"],
        }
        for i, p in enumerate(proofs)
    ]
    proof_id = canonical_digest({"composite": composite["id"], "segments": segments})
    if store.exists("proofs", proof_id):
        return proof_id
    with store.create("proofs", proof_id) as out:
        for segment in segments:
            source = store.path("proofs", segment["proof_id"]) / "proof.json"
            shutil.copyfile(source, out / segment["proof_file"])
        record = {
            "id": proof_id,
            "type": "composite",
            "circuit_id": composite["id"],
            "segments": segments,
            "outputs": proofs[-1]["outputs"],
            "created_at": now_iso(),
        }
        (out / "record.json").write_text(json.dumps(record))
    return proof_id


@dataclass
class Fixture:
    store: ArtifactStore
    composite: dict[str, Any]
    proofs: list[dict[str, Any]]
    valid: str  # the composite proof id of a valid composite proof


def _hand_built(root: Path, mode: str, cuts: tuple[str, ...]) -> Fixture:
    settings = Settings(data_dir=root / "data")
    store = ArtifactStore(settings.data_dir)
    composite = build_composite(store, settings, make_mlp3(root / "mlp3.onnx"), cuts, mode)
    proofs = prove_segments(store, composite, SAMPLE)
    return Fixture(store, composite, proofs, store_composite_proof(store, composite, proofs))


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return _hand_built(tmp_path_factory.mktemp("hashed"), "hashed", CUTS)


@pytest.fixture(scope="module")
def polycommit(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    """The polycommit composite as segmentation builds and proves it (one logrows for
    every segment); ``proofs`` are the same segments proven one by one, with witnesses."""
    root = tmp_path_factory.mktemp("polycommit")
    settings = Settings(data_dir=root / "data")
    store = ArtifactStore(settings.data_dir)
    options = CompileOptions(space=SPACES["hashed"], measure_top=1)
    model = make_mlp3(root / "mlp3.onnx")
    plan = plan_segmented(
        model, calibration_data(), options, settings, segments=3, link="polycommit"
    )
    composite = build_segmented(plan, options, store, settings)
    proof = prove_composite(store, plan_proof(store, composite["id"], {"input_data": [SAMPLE]}))
    return Fixture(store, composite, prove_segments(store, composite, SAMPLE), proof["id"])


def test_hashed_layout_names_the_hash_instances(hashed: Fixture) -> None:
    # Segment 0: 4 public inputs, then its output hash; segment 1: input hash, output
    # hash; segment 2: input hash, then 2 public outputs.
    assert link_layout(hashed.store, hashed.composite) == [(0, 0, 4, 0), (1, 0, 1, 0)]
    instances = [p["instances"][0] for p in hashed.proofs]
    assert instances[0][4] == instances[1][0] and instances[1][1] == instances[2][0]


def test_hashed_composite_accepted_once_in_one_transaction(hashed: Fixture) -> None:
    with LocalChain() as node:  # its own chain: nothing deployed yet, whatever ran before
        _accepted_once(hashed, connect(node.rpc_url, ANVIL_DEV_KEY))


def _accepted_once(hashed: Fixture, chain: Chain) -> None:
    with pytest.raises(ChainError, match="deploy it first"):
        submit_composite(hashed.store, hashed.valid, chain)
    deployed = deploy_composite(hashed.store, hashed.composite["id"], chain)
    assert len(deployed["verifiers"]) == 3 and deployed["register_gas_used"] > 0
    again = deploy_composite(hashed.store, hashed.composite["id"], chain)
    assert again["register_gas_used"] == 0 and again["verifiers"] == deployed["verifiers"]

    answer = verify_composite_onchain(hashed.store, hashed.valid, chain)
    assert answer["valid"] is True and answer["gas"] > 3 * 200_000, answer
    accepted = submit_composite(hashed.store, hashed.valid, chain)
    assert accepted["accepted"] is True, accepted["reason"]
    assert accepted["gas_used"] > 3 * 200_000 and accepted["segments"] == 3
    assert accepted["event"]["name"] == "CompositeAccepted"
    assert accepted["event"]["circuit_id"] == hashed.composite["id"]
    assert accepted["event"]["prover"] == chain.account.address
    assert accepted["outputs"] == hashed.proofs[-1]["outputs"]
    print(f"\nhashed K=3: submit gas {accepted['gas_used']}, check gas {answer['gas']}")

    replay = submit_composite(hashed.store, hashed.valid, chain)
    assert replay["accepted"] is False and replay["reason"].startswith("AlreadyAccepted")


def _rejection(fixture: Fixture, chain: Chain, proofs: list[dict[str, Any]]) -> str:
    """The contract's reason for a composite proof made of ``proofs`` (also checked to
    be refused by the view call, with the same reason)."""
    proof_id = store_composite_proof(fixture.store, fixture.composite, proofs)
    deploy_composite(fixture.store, fixture.composite["id"], chain)
    answer = verify_composite_onchain(fixture.store, proof_id, chain)
    submitted = submit_composite(fixture.store, proof_id, chain)
    assert answer["valid"] is False and submitted["accepted"] is False
    assert submitted["reason"] == answer["reason"] and submitted["gas_used"] is None
    return str(answer["reason"])


def test_swapped_segment_proofs_are_rejected_naming_the_segment(
    hashed: Fixture, chain: Chain
) -> None:
    first, second, third = hashed.proofs
    assert _rejection(hashed, chain, [second, first, third]) == "InvalidSegmentProof(0)"
    assert _rejection(hashed, chain, [first, second, second]) == "InvalidSegmentProof(2)"


def test_broken_link_is_rejected_naming_the_link(hashed: Fixture, chain: Chain) -> None:
    """Segment 2 proven on another cut value: every proof verifies, the link does not."""
    cut = np.asarray(hashed.proofs[1]["outputs"][0]).reshape(-1)
    other = prove_input(
        hashed.store,
        hashed.composite["segments"][2]["circuit_id"],
        {"input_data": [(cut + 0.25).tolist()]},
    )
    assert _rejection(hashed, chain, [*hashed.proofs[:2], other]) == "LinkMismatch(1, 1)"


def test_segment_from_another_model_is_rejected(
    hashed: Fixture, chain: Chain, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = ArtifactStore(settings.data_dir)
    # The middle segment of another model (other weights), cut and compiled alike.
    path = tmp_path / "other-segment.onnx"
    model = make_mlp3(tmp_path / "m.onnx", seed=3)
    onnx.utils.extract_model(str(model), str(path), [CUTS[0]], [CUTS[1]])
    calibration = np.abs(np.random.default_rng(2).standard_normal(8 * 12)).round(4)
    options = CompileOptions(
        visibility=_visibility("hashed", 1, 3), space=SPACES["hashed"], measure_top=1
    )
    circuit = compile_model(path, {"input_data": [calibration.tolist()]}, options, store, settings)
    cut = np.asarray(hashed.proofs[0]["outputs"][0]).reshape(-1).tolist()
    foreign = prove_input(store, circuit["id"], {"input_data": [cut]})
    # Same input hash as the real segment 1 (the link holds), but another model's weights.
    assert foreign["instances"][0][0] == hashed.proofs[1]["instances"][0][0]
    shutil.copytree(store.path("proofs", foreign["id"]), hashed.store.path("proofs", foreign["id"]))
    reason = _rejection(hashed, chain, [hashed.proofs[0], foreign, hashed.proofs[2]])
    assert reason == "InvalidSegmentProof(1)"


def test_registration_belongs_to_its_first_registrant(hashed: Fixture, chain: Chain) -> None:
    deployed = deploy_composite(hashed.store, hashed.composite["id"], chain)
    other = connect(chain.w3.provider.endpoint_uri, OTHER_KEY)  # type: ignore[attr-defined]
    composites = contract(other, "ProvenComposites", deployed["composites_address"])
    hijack = composites.functions.register(
        bytes.fromhex(hashed.composite["id"]), deployed["verifiers"][:2], [(0, 0, 0, 0)]
    )
    with pytest.raises(ChainError, match="NotOwner"):
        transact(other, hijack)
    unlinked = composites.functions.register(b"\1" * 32, deployed["verifiers"], [(0, 0, 4, 0)])
    with pytest.raises(ChainError, match=r"UnlinkedSegments\(1\)"):
        transact(other, unlinked)
    with pytest.raises(InvalidInputError, match="not a segmented circuit"):
        deploy_composite(hashed.store, hashed.proofs[0]["circuit_id"], chain)


def test_polycommit_commitments_sit_at_the_layout_offsets(polycommit: Fixture) -> None:
    """The offsets the contract compares hold the commitments ezkl's witnesses name."""
    circuits = [
        polycommit.store.read_record("circuits", p["circuit_id"]) for p in polycommit.proofs
    ]
    assert len({c["logrows"] for c in circuits}) == 1, [c["logrows"] for c in circuits]
    layout = link_layout(polycommit.store, polycommit.composite)
    assert layout == [(0, 1, 0, 0), (1, 1, 64, 0)]
    _, proofs, _ = composite_arguments(polycommit.store, polycommit.valid)
    for link, _source, at_from, at_to in layout:
        witness = json.loads(
            (
                polycommit.store.path("proofs", polycommit.proofs[link]["id"]) / "witness.json"
            ).read_text()
        )
        (point,) = commitment_points(witness, "processed_outputs")
        assert proofs[link][at_from : at_from + 64] == point
        assert proofs[link + 1][at_to : at_to + 64] == point


def test_polycommit_layout_refuses_unequal_logrows(polycommit: Fixture, tmp_path: Path) -> None:
    """Commitments to equal values differ across domain sizes: such a link cannot hold."""
    store = ArtifactStore(tmp_path)
    for i, segment in enumerate(polycommit.composite["segments"]):
        record = polycommit.store.read_record("circuits", segment["circuit_id"])
        store.save_record("circuits", record["id"], {**record, "logrows": 12 + i})
    with pytest.raises(InvalidInputError, match="12 and 13 logrows"):
        link_layout(store, polycommit.composite)


def test_polycommit_composite_accepted_and_broken_link_rejected(
    polycommit: Fixture, chain: Chain
) -> None:
    deployed = deploy_composite(polycommit.store, polycommit.composite["id"], chain)
    assert deployed["checks"] == [[0, 1, 0, 0], [1, 1, 64, 0]]
    cut = np.asarray(polycommit.proofs[0]["outputs"][0]).reshape(-1)
    moved = prove_input(
        polycommit.store,
        polycommit.composite["segments"][1]["circuit_id"],
        {"input_data": [(cut + 0.25).tolist()]},
    )
    reason = _rejection(polycommit, chain, [polycommit.proofs[0], moved, polycommit.proofs[2]])
    assert reason == "LinkMismatch(0, 0)"
    accepted = submit_composite(polycommit.store, polycommit.valid, chain)
    assert accepted["accepted"] is True, accepted["reason"]
    print(f"\npolycommit K=3: submit gas {accepted['gas_used']}")
    assert submit_composite(polycommit.store, polycommit.valid, chain)["reason"].startswith(
        "AlreadyAccepted"
    )


def test_polycommit_proof_bytes_are_what_the_verifier_takes(polycommit: Fixture) -> None:
    """composite_arguments reads each segment file as ezkl encodes it for the EVM."""
    _, proofs, instances = composite_arguments(polycommit.store, polycommit.valid)
    path = polycommit.store.path("proofs", polycommit.valid) / "segment-1.json"
    assert (proofs[1], instances[1]) == verifier_arguments(path)
    assert instances[1] == []  # both sides of the middle segment are committed, not public
