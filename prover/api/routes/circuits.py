"""Circuits: reading and listing them (a model upload makes one; see ``models``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from prover.api.deps import Owner, SessionDep, StoreDep
from prover.api.responses import errors
from prover.api.routes.pages import add_list_route
from prover.api.schemas import CircuitView
from prover.service import queries

router = APIRouter()


@router.get("/v1/circuits/{circuit_id}", response_model=CircuitView, responses=errors())
def get_circuit(
    circuit_id: str, key: Owner, session: SessionDep, store: StoreDep
) -> dict[str, Any]:
    """A circuit's state; once ready its record (settings, accuracy, search trials)."""
    return queries.get_circuit(session, store, key, circuit_id)


add_list_route(router, "/v1/circuits", "circuit", "circuits")
