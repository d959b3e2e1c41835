"""Segmented circuits: one model cut at graph points into K ordinary circuits, planned.

A model too large for one prover (memory, or time on one machine) is cut where a single
tensor carries everything the rest of the graph needs (``cuts``). Each segment is an
ordinary circuit (``plan_compile`` + ``build_circuit`` on the segment's ONNX file,
calibrated on the float tensors at its cut), and consecutive segments are linked by what
their proofs expose of the tensor that crosses the cut (``links``): a KZG commitment
(``polycommit``) or a Poseidon hash (``hashed``).

Both links need the same integers on both sides of a cut, so one fixed-point scale is
pinned for every segment (ezkl rebases each output to the input scale); the composite's
outputs are checked against onnxruntime like an unsplit circuit's (``segment_build``).
This module plans: the cuts, the link and the composite's id; ``run_chain`` (the
witnesses segment after segment) is re-exported from ``segment_chain``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prover.circuits.compiler import EZKL_VERSION, CompileOptions, CompilePlan, plan_compile
from prover.circuits.cuts import Cuts, plan_cuts, split_saving
from prover.circuits.data import Sample
from prover.circuits.estimate import logrows_within
from prover.circuits.intake import ModelInfo
from prover.circuits.links import LINKS, Link, LinkChoice, choose_link
from prover.circuits.segment_chain import run_chain as run_chain  # proving.composite's name
from prover.circuits.srs import srs_source
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.store import canonical_digest

SEGMENTED_FORMAT = 1


@dataclass(frozen=True)
class SegmentedPlan:
    """A checked segmented compile request: model, calibration, cuts and the composite id."""

    info: ModelInfo
    samples: list[Sample]
    source: str
    calibration_digest: str
    cuts: tuple[str, ...]
    link: Link
    circuit_id: str
    link_reason: str = "asked for"
    estimated_logrows: tuple[int, ...] = ()  # per segment, from ezkl's default layout
    note: str | None = None  # why the split saves nothing (it was asked for all the same)


def plan_segmented(
    model_path: Path,
    calibration: Any | None,
    options: CompileOptions,
    settings: Settings,
    segments: int | None = None,
    max_logrows: int | None = None,
    link: LinkChoice = "auto",
    cuts: Cuts | None = None,
    base: CompilePlan | None = None,
) -> SegmentedPlan:
    """Check the request, choose the cuts (unless given: ``plan_cuts``'s) and, for
    ``link="auto"``, the link (see ``choose_link``), and derive the composite circuit id.
    ``base``: the whole model's ``plan_compile`` of this same request, when the caller
    has it already (intake runs in a sandboxed child: once per request is enough)."""
    if link not in ("auto", *LINKS):
        raise InvalidInputError(f"link {link!r} is not one of auto, {', '.join(LINKS)}")
    if options.strategy != "search":
        raise InvalidInputError(
            "a segmented circuit needs the settings search: its segments share one pinned "
            "scale, which ezkl's own calibration (ezkl-default) cannot keep"
        )
    if base is None:
        base = plan_compile(model_path, calibration, options, settings)
    if base.info.unchecked is not None:
        raise InvalidInputError(
            f"cannot split this model: onnxruntime cannot run it ({base.info.unchecked}), and "
            "the segments are calibrated on the float tensors at each cut"
        )
    graph = base.info.fixed_graph()
    cuts = cuts or plan_cuts(graph, segments, max_logrows, settings)
    if not cuts.tensors:
        raise InvalidInputError(
            "the model fits max_logrows in one circuit; compile it unsplit instead"
        )
    # A split to fit max_logrows saves by construction; one into K segments is checked.
    note = split_saving(graph, cuts, settings) if max_logrows is None else None
    chosen: Link
    if link == "auto":
        chosen, why = choose_link(graph, cuts)
    else:
        chosen, why = link, "asked for"
    circuit_id = canonical_digest(
        {
            "format": SEGMENTED_FORMAT,
            "type": "segmented",
            "ezkl": EZKL_VERSION,
            "model": base.info.model_id,
            "calibration": base.calibration_digest,
            "options": asdict(options),
            "cuts": list(cuts.tensors),
            "link": chosen,
            "srs": srs_source(settings.srs_path, settings.env == "production"),
        }
    )
    return SegmentedPlan(
        base.info,
        base.samples,
        base.source,
        base.calibration_digest,
        cuts.tensors,
        chosen,
        circuit_id,
        why,
        cuts.logrows,
        note,
    )


def plan_any(
    model_path: Path,
    calibration: Any | None,
    options: CompileOptions,
    settings: Settings,
    segments: int | None = None,
    max_logrows: int | None = None,
    max_memory_bytes: int | None = None,
) -> CompilePlan | SegmentedPlan:
    """The plan of a compile request: one circuit, or the model in segments (``segments``
    of them, or as few as keep each within 2^``max_logrows`` rows and a proof within
    ``max_memory_bytes``: a worker's memory, see ``estimate.logrows_within``). A model
    that fits within those bounds unsplit is one circuit."""
    if max_memory_bytes is not None:
        fitting = logrows_within(max_memory_bytes)
        max_logrows = fitting if max_logrows is None else min(max_logrows, fitting)
    plan = plan_compile(model_path, calibration, options, settings)  # intake first
    if segments is None and max_logrows is None:
        return plan
    graph = plan.info.fixed_graph()
    cuts = plan_cuts(graph, segments, max_logrows, settings)
    if not cuts.tensors:
        return plan
    return plan_segmented(
        model_path, calibration, options, settings, segments, max_logrows, cuts=cuts, base=plan
    )
