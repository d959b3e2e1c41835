"""The progress callback type, in a module of its own: the API, the service and the CLI
name it without importing the circuit search (and ezkl with it)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, float], None]  # (message, fraction done)
