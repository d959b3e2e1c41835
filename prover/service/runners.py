"""The work of each job kind: what a worker does between claiming a job and recording it.

Each runner takes the claim (its params and subject), the artifact store, the settings and
a progress callback, and returns the job's result. Core modules are imported inside the
runners: a worker process pays for ezkl, onnxruntime or web3 only when it runs such a job
(``worker.tasks`` warms them up in each pool process).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prover.circuits.progress import Progress
from prover.config import Settings
from prover.errors import ChildJobError, ProverError
from prover.service import jobs
from prover.service.options import CompileRequest
from prover.store import ArtifactStore

if TYPE_CHECKING:  # web3 loads only on workers that run chain jobs
    from prover.chain.client import Chain
    from prover.proving.plans import ProofPlan


def _compile_phase(message: str) -> str:
    if message.startswith("checking"):
        return "intake"
    if message.startswith("setup"):
        return "setup"
    return "search"


def run_compile(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from prover.training.steps import build_step_circuit, planned_step, step_options

    assert claim.params is not None
    params = claim.params
    progress("intake", 0.0)

    def say(message: str, fraction: float) -> None:
        progress(_compile_phase(message), fraction)

    with tempfile.TemporaryDirectory() as tmp:
        # The stored model under the name it was uploaded with (the record keeps the name).
        named = Path(tmp) / params["model_name"]
        named.symlink_to(store.path("models", params["model_id"]) / "model.onnx")
        if "step" in params:  # a training-step circuit (see ``service.training``)
            request = params["step"]
            options = step_options(request["tolerance"], settings, request["reusable_verifier"])
            step = planned_step(
                named, request["calibration"], options, request["mean_update"], settings
            )
            _same_circuit(step.compile.circuit_id, claim.subject_id)
            record = build_step_circuit(step, store, settings, say)
        else:
            record = _compile_model(named, params, claim.subject_id, store, settings, say)
    return {"circuit_id": record["id"], "logrows": record["logrows"], "cached": record["cached"]}


def _compile_model(
    named: Path,
    params: dict[str, Any],
    circuit_id: str | None,
    store: ArtifactStore,
    settings: Settings,
    say: Progress,
) -> dict[str, Any]:
    """An ordinary circuit, or a model in segments (one circuit each, and the composite),
    as the API planned it (``params["memory"]``: the worker memory it split to fit)."""
    from prover.circuits.plans import build_any
    from prover.circuits.segments import plan_any

    request = CompileRequest.parse(params["options"])
    options = request.core_options(settings)
    plan = plan_any(
        named,
        params["calibration"],
        options,
        settings,
        request.segments,
        request.max_logrows,
        params.get("memory"),
    )
    _same_circuit(plan.circuit_id, circuit_id)
    return build_any(plan, options, store, settings, say)


def _same_circuit(derived: str, requested: str | None) -> None:
    if derived != requested:
        raise ProverError(
            "this worker derives another circuit id for the request than the API did: "
            "the two run with different settings (SRS, ezkl version); align them"
        )


def _proof_phases(progress: Progress) -> Progress:
    """Proof progress as job phases (witness, proving, verifying)."""
    return lambda message, fraction: progress(
        message if message != "done" else "verifying", fraction
    )


def run_prove(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    import numpy as np

    from prover.proving.plans import ProofPlan
    from prover.proving.proofs import build_proof

    assert claim.params is not None and claim.subject_id is not None
    params = claim.params
    circuit = store.read_record("circuits", params["circuit_id"])
    sample = [np.asarray(values, dtype=np.float64) for values in params["input"]]
    plan = ProofPlan(circuit, sample, params["input_digest"], claim.subject_id)
    if circuit.get("type") == "segmented":
        return _prove_in_segments(claim, store, settings, progress, plan)
    record = build_proof(store, plan, _proof_phases(progress))
    return {"proof_id": record["id"], "outputs": record["outputs"], "timings": record["timings"]}


def _prove_in_segments(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress, plan: ProofPlan
) -> dict[str, Any]:
    """A proof of a segmented circuit, as the parent of one job per segment: the witnesses
    are made here, in order (each segment's input is the previous one's output); the
    segments are proven by as many workers at once; then this job runs again to check
    every segment proof and link and publish the composite proof."""
    from prover.proving.composite import compose, prepare_segments

    assert claim.job_id is not None
    db, count = settings.sqlalchemy_url(), len(plan.circuit["segments"])
    if not store.exists("proofs", plan.proof_id) and not jobs.children(db, claim.job_id):
        progress("witness", 0.02)
        prepare_segments(store, plan)
        params = [{"proof_id": plan.proof_id, "index": i} for i in range(count)]
        made = jobs.spawn(db, claim, "prove_segment", params)
        raise jobs.Waiting(f"segments 0/{count}", 0.1, made)
    spawned = (
        []
        if store.exists("proofs", plan.proof_id)
        else _await_children(db, claim, count, "segment")
    )
    progress("composing", 0.9)
    record = compose(store, plan)
    segments = [{"index": c["params"]["index"], "job_id": c["job_id"]} for c in spawned]
    return {
        "proof_id": record["id"],
        "outputs": record["outputs"],
        "timings": record["timings"],
        "segments": segments,
    }


def run_prove_batch(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    """A batch of one key's requests (``service.batching``): waits while the batch is
    open, then proves every request in it in one batch proof."""
    from prover.proving.batched import prove_requests
    from prover.service.batching import close_when_due

    assert claim.params is not None
    requests = close_when_due(settings.sqlalchemy_url(), claim.params["batch_id"])
    progress("witness", 0.02)
    record = prove_requests(store, claim.params["circuit_id"], requests, _proof_phases(progress))
    return {
        "batch_proof_id": record["id"],
        "input_digest": record["input_digest"],
        "requests": [
            {"proof_id": r["id"], "position": r["batch"]["position"]} for r in record["requests"]
        ],
        "size": len(record["requests"]),
        "timings": record["timings"],
    }


def run_prove_segment(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from prover.proving.composite import prove_segment as prove

    assert claim.params is not None
    index = claim.params["index"]
    record = prove(store, claim.params["proof_id"], index, _proof_phases(progress))
    return {"index": index, "timings": record.get("timings")}


def _service_chain(settings: Settings, progress: Progress) -> Chain:
    """The service's chain and sending account, for a chain job (its phase starts here)."""
    from prover.chain.client import connect

    progress("chain", 0.0)
    return connect(settings.rpc_url, settings.private_key)


