"""Compile options as a service request carries them (JSON) and as the core takes them."""

from __future__ import annotations

from typing import Any

from prover.circuits.compiler import CompileOptions
from prover.circuits.search import Visibility
from prover.config import Settings

DEFAULTS: dict[str, Any] = {
    "input_visibility": "public",
    "param_visibility": "fixed",
    "output_visibility": "public",
    "tolerance": None,
    "strategy": "search",
    "objective": "prove-time",
    "lookup_margin": 2.0,
    "reusable_verifier": False,
}


def compile_options(requested: dict[str, Any], settings: Settings) -> CompileOptions:
    """The core's options for a request (missing fields take the defaults); raises
    ``InvalidInputError`` naming a bad value."""
    values = {**DEFAULTS, **{k: v for k, v in requested.items() if v is not None}}
    return CompileOptions(
        visibility=Visibility(
            values["input_visibility"], values["param_visibility"], values["output_visibility"]
        ),
        tolerance=float(values["tolerance"] or settings.tolerance),
        strategy=values["strategy"],
        measure_top=settings.measure_top,
        lookup_margin=float(values["lookup_margin"]),
        reusable_verifier=bool(values["reusable_verifier"]),
        objective=values["objective"],
    )
