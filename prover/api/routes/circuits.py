"""Circuits: reading and listing them (a model upload makes one; see ``models``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from prover.api.deps import Cursor, Limit, Owner, SessionDep, StoreDep
from prover.api.responses import errors
from prover.api.schemas import CircuitView, Page
from prover.service import queries

router = APIRouter()


@router.get("/v1/circuits/{circuit_id}", response_model=CircuitView, responses=errors())
def get_circuit(
    circuit_id: str, key: Owner, session: SessionDep, store: StoreDep
) -> dict[str, Any]:
    """A circuit's state; once ready its record (settings, accuracy, search trials)."""
    return queries.get_circuit(session, store, key, circuit_id)


@router.get(
    "/v1/circuits",
    response_model=Page,
    responses=errors(),
    summary="List circuits",
    description="This key's circuits, newest first; pass next_cursor as cursor.",
)
def list_circuits(
    key: Owner,
    session: SessionDep,
    store: StoreDep,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return queries.list_items(session, store, key, "circuit", limit, cursor)
