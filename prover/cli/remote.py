"""``--remote``: the same commands through a running service (PROVER_API_URL, key
PROVER_API_KEY) instead of on this machine. Each helper submits a job, follows it (a
progress bar on a terminal) and returns what the local command would have computed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from prover.cli.inputs import load_data
from prover.cli.output import err, progress
from prover.config import get_settings

if TYPE_CHECKING:  # httpx is only needed once a command goes remote
    from prover.client import Client

RemoteOpt = typer.Option(
    False, help="Go through the running service at PROVER_API_URL (key: PROVER_API_KEY)."
)


def client() -> Client:
    """A client of the configured service (use it as a context manager)."""
    from prover.client import Client

    settings = get_settings()
    return Client(settings.api_url, settings.api_key)


def wait_job(service: Client, job_id: str, show: bool) -> dict[str, Any]:
    """Wait for a job to end; with ``show`` and a terminal, as a progress bar."""
    if not show or not err.is_terminal:
        return service.wait(job_id)
    with progress(True, f"job {job_id[:8]}") as say:
        return service.wait(job_id, on_progress=lambda j: say(j["phase"], j["progress"]))


def run_job(submit: Callable[[Client], dict[str, Any]], as_json: bool) -> dict[str, Any]:
    """Submit a job with ``submit(client)``, wait for it, and return its result."""
    with client() as service:
        accepted = submit(service)
        return wait_job(service, accepted["job_id"], not as_json)["result"]


def compile_model(
    model: Path, calibration: Path | None, options: dict[str, Any], as_json: bool
) -> dict[str, Any]:
    """compile --remote: upload the model, wait for the compile job; returns the circuit's
    view with the job's id."""
    with client() as service:
        accepted = service.submit_model(model, calibration, **options)
        wait_job(service, accepted["job_id"], not as_json)
        return {**service.circuit(accepted["circuit_id"]), "job_id": accepted["job_id"]}


def estimate(model: Path, calibration: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    """compile --estimate --remote: the service's estimate (nothing is stored)."""
    with client() as service:
        return service.estimate(model, calibration, **options)


def prove_input(
    circuit_id: str, input_path: Path, fresh: bool, as_json: bool, batching: bool = False
) -> dict[str, Any]:
    """prove --remote: request a proof from the service and wait for it."""
    with client() as service:
        accepted = service.request_proof(circuit_id, load_data(input_path), fresh, batching)
        wait_job(service, accepted["job_id"], not as_json)
        return service.proof(accepted["proof_id"])


def buy_proof(
    circuit_id: str, input_path: Path, offer: dict[str, int], as_json: bool
) -> dict[str, Any]:
    """prove --remote --market-max-price: the service buys the proof on the proof market;
    returns the fulfilment (prover, price, transaction, outputs) once the job sees it."""
    return run_job(
        lambda c: c.request_proof(circuit_id, load_data(input_path), market=offer), as_json
    )


def compile_step(
    graph: Path, sample: dict[str, Any], reusable_verifier: bool, as_json: bool
) -> dict[str, Any]:
    """train compile --remote: upload the step graph, wait for the compile job; returns
    the circuit record with its ``training`` record."""
    with client() as service:
        accepted = service.submit_step_circuit(graph, sample, reusable_verifier)
        wait_job(service, accepted["job_id"], not as_json)
        view = service.circuit(accepted["circuit_id"])
        return {**view["record"], "training": view["training"]}


def train(
    circuit_id: str, weights: list[float], batches: list[dict[str, Any]], as_json: bool
) -> dict[str, Any]:
    """train run --remote: start a training run and follow it step by step."""
    with client() as service:
        run = service.start_run(circuit_id, weights, batches)
        if as_json or not err.is_terminal:
            return service.wait_run(run["run_id"])
        with progress(True, f"run {run['run_id'][:8]}", run["steps_total"]) as say:
            return service.wait_run(
                run["run_id"],
                on_progress=lambda r: say(f"{r['steps_done']} steps proven", r["steps_done"]),
            )
