"""The scopes of API keys, and the one rule of which scope reaches which routes.

A key serves one role, so that a leaked key gives away only that role:

* ``request``: a client of the service (models, circuits, proofs, jobs, training runs,
  chain, events, estimates): what every key could do before scopes;
* ``prove``: a prover (a pool worker, a market provider). It reaches none of the
  requesters' routes: its holder runs other people's work and must not read or submit
  theirs;
* ``admin``: an operator, who administers keys over HTTP; it reaches the request routes
  too, so that one key runs a small deployment end to end.

Apart from ``prover.service.keys`` so that the CLI reads the names without loading the
database layer.
"""

from __future__ import annotations

from typing import Literal, cast, get_args

from prover.errors import ForbiddenError, InvalidInputError

Scope = Literal["request", "prove", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
DEFAULT_SCOPE: Scope = "request"
# The routes' scopes that a key of each scope reaches.
REACHES: dict[str, frozenset[str]] = {
    "request": frozenset({"request"}),
    "prove": frozenset({"prove"}),
    "admin": frozenset({"admin", "request"}),
}


def scope_named(name: str) -> Scope:
    """The scope called ``name``; ``InvalidInputError`` naming the scopes for another
    (the CLI's flag, a caller of ``create_key``: the API's schema refuses it first)."""
    if name not in SCOPES:
        raise InvalidInputError(
            f"unknown scope {name!r}: one of {', '.join(SCOPES)}", scopes=list(SCOPES)
        )
    return cast(Scope, name)


def reaching(needed: str) -> list[str]:
    """The scopes whose keys reach a route that needs ``needed``."""
    return [scope for scope in SCOPES if needed in REACHES[scope]]


def require_scope(key_id: str, scope: str, needed: str) -> None:
    """Refuse (``ForbiddenError``, 403) a key whose scope does not reach ``needed``,
    naming the scopes that would and the key's own."""
    if needed in REACHES.get(scope, frozenset()):
        return
    wanted = " or ".join(repr(s) for s in reaching(needed))
    raise ForbiddenError(
        f"this route needs an API key of scope {wanted}; key {key_id} has scope {scope!r} "
        f"(an operator creates one with `prover keys create --scope {needed}`)",
        required_scope=needed,
        key_scope=scope,
    )
