"""Request limits: header size, body size (on the declared length and on the bytes
actually sent) and each key's request rate."""

from __future__ import annotations

import json
import logging
import math
import threading
import time

import redis
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prover.errors import RateLimitError

log = logging.getLogger("prover.api")


class TooLarge(HTTPException):
    """Raised while the body is read, so that FastAPI's body parsing lets it through (it
    turns any other error there into a 400); answered 413 by ``too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    return (
        f"the request body is over the limit of {limit} bytes "
        "(PROVER_MAX_REQUEST_BYTES; uploads also get PROVER_MAX_MODEL_BYTES)"
    )


def too_large_body(limit: int) -> dict[str, object]:
    """The 413 error body (one shape, whether the length was declared or counted)."""
    return {
        "error": {
            "code": "request_too_large",
            "message": too_large_message(limit),
            "limit": limit,
        }
    }


class BodyLimit:
    """Refuse bodies over ``default`` bytes (``uploads`` for paths in ``upload_paths``)."""

    def __init__(self, app: ASGIApp, default: int, uploads: int, upload_paths: tuple[str, ...]):
        self.app, self.default, self.uploads, self.upload_paths = (
            app,
            default,
            uploads,
            upload_paths,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads if scope["path"] in self.upload_paths else self.default
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, too_large_body(limit))
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # a chunked body, or one longer than declared
                    raise TooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except TooLarge:  # read outside the routes' error handling
            if not started:
                await _send_json(send, 413, too_large_body(limit))


async def _send_json(send: Send, status: int, body: dict[str, object]) -> None:
    """An answer sent from a middleware, outside the app's error handlers."""
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


class HeaderLimit:
    """Refuse requests whose headers total over ``limit`` bytes: 431 in the API's error
    shape. (The server must pass such a head on: see ``server_options``.)"""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.limit:  # each header's line: name, ": ", value, CRLF
                error = {
                    "code": "headers_too_large",
                    "message": f"the request's headers hold {size} bytes, over the limit "
                    f"of {self.limit} (PROVER_MAX_HEADER_BYTES)",
                    "limit": self.limit,
                }
                await _send_json(send, 431, {"error": error})
                return
        await self.app(scope, receive, send)


# GCRA (a token bucket kept as one timestamp): the key holds the time, in ms, at which the
# bucket is full again. Redis's clock is used, so every API process agrees.
GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat + interval - interval * burst
if now < allow_at then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], string.format('%.3f', tat + interval),
           'PX', math.ceil(tat + interval - now) + 1000)
return 0
"""
REDIS_RETRY_S = 5.0  # after Redis failed to answer, the local bucket alone for this long


class RateLimiter:
    """Each key's request rate: ``per_s`` sustained, ``burst`` at once (``per_s`` <= 0: no
    limit). The bucket is in Redis, shared by every API process. While Redis does not
    answer, each process keeps a bucket of its own (the limit then holds per process),
    rather than refusing requests or failing them."""

    def __init__(self, redis_url: str, per_s: float, burst: int) -> None:
        self.per_s, self.burst = per_s, max(1, burst)
        self.interval_ms = 1000.0 / per_s if per_s > 0 else 0.0
        self.client = redis.Redis.from_url(
            redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self.script = self.client.register_script(GCRA)
        self.local: dict[str, float] = {}  # key id → when its bucket is full again (ms)
        self.lock = threading.Lock()
        self.redis_away_until = 0.0

    def check(self, key_id: str) -> None:
        """``RateLimitError`` (429, with the wait) when the key is over its rate."""
        if self.per_s <= 0:
            return
        wait_ms = self._shared(key_id)
        if wait_ms is None:
            wait_ms = self._local(key_id)
        if wait_ms > 0:
            raise RateLimitError(
                f"this key sent more than {self.per_s:g} requests per second (bursts of "
                f"{self.burst}; PROVER_RATE_LIMIT_PER_S, PROVER_RATE_LIMIT_BURST); "
                "slow down",
                retry_after_s=max(1, math.ceil(wait_ms / 1000)),
            )

    def _shared(self, key_id: str) -> float | None:
        """The wait in Redis's bucket; None when Redis does not answer."""
        if time.monotonic() < self.redis_away_until:
            return None
        try:
            args = [self.interval_ms, self.burst]
            return float(self.script(keys=[f"prover:rate:{key_id}"], args=args))
        except redis.RedisError as exc:
            log.warning("rate limit: Redis does not answer (%s); limiting per process", exc)
            self.redis_away_until = time.monotonic() + REDIS_RETRY_S
            return None

    def _local(self, key_id: str) -> float:
        """The same bucket as ``GCRA``, in this process."""
        with self.lock:
            now = time.monotonic() * 1000
            full_at = max(self.local.get(key_id, now), now)
            allow_at = full_at + self.interval_ms - self.interval_ms * self.burst
            if now < allow_at:
                return allow_at - now
            self.local[key_id] = full_at + self.interval_ms
            return 0.0
