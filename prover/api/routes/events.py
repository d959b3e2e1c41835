"""The event stream: the caller's job events as server-sent events, resumable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from prover.api.deps import Owner, SettingsDep
from prover.api.responses import errors
from prover.service.events import events_after, last_event

router = APIRouter()
EVENT_POLL_S = 0.5  # how often an idle stream looks for new events
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: one event per job change, `id` its sequence "
        "number, `event` its type (`job.queued`, `job.running`, `job.progress`, "
        "`job.succeeded`, `job.failed`), `data` a JSON object {id, type, subject_id, data: "
        "the job's view, created_at}",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get("/v1/events", response_class=StreamingResponse, responses={**errors(), **STREAM})
async def event_stream(
    request: Request,
    key: Owner,
    settings: SettingsDep,
    after: Annotated[
        int | None, Query(ge=0, description="start after this event id (0: every kept one)")
    ] = None,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="as `after`: set by a reconnecting client"),
    ] = None,
) -> StreamingResponse:
    """This key's job events as they happen (server-sent events). A new stream starts at
    now; a client resumes after the last event it saw with `Last-Event-ID` (or `after`),
    within the events' retention (`PROVER_EVENT_RETENTION_S`)."""
    db = settings.sqlalchemy_url()
    start = after if after is not None else last_event_id
    if start is None:
        start = await run_in_threadpool(last_event, db)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _events(request, db, key, start), media_type="text/event-stream", headers=headers
    )


async def _events(request: Request, db: str, owner: str, after: int) -> AsyncIterator[str]:
    """The stream's text: events as committed, keep-alive comments while idle."""
    yield ": stream open\n\n"
    idle_s = 0.0
    while not await request.is_disconnected():
        batch = await run_in_threadpool(events_after, db, owner, after)
        for event in batch:
            after = event["id"]
            yield f"id: {after}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
        if batch:
            idle_s = 0.0
            continue
        await asyncio.sleep(EVENT_POLL_S)
        idle_s += EVENT_POLL_S
        if idle_s >= KEEPALIVE_S:
            idle_s = 0.0
            yield ": keep-alive\n\n"
