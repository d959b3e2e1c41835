"""The proof market's public side: what a provider anywhere needs to prove a request the
service opened (``service.market``), with no key. Every file comes with its sha256 (in
the circuit's listing) for the provider to check; only circuits on the market are served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from prover.api.deps import StoreDep
from prover.api.responses import ERRORS
from prover.service import market

router = APIRouter(tags=["market"])
PUBLIC: dict[int | str, dict[str, Any]] = {
    status: ERRORS[status] for status in (404, 422, 503)
}  # no key: no 401 or 403


@router.get("/v1/market/requests", responses=PUBLIC)
def list_requests(store: StoreDep) -> dict[str, Any]:
    """Every request the service opened on the market, newest first: its market and id,
    circuit, input (with its digest and the commitment the chain holds) and offer. Its
    status is the chain's to say."""
    return {"requests": market.requests_on_market(store)}


@router.get("/v1/market/requests/{request_id}", responses=PUBLIC)
def get_request(request_id: int, store: StoreDep) -> dict[str, Any]:
    """One request the service opened, by its id on the market."""
    return market.request_on_market(store, request_id)


@router.get("/v1/market/circuits/{circuit_id}", responses=PUBLIC)
def get_circuit(circuit_id: str, store: StoreDep) -> dict[str, Any]:
    """A circuit some request names: its record and its proving files' sha256 and size."""
    return market.circuit_on_market(store, circuit_id)


@router.get("/v1/market/circuits/{circuit_id}/files/{name}", responses=PUBLIC)
def get_file(
    circuit_id: str,
    store: StoreDep,
    name: str = Path(description="model.compiled, pk.key, vk.key, settings.json or srs"),
) -> FileResponse:
    """One proving file of a circuit on the market (check it against its sha256)."""
    return FileResponse(market.market_file(store, circuit_id, name), filename=name)
