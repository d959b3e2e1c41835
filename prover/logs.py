"""Structured logs: one JSON object per line (time, level, logger, message, extras)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure(level: str = "INFO", process: str = "prover") -> None:
    """Send every logger's records to stderr as JSON lines tagged with ``process``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": process},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # ezkl's calibration reports are warnings; they belong in the circuit record, not logs.
    for noisy in ("ezkl", "tract_onnx", "tract_core", "tract_hir"):
        logging.getLogger(noisy).setLevel(max(logging.ERROR, root.level))
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
