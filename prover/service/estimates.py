"""Cost estimates of compile requests: what a circuit would cost before any setup.

The same checks as a compile request (model intake, calibration data, options), then
ezkl's calibration under the compile's limits and the cost model
(``prover.circuits.estimate``). A circuit already compiled answers from its record, whose
``estimate`` was made from the settings it was built with, beside the measured key size.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from prover.config import Settings
from prover.errors import InvalidInputError
from prover.service.capacity import pool_capacity as worker_capacity
from prover.service.options import CompileRequest
from prover.store import ArtifactStore

if TYPE_CHECKING:
    from prover.circuits.compiler import CompilePlan


def estimate_compile(
    store: ArtifactStore,
    settings: Settings,
    model_path: Path,
    calibration: Any | None,
    requested: CompileRequest,
) -> dict[str, Any]:
    """The estimate of a compile request, with the worker capacity it is compared to:
    ``fits`` is false when a proof on the circuit would need more memory than a worker may
    give it (such a proof request is refused with ``over_capacity``)."""
    if requested.segmented or requested.batch_size is not None:
        raise InvalidInputError(
            "an estimate is of one circuit: ask without segments, max_logrows or batch_size "
            "(the unsplit estimate shows what splitting has to bring under a worker's memory)"
        )
    from prover.circuits.compiler import estimate_plan, plan_compile

    options = requested.core_options(settings)
    plan = plan_compile(model_path, calibration, options, settings)
    record = store.read_record("circuits", plan.circuit_id) if _built(store, plan) else {}
    if record.get("estimate"):  # compiled since circuits carry their estimate
        found = {
            "model_id": plan.info.model_id,
            "circuit_id": plan.circuit_id,
            **record["estimate"],
            "measured_pk_bytes": record.get("pk_bytes"),
            "chosen": record["search"]["chosen"],
            "basis": "compiled",
            "cached": True,
        }
        return with_capacity(found, settings)
    result = estimate_plan(plan, options, settings)
    return with_capacity({**result, "cached": False}, settings)


def _built(store: ArtifactStore, plan: CompilePlan) -> bool:
    return store.exists("circuits", plan.circuit_id)


def with_capacity(estimate: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The estimate with the worker memory capacity and whether its proofs fit it."""
    capacity = worker_capacity(settings)
    need = estimate.get("peak_memory_bytes")
    return {
        **estimate,
        "worker_memory_bytes": capacity,
        "fits": need is None or int(need) <= capacity,
    }
