"""The ``prover`` command: every command group registered on one Typer app, and the entry
point that sets up stdout and logging before running it.

Import order is the dependency order: ``output`` and ``inputs`` at the bottom, ``remote``
on them, the command groups above, this module on top; nothing imports upwards.
"""

from __future__ import annotations

import logging
import os

import typer

from prover.cli import chain, inference, provide, records, service, training
from prover.cli.output import claim_stdout

HELP = """Command line: ``prover compile | prove | verify | proof | models | circuits | deploy | submit``.

With ``--json`` every command prints exactly one JSON object on stdout (an ``error``
object on failure, with a non-zero exit). Anything else that would reach stdout is sent
to stderr, where progress bars go too. ezkl logs through Python logging (its calibration
reports are warnings); PROVER_LOG_LEVEL sets how much of it is shown (default ERROR).
"""  # noqa: E501  (the help text of the old single-module CLI, kept word for word)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
# Unnamed groups put their commands at the top level: prover compile, prover deploy, ...
app.add_typer(inference.app)
app.add_typer(chain.app)
app.add_typer(provide.app)
app.add_typer(service.app)
app.add_typer(records.proof_app, name="proof")
app.add_typer(records.models_app, name="models")
app.add_typer(records.circuits_app, name="circuits")
app.add_typer(service.keys_app, name="keys")
app.add_typer(service.jobs_app, name="jobs")
app.add_typer(training.train_app, name="train")


def main() -> None:
    """Entry point: keep the real stdout for results (ezkl's own prints go to stderr) and
    let PROVER_LOG_LEVEL (default ERROR) decide how much of ezkl's logging is shown."""
    claim_stdout()
    level = os.environ.get("PROVER_LOG_LEVEL", "ERROR").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("ezkl", "tract_onnx", "tract_core", "tract_hir"):
        logging.getLogger(noisy).setLevel(level)
    app()
