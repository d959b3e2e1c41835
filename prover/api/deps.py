"""What the routes share, as ``Annotated`` dependencies.

* ``SettingsDep``: the app's settings (``app.state.settings``).
* ``Owner``: the id of the caller's API key (bearer token).
* ``SessionDep``: the request's database session, one transaction for its reads.
* ``StoreDep``: the artifact store.
* ``RedisDep``: the Redis client a request waits on (job ends are published there).
* ``DispatcherDep``: what sends an accepted submission's jobs to their queues.

Each is resolved by the function beside it; tests replace one with
``app.dependency_overrides[function] = ...`` (the dispatcher, so that no broker is needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Protocol

import redis.asyncio as aioredis
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from prover.config import Settings
from prover.errors import UnavailableError
from prover.service import jobs
from prover.service.db import session_scope
from prover.service.keys import authenticate
from prover.service.kinds import job_kind
from prover.service.queries import MAX_PAGE
from prover.service.submissions import Accepted
from prover.store import ArtifactStore
from prover.worker.app import enqueue


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]

bearer = HTTPBearer(auto_error=False, description="An API key from `prover keys create`.")


def owner(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The id of the presented API key. Checked in a short transaction of its own, not
    the request's: a request that then waits (``GET /v1/jobs/{id}?wait=``) holds no
    database connection meanwhile."""
    with session_scope(settings.sqlalchemy_url()) as session:
        return authenticate(session, credentials.credentials if credentials else None)


Owner = Annotated[str, Depends(owner)]


def db_session(settings: SettingsDep) -> Iterator[Session]:
    """The request's reads, in one transaction: committed when the request ends, rolled
    back if it fails. (Submissions commit in their own, before their jobs are enqueued.)"""
    with session_scope(settings.sqlalchemy_url()) as session:
        yield session


SessionDep = Annotated[Session, Depends(db_session)]


def artifact_store(settings: SettingsDep) -> ArtifactStore:
    return ArtifactStore(settings.data_dir)


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

# A page size: one page is at most MAX_PAGE items.
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
