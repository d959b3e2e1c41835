"""Proofs on segmented circuits: witness the chain once, prove segments anywhere, compose.

Witness generation is sequential (segment i+1 reads segment i's outputs) but cheap, so
``prepare_segments`` does it all in one place and publishes the witnesses as one store
entry (collection ``segment-work``, id the proof id: ``segment-<i>/`` per segment); any
worker can then ``prove_segment`` one index, and ``compose`` checks every segment proof
and every link before it publishes one composite proof record in ``proofs/<proof id>``.

Where a segment's proof waits: without an object store, next to its witness
(``segment-work/<proof id>/segment-<i>/proof.json`` and ``result.json``, the marker);
with one, as its own entry ``segment-work/<proof id>-<i>``, published once, so that the
witnesses, the segment proofs and the composing parent may each be on another host.

A link holds when the two proofs expose the same thing for the tensor at the cut: the same
KZG commitment points at the head of the proofs (polycommit; a verified proof binds the
column those points commit to), or the same Poseidon hash instances (hashed).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import ezkl

from prover.circuits.backend import prove_witness, verify_files
from prover.circuits.ranges import check_lookups
from prover.circuits.search import Progress
from prover.circuits.segments import run_chain
from prover.circuits.tensors import TensorSpec
from prover.circuits.witness import rescaled_outputs
from prover.errors import CircuitError, InvalidInputError, NotFoundError, UnavailableError
from prover.store import RECORD, ArtifactStore, now_iso, remove_stale, write_json_atomic

if TYPE_CHECKING:
    from prover.proving.plans import ProofPlan

WORK: Final = "segment-work"
_LEGACY = "prepared.json"  # what work staged before it was a store entry holds instead
_POINT_BYTES = 64  # a G1 point in ezkl's (EVM) proof transcript: x and y, 32 bytes each


def work_dir(store: ArtifactStore, proof_id: str) -> Path:
    """Where a composite proof's witnesses (and, without an object store, its segment
    proofs) wait to be composed, on this host."""
    return store.root / WORK / proof_id


def _segment_entry(proof_id: str, index: int) -> str:
    """The store id of a segment's proof result (with an object store)."""
    return f"{proof_id}-{index}"


def sweep_work(store: ArtifactStore, older_than_s: float) -> int:
    """Remove the staged work of composite proofs never composed (their request failed or
    was abandoned), older than any live proof could be; how many were removed.

    Always this host's directory (the work itself, or with an object store this host's
    cached copies, which can be fetched again); with an object store also the entries
    there whose record is older than that (any host's abandoned work)."""
    removed = remove_stale(store.root / WORK, older_than_s)
    if store.remote is None:
        return removed
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_s)
    try:
        for entry_id in store.remote.children(store.remote.key(WORK)):
            try:
                record = store.read_record(WORK, entry_id)
            except NotFoundError:  # no record: an upload in progress, or gone meanwhile
                continue
            made = record.get("created_at")
            if made is not None and datetime.fromisoformat(made) < cutoff:
                store.discard(WORK, entry_id)
                removed += 1
    except UnavailableError:  # the object store is away: the next sweep removes them
        pass
    return removed


def _segment_circuits(store: ArtifactStore, circuit: dict[str, Any]) -> list[dict[str, Any]]:
    return [store.read_record("circuits", s["circuit_id"]) for s in circuit["segments"]]


def _check_segmented(circuit: dict[str, Any]) -> None:
    if circuit.get("type") != "segmented":
        raise InvalidInputError(f"circuit {circuit['id'][:12]} is not a segmented circuit")


def _staged(store: ArtifactStore, proof_id: str) -> dict[str, Any] | None:
    """The prepared record of a proof's staged work, or None when none is staged."""
    if store.exists(WORK, proof_id):
        return store.read_record(WORK, proof_id)
    legacy = work_dir(store, proof_id) / _LEGACY
    return dict(json.loads(legacy.read_text())) if legacy.is_file() else None


