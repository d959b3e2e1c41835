"""The list routes: one page of the rows of one type that the caller's key may see."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

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


def link_items(app: FastAPI) -> None:
    """Give the app's OpenAPI document links from each list (``GET /v1/proofs``) to the
    operations that take its items' id (``/v1/proofs/{proof_id}...``), fed the first
    item's: how a client (or a stateful tester) goes from a page to an item."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_links(generate()["paths"])
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def add_links(paths: dict[str, Any]) -> None:
    """In place: each list route's 200 links to the operations under its path."""
    for listing, operations in paths.items():
        page = operations.get("get")
        if page is None or not page["operationId"].startswith("list_"):
            continue
        links = {}
        for path, item_operations in paths.items():
            if not path.startswith(f"{listing}/{{"):
                continue
            field = path[len(listing) + 2 :].split("}")[0]
            first = {field: f"$response.body#/items/0/{field}"}
            for operation in item_operations.values():
                name = operation["operationId"]
                links[name] = {"operationId": name, "parameters": first}
        page["responses"]["200"]["links"] = links
