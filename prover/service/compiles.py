"""Accepting a compile: the model (intake), the calibration data and the options checked
before any job exists; the same compile request twice is one circuit and one job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from prover.config import Settings
from prover.service import grants
from prover.service.accepting import Accepted, Making, row_with_job, with_retry
from prover.service.capacity import pool_capacity
from prover.service.options import CompileRequest
from prover.service.tables import Circuit
from prover.store import ArtifactStore

if TYPE_CHECKING:
    from prover.circuits.plans import Plan


def submit_compile(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    model_path: Path,
    calibration: Any | None,
    requested: CompileRequest,
) -> Accepted:
    """Accept a model for compilation; returns the response and the jobs to enqueue.
    ``settings`` give the intake limits and the default tolerance."""
    from prover.circuits.data import to_ezkl_input
    from prover.circuits.plans import compile_plan

    options = requested.core_options(settings)
    memory = pool_capacity(settings) if requested.fit_workers else None
    with compile_plan(model_path, calibration, options, settings, requested, memory) as plan:
        params = {
            "calibration": to_ezkl_input(plan.samples) if plan.source == "user" else None,
            "options": requested.settled(settings),
            "memory": memory,  # the worker memory split to: the worker plans the same cuts
        }
        return accept_compile(settings, store, owner, plan, params)


def accept_compile(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    plan: Plan,
    params: dict[str, Any],
) -> Accepted:
    """Record a checked compile plan: its model, circuit row and compile job (unless the
    circuit exists and has not failed). ``params`` tell the worker how to build it. The
    model's file name is this key's own (on its grants), not the shared rows'."""
    db_url = settings.sqlalchemy_url()
    from prover.circuits.compiler import store_model
    from prover.circuits.segments import SegmentedPlan

    store_model(store, plan.info)
    name = plan.info.path.name
    params = {"model_id": plan.info.model_id, "model_name": name, **params}

    def make_circuit(job_id: str) -> Circuit:
        return Circuit(
            id=plan.circuit_id,
            model_id=plan.info.model_id,
            model_name=name,
            state="compiling",
            job_id=job_id,
        )

    def ready_result() -> dict[str, Any]:
        record = store.read_record("circuits", plan.circuit_id)
        return {"circuit_id": plan.circuit_id, "logrows": record["logrows"], "cached": True}

    making = Making("compile", plan.circuit_id, params, "compiling", make_circuit, ready_result)

    def body(session: Session) -> Accepted:
        row = session.get(Circuit, plan.circuit_id)
        circuit, job, enqueue = row_with_job(session, owner, making, row)
        grants.grant(session, owner, "model", plan.info.model_id, name)
        grants.grant(session, owner, "circuit", circuit.id, name)
        response = {
            "model_id": plan.info.model_id,
            "circuit_id": circuit.id,
            "job_id": job.id,
            "state": circuit.state,
        }
        if isinstance(plan, SegmentedPlan) and plan.note is not None:
            response["note"] = plan.note
        return response, enqueue

    return with_retry(db_url, body)