def prepare_segments(store: ArtifactStore, plan: ProofPlan) -> list[dict[str, Any]]:
    """Witness every segment in order and publish the witnesses; idempotent."""
    circuit = plan.circuit
    _check_segmented(circuit)
    staged = _staged(store, plan.proof_id)
    if staged is not None:
        return list(staged["segments"])
    with store.create(WORK, plan.proof_id) as out:
        segment_circuits = _segment_circuits(store, circuit)
        steps = run_chain(store, segment_circuits, plan.sample, out)
        for step, segment in zip(steps, segment_circuits, strict=True):
            settings = store.path("circuits", segment["id"]) / "settings.json"
            check_lookups(step["witness"], json.loads(settings.read_text()))
        segments = [
            {
                "index": s["index"],
                "circuit_id": circuit["segments"][s["index"]]["circuit_id"],
                "witness_s": s["witness_s"],
            }
            for s in steps
        ]
        prepared = {
            "proof_id": plan.proof_id,
            "circuit_id": circuit["id"],
            "input_digest": plan.input_digest,
            "segments": segments,
            "created_at": now_iso(),
        }
        (out / RECORD).write_text(json.dumps(prepared, indent=2))
    # Another worker may have published the same proof's witnesses first: same content.
    return list(store.read_record(WORK, plan.proof_id)["segments"])


def _prepared(store: ArtifactStore, proof_id: str) -> dict[str, Any]:
    staged = _staged(store, proof_id)
    if staged is None:
        raise NotFoundError(f"proof {proof_id[:12]} has no prepared segments (prepare_segments)")
    return staged


def _witnesses(store: ArtifactStore, proof_id: str) -> Path:
    """This host's copy of a proof's staged witnesses (fetched when elsewhere)."""
    if store.exists(WORK, proof_id):
        return store.path(WORK, proof_id)
    return work_dir(store, proof_id)  # staged before it was a store entry


def _proven(store: ArtifactStore, proof_id: str, index: int) -> Path | None:
    """The directory of a segment's ``proof.json`` and ``result.json`` on this host
    (fetched when proven elsewhere), or None while the segment is not proven."""
    if store.remote is None:
        sdir = work_dir(store, proof_id) / f"segment-{index}"
    else:
        sdir = store.path(WORK, _segment_entry(proof_id, index))
    return sdir if (sdir / "result.json").is_file() else None


def _publish_segment(store: ArtifactStore, proof_id: str, index: int, made: Path) -> None:
    """Put a proven segment's ``proof.json`` and ``result.json`` (in ``made``) where
    ``_proven`` finds them; the first result published wins."""
    if store.remote is None:
        sdir = work_dir(store, proof_id) / f"segment-{index}"
        os.replace(made / "proof.json", sdir / "proof.json")
        os.replace(made / "result.json", sdir / "result.json")  # last: the marker
        return
    with store.create(WORK, _segment_entry(proof_id, index)) as out:
        shutil.copyfile(made / "proof.json", out / "proof.json")
        shutil.copyfile(made / "result.json", out / "result.json")
        shutil.copyfile(made / "result.json", out / RECORD)


def prove_segment(
    store: ArtifactStore, proof_id: str, index: int, progress: Progress | None = None
) -> dict[str, Any]:
    """Prove one staged segment; answered from its earlier result when already proven."""
    say = progress or (lambda _m, _f: None)
    prepared = _prepared(store, proof_id)
    if not 0 <= index < len(prepared["segments"]):
        raise InvalidInputError(
            f"segment index {index} is out of range: the proof has "
            f"{len(prepared['segments'])} segments"
        )
    done = _proven(store, proof_id, index)
    if done is not None:
        return dict(json.loads((done / "result.json").read_text()))
    circuit = store.read_record("circuits", prepared["segments"][index]["circuit_id"])
    cdir = store.path("circuits", circuit["id"])
    witness = _witnesses(store, proof_id) / f"segment-{index}" / "witness.json"
    say(f"proving segment {index}", 0.1)
    made = store.root / ".staging" / f"segment-{proof_id[:16]}-{index}-{uuid.uuid4().hex}"
    made.mkdir(parents=True)
    try:
        try:
            prove_s = prove_witness(
                cdir / "model.compiled",
                cdir / "pk.key",
                witness,
                made / "proof.json",
                store.srs_path(circuit),
                "polycommit" in circuit["visibility"].values(),
            )
        except Exception as exc:
            raise CircuitError(f"ezkl could not prove segment {index}: {exc}") from exc
        result = {
            "index": index,
            "circuit_id": circuit["id"],
            "timings": {
                "witness_s": prepared["segments"][index]["witness_s"],
                "prove_s": round(prove_s, 4),
            },
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "created_at": now_iso(),
        }
        write_json_atomic(made / "result.json", result)
        _publish_segment(store, proof_id, index, made)
    finally:
        shutil.rmtree(made, ignore_errors=True)
    say("done", 1.0)
    published = _proven(store, proof_id, index)
    assert published is not None
    return dict(json.loads((published / "result.json").read_text()))


