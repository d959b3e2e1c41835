"""What the CLI prints, and where: results on the real stdout, everything else on stderr.

With ``--json`` a command prints exactly one JSON object (an ``error`` object on failure),
so scripts can parse stdout. ezkl prints to fd 1 from native code, which Python cannot
intercept; :func:`claim_stdout` therefore keeps a private copy of the real stdout for
results and points fd 1 at stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from prover.circuits import progress as callbacks
from prover.errors import ProverError

err = Console(stderr=True)
JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")

# The real stdout once claim_stdout() has run; until then (tests, embedding) sys.stdout.
_results: TextIO | None = None


def claim_stdout() -> None:
    """Keep the real stdout for results and send fd 1 (ezkl's native prints) to stderr."""
    global _results
    sys.stdout.flush()
    _results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def _stream() -> TextIO:
    return _results if _results is not None else sys.stdout


def _write_results(text: str) -> None:
    _stream().write(text)
    _stream().flush()


def emit(obj: dict[str, Any], as_json: bool, human: Callable[[Console], None]) -> None:
    """A command's result: ``obj`` as one JSON line, or ``human`` rendering it."""
    if as_json:
        _write_results(json.dumps(obj) + "\n")
    else:
        human(Console(file=_stream(), soft_wrap=True))


def fail(as_json: bool, error: dict[str, Any], status: int) -> NoReturn:
    """End the command with ``status``: an ``{"error": ...}`` object or a red stderr line."""
    if as_json:
        _write_results(json.dumps({"error": error}) + "\n")
    else:
        err.print(f"[red]error[/red] ({error['code']}): {error['message']}")
    raise typer.Exit(status)


def run_action(as_json: bool, action: Callable[[], None]) -> None:
    """Run a command body so that every failure still honours the output contract.

    A ``ProverError`` (the user's to fix) exits 1; anything else is a bug: exit 2, with
    its traceback on stderr and an ``internal_error`` object.
    """
    try:
        action()
    except ProverError as exc:
        fail(as_json, exc.to_dict(), 1)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        err.print_exception()
        fail(as_json, {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}, 2)


@contextmanager
def progress(enabled: bool, title: str, total: float = 1.0) -> Iterator[callbacks.Progress]:
    """A progress bar on stderr, fed ``(message, completed)``; a no-op when disabled
    (--json mode), so callers need not care."""
    if not enabled:
        yield lambda _m, _f: None
        return
    columns = (TextColumn(title), BarColumn(), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda message, completed: bar.update(task, completed=completed, description=message)


def dev_warning(console: Console, dev: bool) -> None:
    """Say so when a result rests on a locally made SRS: it proves nothing to others."""
    if dev:
        console.print(
            "[yellow]development SRS: made on this machine, NOT for production; "
            "set PROVER_SRS_PATH to a ceremony SRS file[/yellow]"
        )
