"""The network side of webhooks: which addresses an endpoint may have, and one signed
attempt of a delivery.

A production service must not be made to call its own private network (a metadata
endpoint at 169.254.169.254, an admin port on 127.0.0.1, a database on 10.x): an
endpoint whose host resolves to a loopback, link-local, private, shared, multicast or
reserved address is refused at registration, naming the address and why, unless
``PROVER_WEBHOOK_ALLOW_PRIVATE``. A name that resolved to a public address then may
resolve to a private one at delivery (DNS rebinding), so each attempt resolves again,
checks again, and connects to the address it checked (the Host header and TLS name stay
the URL's). Redirects are never followed: a 3xx is an unsuccessful attempt.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from prover import __version__
from prover.errors import InvalidInputError, WebhookAddressError
from prover.service.tables import iso_utc, utcnow
from prover.webhook_signature import signed_headers

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2048
# What a production deployment must not call, in the order a refusal names it.
_BLOCKED = (
    ("loopback", lambda a: a.is_loopback),
    ("link-local", lambda a: a.is_link_local),
    ("unspecified", lambda a: a.is_unspecified),
    ("multicast", lambda a: a.is_multicast),
    ("private", lambda a: a.is_private),
    ("reserved", lambda a: a.is_reserved),
    ("not globally routable", lambda a: not a.is_global),
)


def blocked_reason(address: Address) -> str | None:
    """Why the service may not call ``address`` (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return next((why for why, test in _BLOCKED if test(address)), None)


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise WebhookAddressError(f"the webhook host {host!r} does not resolve: {exc}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def callable_address(host: str, port: int, allow_private: bool) -> Address:
    """The address to connect to for ``host``: every address it resolves to must be
    public (one private answer is enough for a rebinding attack), unless allowed."""
    addresses = resolve(host, port)
    for address in addresses if not allow_private else ():
        if (why := blocked_reason(address)) is not None:
            raise WebhookAddressError(
                f"the webhook host {host!r} resolves to {address}, a {why} address, which "
                "the service does not call (PROVER_WEBHOOK_ALLOW_PRIVATE=true allows it, "
                "for a receiver on a private network or in development)",
                address=str(address),
                reason=why,
            )
    return addresses[0]


def check_url(url: str, allow_private: bool) -> None:
    """An endpoint URL the service may call, else ``InvalidInputError`` naming why."""
    if len(url) > MAX_URL:
        raise InvalidInputError(f"the webhook URL is over {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(f"the webhook URL {url!r} does not parse: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"the webhook URL must be http(s)://host/...; got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("the webhook URL must not carry credentials (user:password@)")
    if parts.fragment:
        raise InvalidInputError("the webhook URL must not have a #fragment")
    callable_address(parts.hostname, port or default_port(parts.scheme), allow_private)


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@dataclass(frozen=True)
class Attempt:
    """What one attempt sends: the delivery's message id, body and endpoint."""

    delivery_id: str
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: the receiver's status (None: no answer) or what failed."""

    at: str
    status: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "status": self.status, "error": self.error, "ms": self.duration_ms}


def pinned_request(
    http: httpx.Client, url: str, address: Address, headers: dict[str, str], body: bytes
) -> httpx.Request:
    """A POST of ``body`` to ``url`` that connects to ``address`` (checked) rather than
    whatever the name resolves to by then, with the URL's own Host and TLS server name."""
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port or default_port(parts.scheme)}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    tls = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return http.build_request(
        "POST", target, content=body, headers={**headers, "host": parts.netloc}, extensions=tls
    )


def attempt(job: Attempt, timeout_s: float, allow_private: bool) -> Outcome:
    """Send one signed attempt; 2xx is delivered, anything else (no answer included) is
    not. Only the status is read: the receiver's body is not the service's business."""
    at, started = iso_utc(utcnow()) or "", time.monotonic()
    status, error = None, None
    try:
        parts = urlsplit(job.url)
        port = parts.port or default_port(parts.scheme)
        address = callable_address(parts.hostname or "", port, allow_private)
        headers = {
            **signed_headers(job.secret, job.delivery_id, job.body, int(time.time())),
            "content-type": "application/json",
            "user-agent": f"prover-webhooks/{__version__}",
        }
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as http:
            request = pinned_request(http, job.url, address, headers, job.body)
            response = http.send(request, stream=True)  # the body is never read
            response.close()
            status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (httpx.HTTPError, InvalidInputError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration = round((time.monotonic() - started) * 1000, 1)
    return Outcome(at, status, error, duration)
