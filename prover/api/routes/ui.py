"""The web console: static files (HTML, one script, one stylesheet) served at ``/ui/``.

The console is a client of the public HTTP API only (the key the user enters is sent as
a bearer token from the browser), so it adds no endpoint and no business rule here. It
handles API keys, hence a strict Content-Security-Policy: scripts and styles from this
origin only, requests to this origin only, no framing. Not part of the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from prover.errors import NotFoundError

router = APIRouter(include_in_schema=False)

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A new release must not run the old script against a changed API.
    "Cache-Control": "no-cache",
}


def asset(name: str) -> FileResponse:
    """One of the console's files, with the security headers (404 for any other name)."""
    if name not in MEDIA_TYPES:
        raise NotFoundError(f"the console has no file {name!r}", id=name)
    return FileResponse(UI_DIR / name, media_type=MEDIA_TYPES[name], headers=HEADERS)


@router.get("/ui")
def console_root() -> RedirectResponse:
    """``/ui`` → ``/ui/`` (the page's relative links need the slash)."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def console_page() -> FileResponse:
    """The console's one page; its script routes by the URL's fragment (``#/proofs/ID``)."""
    return asset("index.html")


@router.get("/ui/{name}")
def console_file(name: str) -> FileResponse:
    """The console's script and stylesheet."""
    return asset(name)
