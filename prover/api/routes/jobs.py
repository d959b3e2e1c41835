"""Jobs: a job's state (optionally waiting for its end) and the key's jobs (optionally
those of one kind about one subject)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from prover.api.deps import Cursor, Limit, Owner, RedisDep, SessionDep, SettingsDep, StoreDep
from prover.api.responses import errors
from prover.api.schemas import JobView, Page
from prover.api.wakeups import close_subscription, subscribed, woken
from prover.config import Settings
from prover.service import jobs, queries
from prover.service.db import session_scope
from prover.service.kinds import KINDS
from prover.worker.app import job_channel

router = APIRouter()
# The filters of the list: a kind by its exact name; a subject by its id (ids are at most
# 64 characters of letters, digits, - and _).
KindFilter = Annotated[
    str | None,
    Query(
        pattern=f"^({'|'.join(KINDS)})$",
        description="only the jobs of this kind",
        json_schema_extra={"enum": list(KINDS)},
    ),
]
SubjectFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9A-Za-z_-]+$",
        description="only the jobs about this subject: a circuit, proof, training run or batch id",
    ),
]


def read_job(settings: Settings, owner: str, job_id: str) -> dict[str, Any]:
    """The job as committed now. A transaction per read (not the request's): a waiting
    request must see the worker's commit, and holds no connection between reads."""
    with session_scope(settings.sqlalchemy_url()) as session:
        return queries.get_job(session, owner, job_id)


async def wait_for_end(
    client: aioredis.Redis, settings: Settings, owner: str, job_id: str, deadline: float
) -> dict[str, Any]:
    """Re-read the job whenever a worker announces its end (or every second) until it
    ends or the deadline passes. Without Redis (down at the start, or dropped meanwhile)
    the wait goes on reading the job every ``wakeups.POLL_S``: an outage costs latency, not
    the answer."""
    pubsub = await subscribed(client, job_channel(job_id))  # before the re-read: no lost wake-up
    try:
        while True:
            job = await run_in_threadpool(read_job, settings, owner, job_id)
            remaining = deadline - time.monotonic()
            if job["state"] in jobs.TERMINAL or remaining <= 0:
                return job
            pubsub = await woken(pubsub, remaining)
    finally:
        await close_subscription(pubsub)


@router.get("/v1/jobs/{job_id}", response_model=JobView, responses=errors())
async def get_job(
    job_id: str,
    key: Owner,
    settings: SettingsDep,
    client: RedisDep,
    wait: Annotated[
        float, Query(ge=0, le=60, description="seconds to wait for the job to end")
    ] = 0,
) -> dict[str, Any]:
    """A job's state, phase, progress (0..1), timings, and error or result. With
    ``wait``, answers as soon as the job ends (or when the wait is over)."""
    job = await run_in_threadpool(read_job, settings, key, job_id)
    if job["state"] in jobs.TERMINAL or wait <= 0:
        return job
    return await wait_for_end(client, settings, key, job_id, time.monotonic() + wait)


@router.get(
    "/v1/jobs",
    response_model=Page,
    responses=errors(),
    name="list_jobs",
    summary="List jobs",
    description="This key's jobs, newest first; pass next_cursor as cursor. With kind and/or "
    "subject_id, only the jobs of that kind about that subject (a circuit's deployments: "
    "kind=deploy&subject_id=CIRCUIT_ID); next_cursor then continues the filtered list.",
)
def list_jobs(
    key: Owner,
    session: SessionDep,
    store: StoreDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    kind: KindFilter = None,
    subject_id: SubjectFilter = None,
) -> dict[str, Any]:
    return queries.list_jobs(session, store, key, limit, cursor, kind, subject_id)
