"""The one compile rule: a batch-N circuit, a model in segments, or one circuit.

The CLI (``prover compile``) and the service (at submission) plan a compile request here,
so both refuse the same requests with the same words; a compile job re-plans the stored
model with ``plan_any`` (a batch request's stored model is already the batch-N one) and
builds either plan with ``build_any``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from prover.circuits.batch import batch_model
from prover.circuits.compiler import CompileOptions, CompilePlan, build_circuit, plan_compile
from prover.circuits.intake import load_model
from prover.circuits.layouts import batch_calibration, read_layout
from prover.circuits.progress import Progress
from prover.circuits.segment_build import build_segmented
from prover.circuits.segments import SegmentedPlan, plan_any
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.store import ArtifactStore

Plan = CompilePlan | SegmentedPlan


class Layout(Protocol):
    """What a compile request says of the circuit's layout (``CompileRequest`` has it)."""

    @property
    def batch_size(self) -> int | None: ...
    @property
    def segments(self) -> int | None: ...
    @property
    def max_logrows(self) -> int | None: ...
    @property
    def fit_workers(self) -> bool: ...


@contextmanager
def compile_plan(
    model_path: Path,
    calibration: Any | None,
    options: CompileOptions,
    settings: Settings,
    layout: Layout,
    memory: int | None = None,
) -> Iterator[Plan]:
    """The plan of a compile request, checked (no circuit work). A batch plan's model is
    a temporary file, there while the context is open; ``memory``: the worker memory a
    ``fit_workers`` request splits to fit."""
    if layout.batch_size is None:
        yield plan_any(
            model_path, calibration, options, settings, layout.segments, layout.max_logrows, memory
        )
        return
    if layout.segments is not None or layout.max_logrows is not None or layout.fit_workers:
        raise InvalidInputError("a model is compiled in segments or as a batch, not both")
    load_model(model_path, settings)  # the model passes intake (sandboxed) before any work
    with tempfile.TemporaryDirectory() as tmp:
        name = f"{model_path.stem}.batch{layout.batch_size}.onnx"
        path = batch_model(model_path, layout.batch_size, Path(tmp) / name, "copies")
        batched = read_layout(path)
        assert batched is not None
        data = None if calibration is None else batch_calibration(batched, calibration)
        yield plan_compile(path, data, options, settings)


def build_any(
    plan: Plan,
    options: CompileOptions,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``build_segmented`` or ``build_circuit``, as the plan says."""
    if isinstance(plan, SegmentedPlan):
        return build_segmented(plan, options, store, settings, progress)
    return build_circuit(plan, options, store, settings, progress)
