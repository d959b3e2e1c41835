"""Proofs of one inference on one circuit: create, verify, export."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import ezkl
import numpy as np

from prover.circuits.backend import prove_witness, verify_files
from prover.circuits.ranges import check_lookups
from prover.circuits.search import Progress
from prover.circuits.witness import generate_witness, rescaled_outputs, write_input
from prover.errors import CircuitError, InvalidInputError
from prover.proving.plans import ProofPlan, plan_proof, tensor_specs
from prover.proving.records import circuit_kind, proof_kind, proven_by
from prover.store import ArtifactStore, now_iso


def public_instances(proof_path: Path) -> list[list[str]]:
    """Public instances as big-endian 0x field elements (the order a verifier takes)."""
    proof = json.loads(proof_path.read_text())
    return [[ezkl.felt_to_big_endian(f) for f in row] for row in proof["instances"]]


def prove_input(
    store: ArtifactStore,
    circuit_ref: str,
    input_obj: Any,
    fresh: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prove one inference; the same (circuit, input) is answered from the store unless fresh."""
    return build_proof(store, plan_proof(store, circuit_ref, input_obj, fresh), progress)


def build_proof(
    store: ArtifactStore, plan: ProofPlan, progress: Progress | None = None
) -> dict[str, Any]:
    """Witness, prove and check the planned proof (or fetch it when already made)."""
    if store.exists("proofs", plan.proof_id):
        return {**store.read_record("proofs", plan.proof_id), "cached": True}
    if circuit_kind(store, plan.circuit) == "segmented":  # every segment here, one by one
        from prover.proving.composite import prove_composite

        return prove_composite(store, plan, progress)
    return prove_circuit(store, plan, progress)


def prove_circuit(
    store: ArtifactStore, plan: ProofPlan, progress: Progress | None = None
) -> dict[str, Any]:
    """``build_proof`` of one circuit (or a batch circuit's whole batch): what a market
    provider, which holds the circuit's files but not its model, calls."""
    say = progress or (lambda _m, _f: None)
    circuit, sample, input_digest, proof_id = (
        plan.circuit,
        plan.sample,
        plan.input_digest,
        plan.proof_id,
    )
    cdir = store.path("circuits", circuit["id"])
    srs = store.srs_path(circuit)
    polycommit = "polycommit" in circuit["visibility"].values()
    with store.create("proofs", proof_id) as out:
        say("witness", 0.05)
        started = time.perf_counter()
        input_path = write_input(out / "input.json", [sample])
        witness = generate_witness(
            cdir / "model.compiled",
            input_path,
            out / "witness.json",
            cdir / "vk.key" if polycommit else None,
            srs if polycommit else None,
        )
        witness_s = time.perf_counter() - started
        check_lookups(witness, json.loads((cdir / "settings.json").read_text()))
        say("proving", 0.2)
        try:
            prove_s = prove_witness(
                cdir / "model.compiled",
                cdir / "pk.key",
                out / "witness.json",
                out / "proof.json",
                srs,
                polycommit,
            )
        except Exception as exc:
            raise CircuitError(f"ezkl could not prove this input: {exc}") from exc
        say("verifying", 0.9)
        started = time.perf_counter()
        valid, reason = verify_files(
            out / "proof.json", cdir / "settings.json", cdir / "vk.key", srs
        )
        verify_s = time.perf_counter() - started
        if not valid:
            raise CircuitError(f"the fresh proof does not verify ({reason}); the circuit is broken")
        proof_json = json.loads((out / "proof.json").read_text())
        outputs = rescaled_outputs(witness, tensor_specs(circuit["outputs"]))
        record = {
            "id": proof_id,
            "type": "proof",
            "circuit_id": circuit["id"],
            "model_id": circuit["model_id"],
            "created_at": now_iso(),
            "input_digest": input_digest,
            "outputs": [o.tolist() for o in outputs],
            "outputs_public": circuit["visibility"]["output"] == "public",
            "instances": public_instances(out / "proof.json"),
            "proof": proof_json["hex_proof"],
            "proof_bytes": len(proof_json["proof"]),
            "dev_srs": circuit["dev_srs"],
            "timings": {
                "witness_s": round(witness_s, 4),
                "prove_s": round(prove_s, 4),
                "verify_s": round(verify_s, 4),
            },
        }
        (out / "record.json").write_text(json.dumps(record, indent=2))
    say("done", 1.0)
    return {**record, "cached": False}


