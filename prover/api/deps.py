"""What the routes share, as ``Annotated`` dependencies.

* ``SettingsDep``: the app's settings (``app.state.settings``).
* ``AnyKey``: the holder of the caller's API key (bearer token), of any scope, within its
  request rate.
* ``Owner``: the id of that key on a requester's route: a key of scope ``request`` (or
  ``admin``); the scopes are checked by ``prover.service.scopes`` alone.
* ``Admin``: the holder of an ``admin`` key (key administration).
* ``Submitter``: the same as ``Owner``, on a request that may create jobs: within its jobs
  quota too.
* ``JSON_ONLY``: the dependencies of a route with a JSON body (415 for another type).
* ``SessionDep``: the request's database session, one transaction for its reads.
* ``StoreDep``: the artifact store.
* ``RedisDep``: the Redis client a request waits on (job ends are published there).
* ``DispatcherDep``: what sends an accepted submission's jobs to their queues.

Each is resolved by the function beside it; tests replace one with
``app.dependency_overrides[function] = ...`` (the dispatcher, so that no broker is needed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Protocol

import redis.asyncio as aioredis
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from sqlalchemy.orm import Session

from prover.config import Settings
from prover.errors import UnavailableError, UnsupportedMediaTypeError
from prover.service import jobs
from prover.service.accepting import Accepted, require_room
from prover.service.db import session_scope
from prover.service.keys import Caller, authenticate
from prover.service.kinds import job_kind
from prover.service.queries import MAX_CURSOR, MAX_PAGE
from prover.service.scopes import require_scope
from prover.store import ArtifactStore
from prover.worker.app import enqueue


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]

bearer = HTTPBearer(auto_error=False, description="An API key from `prover keys create`.")


def caller(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The holder of the presented API key, 429 when the key is over its request rate.
    Checked in a short transaction of its own, not the request's: a request that then
    waits (``GET /v1/jobs/{id}?wait=``) holds no database connection meanwhile."""
    with session_scope(settings.sqlalchemy_url()) as session:
        found = authenticate(session, credentials.credentials if credentials else None)
    request.app.state.limiter.check(found.key_id)
    return found


AnyKey = Annotated[Caller, Depends(caller)]


def owner(key: AnyKey) -> str:
    """The id of a key that may request (403 for another scope's): what the requesters'
    routes record and filter by."""
    require_scope(key.key_id, key.scope, "request")
    return key.key_id


Owner = Annotated[str, Depends(owner)]


def admin(key: AnyKey) -> Caller:
    """The holder of a key that administers keys (403 for another scope's)."""
    require_scope(key.key_id, key.scope, "admin")
    return key


Admin = Annotated[Caller, Depends(admin)]


def submitter(key: Owner, settings: SettingsDep) -> str:
    """The caller's key on a request that may create jobs: 429 while the key has
    ``max_jobs_in_flight`` jobs queued or running."""
    with session_scope(settings.sqlalchemy_url()) as session:
        require_room(session, key, settings.max_jobs_in_flight)
    return key


Submitter = Annotated[str, Depends(submitter)]


async def json_only(request: Request) -> None:
    """415 for a body sent as another type than JSON: FastAPI would pass it on as raw
    bytes, to be refused with a validation error that does not say what is wrong."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("", "application/json") or media.endswith("+json"):
        return
    if await request.body():
        raise UnsupportedMediaTypeError(
            f"the body must be JSON (content-type: application/json), not {media!r}",
            content_type=media,
        )


JSON_ONLY = [Depends(json_only)]


def db_session(settings: SettingsDep) -> Iterator[Session]:
    """The request's reads, in one transaction: committed when the request ends, rolled
    back if it fails. (Submissions commit in their own, before their jobs are enqueued.)"""
    with session_scope(settings.sqlalchemy_url()) as session:
        yield session


SessionDep = Annotated[Session, Depends(db_session)]


def artifact_store(settings: SettingsDep) -> ArtifactStore:
    return ArtifactStore.from_settings(settings)


StoreDep = Annotated[ArtifactStore, Depends(artifact_store)]


def redis_client(request: Request) -> aioredis.Redis:
    """The app's client (opened with the app): waits subscribe to job ends on it."""
    return request.app.state.redis


RedisDep = Annotated[aioredis.Redis, Depends(redis_client)]


class Dispatcher(Protocol):
    """Sends the jobs of an accepted submission to their queues; returns the response."""

    def __call__(self, accepted: Accepted) -> dict[str, Any]: ...


class QueueDispatcher:
    """The dispatcher of the service: each job goes to its kind's queue on the broker. A job
    the broker refuses is failed at once (nothing would ever run it) and the client is told
    503, so that it submits again later."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, accepted: Accepted) -> dict[str, Any]:
        response, to_enqueue = accepted
        for job_id, kind in to_enqueue:
            try:
                enqueue(job_id, kind, self.settings)
            except Exception as exc:
                error = {"code": "unavailable", "message": f"the queue refused the job: {exc}"}
                db_url = self.settings.sqlalchemy_url()
                jobs.abandon(db_url, job_id, error, job_kind(kind).on_end)
                raise UnavailableError(
                    f"the queue ({self.settings.redis_url}) does not answer; try again later"
                ) from exc
        return response


def dispatcher(settings: SettingsDep) -> Dispatcher:
    return QueueDispatcher(settings)


DispatcherDep = Annotated[Dispatcher, Depends(dispatcher)]


def integer_literal(value: Any) -> Any:
    """An integer query parameter as an integer literal: pydantic also reads ``+0``, ``0.0``,
    ``0_0`` or `` 0`` as 0, so that one value would have many spellings."""
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
        raise ValueError("must be an integer literal, such as 20")
    return value


IntegerLiteral = BeforeValidator(integer_literal)
# A page size: one page is at most MAX_PAGE items.
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE), IntegerLiteral]
# Where a page starts: the previous page's next_cursor (a row number).
Cursor = Annotated[
    int | None,
    Query(ge=0, le=MAX_CURSOR, description="the previous page's next_cursor"),
    IntegerLiteral,
]
