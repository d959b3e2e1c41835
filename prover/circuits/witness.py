"""Run a compiled circuit forward (ezkl's witness) and read its rescaled outputs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ezkl
import numpy as np

from prover.circuits.data import Sample, to_ezkl_input
from prover.circuits.tensors import TensorSpec
from prover.errors import InvalidInputError


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def ezkl_error_log() -> Iterator[list[str]]:
    """Collect the error lines ezkl logs (its exceptions often carry only a generic text)."""
    handler = _Collect()
    logger = logging.getLogger("ezkl")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def write_input(path: Path, samples: list[Sample]) -> Path:
    path.write_text(json.dumps(to_ezkl_input(samples)))
    return path


def generate_witness(
    compiled: Path,
    input_path: Path,
    witness_path: Path,
    vk_path: Path | None = None,
    srs_path: Path | None = None,
) -> dict:
    """ezkl's witness for one input file; vk and SRS are needed only for polycommit.

    Raises ``InvalidInputError`` when the circuit cannot represent the input (values
    outside the ranges it was calibrated for), with ezkl's own reason.
    """
    with ezkl_error_log() as logged:
        try:
            ezkl.gen_witness(
                str(input_path),
                str(compiled),
                str(witness_path),
                str(vk_path) if vk_path else None,
                str(srs_path) if srs_path else None,
            )
        except Exception as exc:
            reason = "; ".join(logged) or str(exc)
            raise InvalidInputError(
                f"the circuit cannot run on this input ({reason}); inputs must stay within "
                "the ranges of the calibration data",
            ) from exc
    return json.loads(witness_path.read_text())


def rescaled_outputs(witness: dict, outputs: list[TensorSpec]) -> list[np.ndarray]:
    """The circuit's outputs as floats, shaped like the model's outputs."""
    values = witness["pretty_elements"]["rescaled_outputs"]
    return [
        np.asarray([float(v) for v in flat], dtype=np.float64).reshape(spec.shape)
        for flat, spec in zip(values, outputs, strict=True)
    ]