def _point_bytes(proof: dict[str, Any], start: int, count: int) -> bytes:
    raw = bytes(proof["proof"])
    return raw[start * _POINT_BYTES : (start + count) * _POINT_BYTES]


def link_failure(
    link: str, left: dict[str, Any], right: dict[str, Any], counts: tuple[dict, dict]
) -> str | None:
    """Why two consecutive segment proofs (ezkl proof JSON) do not agree on their cut, or
    None: the left one's output commitments (or hashes) must be the right one's input ones."""
    left_counts, right_counts = counts
    n_out, n_in = left_counts["outputs"], right_counts["inputs"]
    if n_out != n_in or n_out == 0:
        return f"the segments expose {n_out} and {n_in} link values"
    if link == "polycommit":
        start = left_counts["inputs"] + left_counts["params"]
        same = _point_bytes(left, start, n_out) == _point_bytes(right, 0, n_in)
        what = "output commitment"
    else:
        left_values = [v for row in left["instances"] for v in row]
        right_values = [v for row in right["instances"] for v in row]
        same = left_values[len(left_values) - n_out :] == right_values[:n_in]
        what = "output hash"
    return None if same else f"the {what} differs from the next segment's input"


def check_segments(
    store: ArtifactStore, circuit: dict[str, Any], proof_files: list[Path]
) -> dict[str, Any]:
    """Verify every segment proof against its circuit and every link between them."""
    started = time.perf_counter()
    segments, proofs, reason = [], [], None
    for entry, path in zip(circuit["segments"], proof_files, strict=True):
        seg = store.read_record("circuits", entry["circuit_id"])
        cdir = store.path("circuits", seg["id"])
        t0 = time.perf_counter()
        if path.is_file():
            valid, why = verify_files(
                path, cdir / "settings.json", cdir / "vk.key", store.srs_path(seg)
            )
        else:
            valid, why = False, "its proof file is missing"
        segments.append(
            {
                "index": entry["index"],
                "valid": valid,
                "reason": why,
                "verify_s": round(time.perf_counter() - t0, 4),
            }
        )
        if not valid and reason is None:
            reason = f"segment {entry['index']} does not verify: {why}"
        proofs.append(json.loads(path.read_text()) if valid else None)
    links = []
    for link in circuit["links"]:
        i, j = link["from"], link["to"]
        left, right = proofs[i], proofs[j]
        why = (
            "a segment it joins does not verify"
            if left is None or right is None
            else link_failure(
                circuit["link"],
                left,
                right,
                (circuit["segments"][i]["link_values"], circuit["segments"][j]["link_values"]),
            )
        )
        links.append({"from": i, "to": j, "valid": why is None, "reason": why})
        if why is not None and reason is None:
            reason = f"link {i}->{j} ({', '.join(link['tensors'])}): {why}"
    return {
        "valid": reason is None,
        "reason": reason,
        "segments": segments,
        "links": links,
        "verify_s": round(time.perf_counter() - started, 4),
    }


def _instances(proof_path: Path) -> list[list[str]]:
    proof = json.loads(proof_path.read_text())
    return [[ezkl.felt_to_big_endian(f) for f in row] for row in proof["instances"]]