def proof_file(store: ArtifactStore, proof_ref: str) -> Path:
    """The ezkl proof JSON of a stored proof (an id or a unique prefix); of a request
    proven in a batch, its batch proof's (``proving.batched``)."""
    record = store.read_record("proofs", proof_ref)
    return store.path("proofs", proven_by(record)) / "proof.json"


def resolve_proof(
    store: ArtifactStore, proof_ref: str, circuit_ref: str | None = None
) -> tuple[str | None, Path, dict[str, Any]]:
    """(proof id or None, proof file, circuit record) for a stored proof id, or for an
    ezkl proof file together with the circuit it was made for."""
    path = Path(proof_ref)
    if path.is_file():
        if circuit_ref is None:
            raise InvalidInputError(
                f"{proof_ref} is a proof file; name the circuit it was made for (--circuit)"
            )
        try:
            json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{proof_ref} is not an ezkl proof JSON file: {exc}") from exc
        proof_id = None
    else:
        record = store.read_record("proofs", proof_ref)
        if proof_kind(store, record) == "composite":
            raise InvalidInputError(
                f"proof {record['id'][:12]} is a composite of {len(record['segments'])} segment "
                "proofs (segment-<i>.json), not one proof file"
            )
        proof_id, circuit_ref = record["id"], circuit_ref or record["circuit_id"]
        path = store.path("proofs", proven_by(record)) / "proof.json"
    return proof_id, path, store.read_record("circuits", circuit_ref)


def verify(store: ArtifactStore, proof_ref: str, circuit_ref: str | None = None) -> dict[str, Any]:
    """Check a stored proof, or an ezkl proof file against a stored circuit, off-chain."""
    if not Path(proof_ref).is_file():
        record = store.read_record("proofs", proof_ref)
        kind = proof_kind(store, record)
        if kind == "composite":  # segment proofs and their links
            from prover.proving.composite import verify_composite

            return verify_composite(store, record["id"])
        if kind == "batched":  # its batch proof, and its place in it
            return _verify_in_batch(store, record)
    proof_id, proof_path, circuit = resolve_proof(store, proof_ref, circuit_ref)
    cdir = store.path("circuits", circuit["id"])
    started = time.perf_counter()
    valid, reason = verify_files(
        proof_path, cdir / "settings.json", cdir / "vk.key", store.srs_path(circuit)
    )
    return {
        "valid": valid,
        "reason": reason,
        "proof_id": proof_id,
        "circuit_id": circuit["id"],
        "dev_srs": circuit["dev_srs"],
        "verify_s": round(time.perf_counter() - started, 4),
    }


def _verify_in_batch(store: ArtifactStore, record: dict[str, Any]) -> dict[str, Any]:
    """Check a request proven in a batch (``proving.batched``): its batch proof with
    ezkl, and that its outputs are the ones the batch proof carries at its position."""
    from prover.circuits.layouts import split_outputs, stored_layout

    place = record["batch"]
    checked = verify(store, place["proof_id"])
    batch = store.read_record("proofs", place["proof_id"])
    layout = stored_layout(store, store.read_record("circuits", record["circuit_id"]))
    expected = split_outputs(layout, batch["outputs"])[place["position"]]
    same = all(
        np.array_equal(np.asarray(got, dtype=np.float64), want)
        for got, want in zip(record["outputs"], expected, strict=True)
    )
    reason = checked["reason"]
    if checked["valid"] and not same:
        reason = f"its outputs are not the batch proof's at position {place['position']}"
    return {
        **checked,
        "valid": bool(checked["valid"] and same),
        "reason": reason,
        "proof_id": record["id"],
        "batch_proof_id": place["proof_id"],
        "position": place["position"],
    }


def export_proof(store: ArtifactStore, proof_ref: str, out: Path) -> Path:
    """Copy a proof in ezkl's own proof JSON format, for ezkl's tools to check."""
    record = store.read_record("proofs", proof_ref)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    shutil.copyfile(proof_file(store, record["id"]), tmp)
    tmp.replace(out)
    return out
