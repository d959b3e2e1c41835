"""What a compiled circuit can represent, checked before any work is queued or proven.

ezkl reads a value x at scale s as the integer round(x * 2^s) (an i128) and splits every
value that meets a range check into ``decomp_legs`` digits of ``decomp_base``: an input
whose integer exceeds base^legs - 1 fails the witness step (measured: x * 0.001 as the
first op fails there too, so the input itself is split), and one beyond an i128 makes
ezkl panic. A lookup input outside its table passes the witness step and makes the prover
spin, so the witness's lookup inputs are checked before proving.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prover.circuits.tensors import TensorSpec
from prover.errors import InvalidInputError

# The largest integer ezkl holds: its integers are i128.
INTEGER_LIMIT = 2**127 - 1
# Rows a lookup column gives up to blinding: ezkl's ASSUMED_BLINDING_FACTORS (5) and
# RESERVED_BLINDING_ROWS_PAD (3).
RESERVED_ROWS = 5 + 3


def input_limit(run_args: dict[str, Any]) -> float:
    """The largest |x| the circuit with these run_args reads as an input."""
    digits = int(run_args["decomp_base"]) ** int(run_args["decomp_legs"]) - 1
    return min(digits, INTEGER_LIMIT) / 2 ** int(run_args["input_scale"])


def _check(values: np.ndarray, what: str, name: str, limit: float, why: str) -> None:
    beyond = np.flatnonzero(np.abs(values) > limit)
    if beyond.size:
        index = np.unravel_index(int(beyond[0]), values.shape)
        at = "".join(f"[{i}]" for i in index)
        raise InvalidInputError(
            f"{what} {name!r}{at} = {values[index]:.6g} is outside what {why}: values must lie "
            f"within [-{limit:.10g}, {limit:.10g}]",
            input=name,
            position=at,
            allowed=[-limit, limit],
        )


def check_values(values: np.ndarray, what: str, name: str, run_args: dict[str, Any]) -> None:
    """``InvalidInputError`` naming the first of ``values`` (an input of the circuit with
    these run_args, in its shape) the circuit cannot read, with its position."""
    why = (
        f"the circuit represents (x * 2^{run_args['input_scale']} must fit "
        f"{run_args['decomp_base']}^{run_args['decomp_legs']} - 1)"
    )
    _check(values, what, name, input_limit(run_args), why)


def check_input(sample: list[np.ndarray], specs: list[TensorSpec], run_args: dict) -> None:
    """``check_values`` over a sample of flat arrays, one per input."""
    for values, spec in zip(sample, specs, strict=True):
        check_values(values.reshape(spec.shape), "input", spec.name, run_args)


def check_calibration(samples: list[list[np.ndarray]], specs: list[TensorSpec]) -> None:
    """Calibration values ezkl cannot hold at any scale (beyond its i128 integers), refused
    before a compile that would fail on them; the scale is the compile's to choose."""
    why = "ezkl's integers hold at any scale (2^127 - 1)"
    for k, sample in enumerate(samples):
        for values, spec in zip(sample, specs, strict=True):
            what = f"calibration sample {k}, input"
            _check(values.reshape(spec.shape), what, spec.name, float(INTEGER_LIMIT), why)


def table_span(settings: dict[str, Any]) -> tuple[int, int] | None:
    """The integers the circuit's lookup tables cover (None without lookups): ezkl lays a
    table from ``lookup_range``'s low end over whole columns of 2^logrows rows, less the
    rows blinding reserves, so it runs past the range's high end."""
    if not settings.get("required_lookups"):
        return None
    low, high = (int(v) for v in settings["run_args"]["lookup_range"])
    column = 2 ** int(settings["run_args"]["logrows"]) - RESERVED_ROWS
    columns = abs(high - low) // column + 1
    return low, low + columns * column - 1


def check_lookups(witness: dict[str, Any], settings: dict[str, Any]) -> None:
    """``InvalidInputError`` when the input drives a lookup beyond the circuit's tables,
    before the prover is started on a witness it cannot prove."""
    span = table_span(settings)
    if span is None:
        return
    low, high = int(witness["min_lookup_inputs"]), int(witness["max_lookup_inputs"])
    if low < span[0] or high > span[1]:
        raise InvalidInputError(
            f"this input drives the circuit's lookup tables ({settings['required_lookups']}) "
            f"to [{low}, {high}], beyond the [{span[0]}, {span[1]}] they cover; compile with "
            "calibration data that covers such inputs",
            reached=[low, high],
            covered=list(span),
        )
