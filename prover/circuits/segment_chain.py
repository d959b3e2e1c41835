"""A segmented circuit's witnesses, segment after segment: each segment's input is the
previous one's outputs, as the exact fixed-point values the next one reads back. Run to
build a composite (its accuracy, its link counts) and to prove one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ezkl
import numpy as np

from prover.circuits.data import Sample
from prover.circuits.witness import generate_witness, write_input
from prover.store import ArtifactStore


def stored_settings(store: ArtifactStore, circuit: dict[str, Any]) -> dict[str, Any]:
    """A stored circuit's ezkl settings (its ``settings.json``)."""
    settings: dict[str, Any] = json.loads(
        (store.path("circuits", circuit["id"]) / "settings.json").read_text()
    )
    return settings


def _polycommit(circuit: dict[str, Any]) -> bool:
    return "polycommit" in circuit["visibility"].values()


def _next_input(store: ArtifactStore, circuit: dict[str, Any], witness: dict) -> Sample:
    """A segment's outputs as the next one's float input: the exact fixed-point values
    (q / 2^scale), which the next segment quantizes back to the same integers."""
    scales = stored_settings(store, circuit)["model_output_scales"]
    return [
        np.asarray([ezkl.felt_to_float(f, scale) for f in flat], dtype=np.float64)
        for flat, scale in zip(witness["outputs"], scales, strict=True)
    ]


def run_chain(
    store: ArtifactStore,
    segments: list[dict[str, Any]],
    sample: Sample,
    directory: Path,
    commitments: bool = True,
) -> list[dict[str, Any]]:
    """Witness every segment in order on one input, each fed the previous one's outputs;
    files under ``directory/segment-<i>/``. Returns per segment its paths and witness.

    ``commitments``: compute polycommit commitments (needs the vk and SRS; skipped for
    accuracy checks)."""
    steps = []
    current = sample
    for i, circuit in enumerate(segments):
        cdir = store.path("circuits", circuit["id"])
        sdir = directory / f"segment-{i}"
        sdir.mkdir(parents=True, exist_ok=True)
        commit = commitments and _polycommit(circuit)
        started = time.perf_counter()
        input_path = write_input(sdir / "input.json", [current])
        witness = generate_witness(
            cdir / "model.compiled",
            input_path,
            sdir / "witness.json",
            cdir / "vk.key" if commit else None,
            store.srs_path(circuit) if commit else None,
        )
        steps.append(
            {
                "index": i,
                "input": input_path,
                "witness_path": sdir / "witness.json",
                "witness": witness,
                "witness_s": round(time.perf_counter() - started, 4),
            }
        )
        current = _next_input(store, circuit, witness)
    return steps