def run_deploy(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from prover.chain.acceptance import deploy_any

    assert claim.params is not None and claim.subject_id is not None
    chain = _service_chain(settings, progress)
    return deploy_any(store, claim.subject_id, chain, bool(claim.params.get("force")))


def run_submit(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from prover.chain.acceptance import submit_any

    assert claim.params is not None and claim.subject_id is not None
    chain = _service_chain(settings, progress)
    return submit_any(store, claim.subject_id, chain, bool(claim.params.get("commit_reveal")))


def run_train_step(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from prover.service.training import step_inputs
    from prover.training.steps import prove_step

    assert claim.params is not None and claim.subject_id is not None
    step = claim.params["step"]
    circuit_id, weights, x, y = step_inputs(store, claim.subject_id, step, claim.params["after"])
    record = prove_step(store, circuit_id, weights, x, y, _proof_phases(progress))
    return {
        "step": step,
        "proof_id": record["proof_id"],
        "input_digest": record["input_digest"],
        "loss": record["loss"],
        "commitments": record["commitments"],
    }


def run_ledger(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from prover.service.training import put_on_ledger

    assert claim.params is not None and claim.subject_id is not None
    chain = _service_chain(settings, progress)
    return put_on_ledger(
        store,
        chain,
        claim.subject_id,
        claim.params["proof_ids"],
        lambda _m, f: progress("chain", f),
    )


def _await_children(db: str, claim: jobs.Claim, count: int, what: str) -> list[dict[str, Any]]:
    """A parent's children once all have succeeded; ``jobs.Waiting`` while some work,
    ``ChildJobError`` (the child's own code) as soon as one failed."""
    assert claim.job_id is not None
    spawned = jobs.children(db, claim.job_id)
    for child in spawned:
        if child["state"] == "failed":
            error, index = child["error"] or {}, child["params"]["index"]
            raise ChildJobError(
                f"{what} {index} failed: {error.get('message')}",
                error.get("code", "internal_error"),
                **{what: index, "job_id": child["job_id"]},
            )
    done = sum(child["state"] == "succeeded" for child in spawned)
    if done < count:
        raise jobs.Waiting(f"{what}s {done}/{count}", 0.1 + 0.8 * done / count)
    return spawned


def run_fed_round(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    """A federated round: the parent of one ``client_step`` job per client (proven at
    once by as many workers), then the aggregation proof and the round's check."""
    from prover.service.federated import aggregate_round

    assert claim.params is not None and claim.subject_id is not None and claim.job_id
    db, round_index = settings.sqlalchemy_url(), claim.params["round"]
    run = store.read_record("runs", claim.subject_id)
    count = len(run["rounds"][round_index])
    if not jobs.children(db, claim.job_id):
        params = [
            {"round": round_index, "index": k, "after": claim.params["after"]} for k in range(count)
        ]
        made = jobs.spawn(db, claim, "client_step", params)
        raise jobs.Waiting(f"clients 0/{count}", 0.05, made)
    spawned = _await_children(db, claim, count, "client")
    progress("aggregation", 0.9)
    client_proof_ids = [child["result"]["proof_id"] for child in spawned]
    return {
        "round": round_index,
        **aggregate_round(
            store, settings, claim.subject_id, claim.params["after"], client_proof_ids
        ),
    }


def run_client_step(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from prover.service.federated import client_inputs
    from prover.training.steps import prove_step

    assert claim.params is not None and claim.subject_id is not None
    p = claim.params
    circuit_id, weights, x, y = client_inputs(
        store, claim.subject_id, p["round"], p["index"], p["after"]
    )
    record = prove_step(store, circuit_id, weights, x, y, _proof_phases(progress))
    return {"index": p["index"], "proof_id": record["proof_id"], "loss": record["loss"]}
