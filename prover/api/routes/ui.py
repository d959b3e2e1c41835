"""The web console: static files (HTML, a stylesheet, and its script as ES modules under
``js/``) served at ``/ui/``.

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
    "console.css": "text/css; charset=utf-8",
}
SCRIPT_TYPE = "text/javascript; charset=utf-8"
# The script's modules: the files of js/ as installed (no other name is ever served).
SCRIPTS = frozenset(path.name for path in (UI_DIR / "js").glob("*.js"))
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


def script(name: str) -> FileResponse:
    """One of the script's modules, with the security headers (404 for any other name)."""
    if name not in SCRIPTS:
        path = f"js/{name}"
        raise NotFoundError(f"the console has no file {path!r}", id=path)
    return FileResponse(UI_DIR / "js" / name, media_type=SCRIPT_TYPE, headers=HEADERS)


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
    """The console's stylesheet."""
    return asset(name)


@router.get("/ui/js/{name}")
def console_module(name: str) -> FileResponse:
    """One of the console's script modules (``js/main.js`` imports the others)."""
    return script(name)
