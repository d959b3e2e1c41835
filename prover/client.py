"""A small HTTP client of the service (used by the CLI's --remote mode, the demo and the
benchmarks). Errors come back as the service's own ``ProverError`` codes and messages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from prover.errors import ProverError


class ServiceError(ProverError):
    """The service answered with an error (its code and message are kept)."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", f"HTTP {status}"), status=status)
        self.code = error.get("code", "service_error")
        self.status = status
        self.details.update({k: v for k, v in error.items() if k not in ("code", "message")})


class Client:
    def __init__(self, url: str, key: str | None, timeout: float = 120.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ProverError(
                f"the service at {self.http.base_url} does not answer: {exc}"
            ) from exc
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            raise ServiceError(response.status_code, body.get("error", {"message": response.text}))
        return body

    def health(self) -> dict[str, Any]:
        return self.http.get("/health").json()

    @staticmethod
    def _upload(model: Path, calibration: Path | None, options: dict[str, Any]) -> dict[str, Any]:
        """A model upload's multipart parts: the file, the calibration, the compile form."""
        files = {"model": (model.name, model.read_bytes(), "application/octet-stream")}
        if calibration is not None:
            files["calibration"] = (
                "calibration.json",
                calibration.read_bytes(),
                "application/json",
            )
        data = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in options.items()
            if v is not None
        }
        return {"files": files, "data": data}

    def submit_model(
        self, model: Path, calibration: Path | None = None, **options: Any
    ) -> dict[str, Any]:
        return self._call("POST", "/v1/models", **self._upload(model, calibration, options))

    def estimate(
        self, model: Path, calibration: Path | None = None, **options: Any
    ) -> dict[str, Any]:
        """The service's cost estimate of compiling a model (nothing is stored)."""
        return self._call("POST", "/v1/estimates", **self._upload(model, calibration, options))

    def request_proof(
        self, circuit_id: str, input_obj: Any, fresh: bool = False, batching: bool = False
    ) -> dict[str, Any]:
        """Ask for a proof of one input; with ``batching`` (a batch circuit), proven with
        this key's other requests of the batch window."""
        body = {"input": input_obj, "fresh": fresh, "batching": batching}
        return self._call("POST", f"/v1/circuits/{circuit_id}/proofs", json=body)

    def deploy(self, circuit_id: str, force: bool = False) -> dict[str, Any]:
        return self._call("POST", f"/v1/circuits/{circuit_id}/deployments", json={"force": force})

    def submit_onchain(self, proof_id: str, commit_reveal: bool = False) -> dict[str, Any]:
        return self._call(
            "POST", f"/v1/proofs/{proof_id}/submissions", json={"commit_reveal": commit_reveal}
        )

    def submit_step_circuit(
        self, graph: Path, sample: dict[str, Any], reusable_verifier: bool = True
    ) -> dict[str, Any]:
        """Upload an exported step graph with a sample step {"weights", "x", "y"}."""
        files = {
            "model": (graph.name, graph.read_bytes(), "application/octet-stream"),
            "sample": ("sample.json", json.dumps(sample).encode(), "application/json"),
        }
        data = {"reusable_verifier": str(reusable_verifier).lower()}
        return self._call("POST", "/v1/training/circuits", files=files, data=data)

    def start_run(self, circuit_id: str, weights: Any, batches: list[Any]) -> dict[str, Any]:
        body = {"circuit_id": circuit_id, "weights": weights, "batches": batches}
        return self._call("POST", "/v1/training/runs", json=body)

    def run(self, run_id: str, steps: bool = True) -> dict[str, Any]:
        params = {} if steps else {"steps": "false"}
        return self._call("GET", f"/v1/training/runs/{run_id}", params=params)

    def put_on_ledger(self, run_id: str) -> dict[str, Any]:
        """Start a job that puts a succeeded run on the service chain's TrainingLedger."""
        return self._call("POST", f"/v1/training/runs/{run_id}/ledger")

    def verify_chain(
        self,
        proof_ids: list[str],
        batches: list[Any] | None = None,
        initial_weights: str | None = None,
    ) -> dict[str, Any]:
        body = {"proof_ids": proof_ids, "batches": batches, "initial_weights": initial_weights}
        return self._call("POST", "/v1/training/verify-chain", json=body)

    def wait_run(
        self,
        run_id: str,
        timeout: float = 24 * 3600.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait for a training run to end, step by step (long polls on each step's job,
        reading only the run's state in between); returns its full final view, raises if
        it failed."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id, steps=False)
            if on_progress:
                on_progress(run)
            if run["state"] == "succeeded":
                return self.run(run_id)
            if run["state"] == "failed":
                raise ServiceError(200, {**(run["error"] or {}), "run_id": run_id})
            if time.monotonic() > deadline:
                raise ProverError(f"run {run_id} did not end within {timeout} s", run_id=run_id)
            wait = max(0.0, min(30.0, deadline - time.monotonic()))
            self._call("GET", f"/v1/jobs/{run['job_id']}", params={"wait": wait})

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{job_id}")

    def proof(self, proof_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/proofs/{proof_id}")

    def circuit(self, circuit_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/circuits/{circuit_id}")

    def verify(self, proof_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/proofs/{proof_id}/verify")

    def wait(
        self,
        job_id: str,
        timeout: float = 3600.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait for a job to end (long polls, or short ones while reporting progress);
        returns its final view, raises if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            wait = 1.0 if on_progress else max(0.0, min(30.0, deadline - time.monotonic()))
            job = self._call("GET", f"/v1/jobs/{job_id}", params={"wait": wait})
            if on_progress:
                on_progress(job)
            if job["state"] == "succeeded":
                return job
            if job["state"] == "failed":
                error = job["error"] or {}
                raise ServiceError(200, {**error, "job_id": job_id})
            if time.monotonic() > deadline:
                raise ProverError(f"job {job_id} did not end within {timeout} s", job_id=job_id)
