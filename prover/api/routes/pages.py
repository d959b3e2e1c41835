"""The list routes: one page of the rows of one type that the caller's key may see."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from prover.api.deps import Cursor, Limit, Owner, SessionDep, StoreDep
from prover.api.responses import errors
from prover.api.schemas import Page
from prover.service import queries
from prover.service.grants import SubjectType


def add_list_route(router: APIRouter, path: str, subject_type: SubjectType, noun: str) -> None:
    """``GET path``: this key's ``noun`` (rows of ``subject_type``), newest first, with
    keyset pagination; every domain lists the same way."""

    def list_page(
        key: Owner,
        session: SessionDep,
        store: StoreDep,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        return queries.list_items(session, store, key, subject_type, limit, cursor)

    router.get(
        path,
        response_model=Page,
        responses=errors(),
        name=f"list_{subject_type}s",
        summary=f"List {noun}",
        description=f"This key's {noun}, newest first; pass next_cursor as cursor.",
    )(list_page)
