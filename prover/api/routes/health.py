"""Health and metrics (no key needed: probes and Prometheus read them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from prover.api.deps import SettingsDep
from prover.api.probes import check, metrics_text
from prover.api.schemas import Health, MetricsTarget
from prover.service.workers import live_workers, metrics_targets

router = APIRouter()


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(settings: SettingsDep) -> JSONResponse:
    """200 only when the database, the broker and at least one worker answer."""
    report = check(settings)
    return JSONResponse(report, 200 if report["status"] == "ok" else 503)


@router.get("/metrics", response_class=Response)
def metrics(settings: SettingsDep) -> Response:
    """Prometheus metrics: queue depth, jobs by state, phase durations, failures."""
    return Response(metrics_text(settings), media_type="text/plain; version=0.0.4")


@router.get("/metrics/targets", response_model=list[MetricsTarget])
def targets(settings: SettingsDep) -> list[dict]:
    """Every live worker's own metrics endpoint (``PROVER_WORKER_METRICS_PORT``), in the
    format of Prometheus's ``http_sd_configs``, labelled with its host and name."""
    return metrics_targets(live_workers(settings))
