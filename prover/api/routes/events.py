"""The event stream: the caller's job events as server-sent events, resumable."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from prover.api.deps import Owner, RedisDep, SettingsDep
from prover.api.responses import errors
from prover.api.wakeups import close_subscription, subscribed, woken
from prover.service.events import events_after, last_event
from prover.worker.app import EVENTS_CHANNEL

router = APIRouter()
EVENT_POLL_S = 0.5  # how often an idle stream looks for new events
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: one event per job change, `id` its sequence "
        "number, `event` its type (`job.queued`, `job.running`, `job.progress`, "
        "`job.succeeded`, `job.failed`; a market request's status: `market.requested`, "
        "`market.locked`, `market.fulfilled`, `market.expired`), `data` a JSON object {id, "
        "type, subject_id, data: the job's view (a market event: the request), created_at}",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get("/v1/events", response_class=StreamingResponse, responses={**errors(), **STREAM})
async def event_stream(
    request: Request,
    key: Owner,
    settings: SettingsDep,
    client: RedisDep,
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
    stream = _events(request, client, db, key, start)
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def _events(
    request: Request, client: aioredis.Redis, db: str, owner: str, after: int
) -> AsyncIterator[str]:
    """The stream's text: events as committed, keep-alive comments while idle. It opens
    with the id it starts after (no data: not an event), so that a client that drops
    before any event resumes from there rather than from a later now. Idle, it reads
    again when a job ends (a worker's announcement) or every ``EVENT_POLL_S``."""
    yield f": stream open\nid: {after}\n\n"
    pubsub = await subscribed(client, EVENTS_CHANNEL)  # before the first read: none missed
    idle_since = time.monotonic()
    try:
        while not await request.is_disconnected():
            batch = await run_in_threadpool(events_after, db, owner, after)
            for event in batch:
                after = event["id"]
                yield f"id: {after}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
            if batch:
                idle_since = time.monotonic()
                continue
            pubsub = await woken(pubsub, EVENT_POLL_S)
            if time.monotonic() - idle_since >= KEEPALIVE_S:
                idle_since = time.monotonic()
                yield ": keep-alive\n\n"
    finally:
        await close_subscription(pubsub)
