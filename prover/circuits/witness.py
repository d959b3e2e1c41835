"""Run a compiled circuit forward (ezkl's witness) and read its rescaled outputs."""

from __future__ import annotations

import json
from pathlib import Path

import ezkl
import numpy as np

from prover.circuits.data import Sample, to_ezkl_input
from prover.circuits.intake import TensorSpec


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
    """ezkl's witness for one input file; vk and SRS are needed only for polycommit."""
    ezkl.gen_witness(
        str(input_path),
        str(compiled),
        str(witness_path),
        str(vk_path) if vk_path else None,
        str(srs_path) if srs_path else None,
    )
    return json.loads(witness_path.read_text())


def rescaled_outputs(witness: dict, outputs: list[TensorSpec]) -> list[np.ndarray]:
    """The circuit's outputs as floats, shaped like the model's outputs."""
    values = witness["pretty_elements"]["rescaled_outputs"]
    return [
        np.asarray([float(v) for v in flat], dtype=np.float64).reshape(spec.shape)
        for flat, spec in zip(values, outputs, strict=True)
    ]
