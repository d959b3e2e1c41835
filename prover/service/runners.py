"""The work of each job kind: what a worker does between claiming a job and recording it.

Each runner takes the claim (its params and subject), the artifact store, the settings and
a progress callback, and returns the job's result. Core modules are imported inside the
runners: a worker process pays for ezkl, onnxruntime or web3 only when it runs such a job
(``worker.tasks`` warms them up in each pool process).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prover.circuits.search import Progress
from prover.config import Settings
from prover.errors import ProverError
from prover.service import jobs
from prover.service.options import CompileRequest
from prover.store import ArtifactStore

if TYPE_CHECKING:  # web3 loads only on workers that run chain jobs
    from prover.chain.client import Chain

Track = Callable[[str, float], None]  # (phase, fraction done)


def _compile_phase(message: str) -> str:
    if message.startswith("checking"):
        return "intake"
    if message.startswith("setup"):
        return "setup"
    return "search"


def compile_circuit(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: Track
) -> dict[str, Any]:
    from prover.circuits.compiler import build_circuit, plan_compile
    from prover.training.steps import build_step_circuit, planned_step, step_options

    assert claim.params is not None
    params = claim.params
    track("intake", 0.0)

    def say(message: str, fraction: float) -> None:
        track(_compile_phase(message), fraction)

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
            options = CompileRequest.parse(params["options"]).core_options(settings)
            plan = plan_compile(named, params["calibration"], options, settings)
            _same_circuit(plan.circuit_id, claim.subject_id)
            record = build_circuit(plan, options, store, settings, say)
    return {"circuit_id": record["id"], "logrows": record["logrows"], "cached": record["cached"]}


def _same_circuit(derived: str, requested: str | None) -> None:
    if derived != requested:
        raise ProverError(
            "this worker derives another circuit id for the request than the API did: "
            "the two run with different settings (SRS, ezkl version); align them"
        )


def _proof_phases(track: Track) -> Progress:
    """Proof progress as job phases (witness, proving, verifying)."""
    return lambda message, fraction: track(message if message != "done" else "verifying", fraction)


def prove_inference(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: Track
) -> dict[str, Any]:
    import numpy as np

    from prover.proving.proofs import ProofPlan, build_proof

    assert claim.params is not None and claim.subject_id is not None
    params = claim.params
    circuit = store.read_record("circuits", params["circuit_id"])
    sample = [np.asarray(values, dtype=np.float64) for values in params["input"]]
    plan = ProofPlan(circuit, sample, params["input_digest"], claim.subject_id)
    record = build_proof(store, plan, _proof_phases(track))
    return {"proof_id": record["id"], "outputs": record["outputs"], "timings": record["timings"]}


def _service_chain(settings: Settings, track: Track) -> Chain:
    """The service's chain and sending account, for a chain job (its phase starts here)."""
    from prover.chain.client import connect

    track("chain", 0.0)
    return connect(settings.rpc_url, settings.private_key)


def deploy_verifier(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: Track
) -> dict[str, Any]:
    from prover.chain.onchain import deploy_circuit

    assert claim.params is not None and claim.subject_id is not None
    chain = _service_chain(settings, track)
    return deploy_circuit(store, claim.subject_id, chain, bool(claim.params.get("force")))


def submit_result(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: Track
) -> dict[str, Any]:
    from prover.chain.onchain import submit_result as submit

    assert claim.params is not None and claim.subject_id is not None
    chain = _service_chain(settings, track)
    return submit(store, claim.subject_id, chain, bool(claim.params.get("commit_reveal")))


def prove_step(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: Track
) -> dict[str, Any]:
    from prover.service.training import step_inputs
    from prover.training.steps import prove_step

    assert claim.params is not None and claim.subject_id is not None
    step = claim.params["step"]
    circuit_id, weights, x, y = step_inputs(store, claim.subject_id, step, claim.params["after"])
    record = prove_step(store, circuit_id, weights, x, y, _proof_phases(track))
    return {
        "step": step,
        "proof_id": record["proof_id"],
        "input_digest": record["input_digest"],
        "loss": record["loss"],
        "commitments": record["commitments"],
    }


def put_run_on_ledger(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: Track
) -> dict[str, Any]:
    from prover.service.training import put_on_ledger

    assert claim.params is not None and claim.subject_id is not None
    chain = _service_chain(settings, track)
    return put_on_ledger(
        store, chain, claim.subject_id, claim.params["proof_ids"], lambda _m, f: track("chain", f)
    )