def compose(store: ArtifactStore, plan: ProofPlan) -> dict[str, Any]:
    """Check every staged segment proof and link, then publish one composite proof record
    (answered from the store when already composed)."""
    if store.exists("proofs", plan.proof_id):
        return {**store.read_record("proofs", plan.proof_id), "cached": True}
    circuit = plan.circuit
    _check_segmented(circuit)
    prepared = _prepared(store, plan.proof_id)
    results, files = [], []
    for entry in prepared["segments"]:
        sdir = _proven(store, plan.proof_id, entry["index"])
        if sdir is None:
            raise CircuitError(f"segment {entry['index']} has not been proven yet")
        results.append(json.loads((sdir / "result.json").read_text()))
        files.append(sdir / "proof.json")
    check = check_segments(store, circuit, files)
    if not check["valid"]:
        raise CircuitError(f"the segment proofs do not compose: {check['reason']}")
    wdir = _witnesses(store, plan.proof_id)
    last = json.loads((wdir / f"segment-{len(files) - 1}" / "witness.json").read_text())
    outputs = rescaled_outputs(last, [TensorSpec.from_dict(t) for t in circuit["outputs"]])
    with store.create("proofs", plan.proof_id) as out:
        shutil.copyfile(wdir / "segment-0" / "input.json", out / "input.json")
        for r, path in zip(results, files, strict=True):
            shutil.copyfile(path, out / f"segment-{r['index']}.json")
        instances = [_instances(path) for path in files]
        record = _proof_record(plan, results, instances, [o.tolist() for o in outputs], check)
        (out / "record.json").write_text(json.dumps(record, indent=2))
    _discard_work(store, plan.proof_id, len(files))
    return {**record, "cached": False}


def _discard_work(store: ArtifactStore, proof_id: str, count: int) -> None:
    """Remove a composed proof's work: its witnesses and segment proofs, everywhere."""
    if store.remote is not None:
        for index in range(count):
            store.discard(WORK, _segment_entry(proof_id, index))
        store.discard(WORK, proof_id)
    shutil.rmtree(work_dir(store, proof_id), ignore_errors=True)


def _proof_record(
    plan: ProofPlan,
    results: list[dict],
    instances: list[list[list[str]]],
    outputs: list,
    check: dict[str, Any],
) -> dict[str, Any]:
    circuit = plan.circuit
    return {
        "id": plan.proof_id,
        "type": "composite",
        "circuit_id": circuit["id"],
        "model_id": circuit["model_id"],
        "link": circuit["link"],
        "created_at": now_iso(),
        "input_digest": plan.input_digest,
        "outputs": outputs,
        "outputs_public": circuit["visibility"]["output"] == "public",
        "segments": [
            {
                "index": r["index"],
                "circuit_id": r["circuit_id"],
                "proof_file": f"segment-{r['index']}.json",
                "instances": instances[r["index"]],
                "timings": r["timings"],
                "worker": r["worker"],
            }
            for r in results
        ],
        "dev_srs": circuit["dev_srs"],
        "timings": {
            "witness_s": round(sum(r["timings"]["witness_s"] for r in results), 4),
            "prove_s": round(sum(r["timings"]["prove_s"] for r in results), 4),
            "prove_max_s": max(r["timings"]["prove_s"] for r in results),
            "verify_s": check["verify_s"],
        },
    }


def prove_composite(
    store: ArtifactStore, plan: ProofPlan, progress: Progress | None = None
) -> dict[str, Any]:
    """Prepare, prove every segment and compose, in this process (library and CLI)."""
    say = progress or (lambda _m, _f: None)
    if store.exists("proofs", plan.proof_id):
        return {**store.read_record("proofs", plan.proof_id), "cached": True}
    say("witness", 0.05)
    segments = prepare_segments(store, plan)
    for entry in segments:
        fraction = 0.1 + 0.8 * entry["index"] / len(segments)
        say(f"proving segment {entry['index'] + 1}/{len(segments)}", fraction)
        prove_segment(store, plan.proof_id, entry["index"])
    say("composing", 0.95)
    record = compose(store, plan)
    say("done", 1.0)
    return record


def verify_composite(store: ArtifactStore, proof_ref: str) -> dict[str, Any]:
    """Check a stored composite proof off-chain: every segment proof against its circuit,
    every link; the reason names the first failing segment or link."""
    record = store.read_record("proofs", proof_ref)
    if record.get("type") != "composite":
        raise InvalidInputError(f"proof {record['id'][:12]} is not a composite proof")
    circuit = store.read_record("circuits", record["circuit_id"])
    pdir = store.path("proofs", record["id"])
    files = [pdir / f"segment-{s['index']}.json" for s in circuit["segments"]]
    check = check_segments(store, circuit, files)
    return {
        **check,
        "proof_id": record["id"],
        "circuit_id": circuit["id"],
        "dev_srs": circuit["dev_srs"],
    }
