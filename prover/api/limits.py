"""Request size limits, enforced on the declared length and on the bytes actually sent."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TooLarge(Exception):
    pass


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
            await _refuse(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "request_too_large",
                "message": f"the request body is over the limit of {limit} bytes "
                "(PROVER_MAX_REQUEST_BYTES; uploads also get PROVER_MAX_MODEL_BYTES)",
                "limit": limit,
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
