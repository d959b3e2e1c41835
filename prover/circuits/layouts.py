"""A batch circuit's layout (how its model holds N items, kept in the ONNX file's
metadata) and what a request needs of it: N inputs laid out as the batch model takes
them, a batch proof's outputs split into N results. Light: the API checks batch requests
with it, and reads a model's metadata with onnx only when asked (``circuits.batch`` builds
batch models)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prover.circuits.data import parse_sample, parse_samples
from prover.circuits.tensors import TensorSpec
from prover.errors import InvalidInputError, InvalidModelError
from prover.store import ArtifactStore

if TYPE_CHECKING:
    import onnx

METADATA_KEY = "prover.batch"


@dataclass(frozen=True)
class BatchLayout:
    """How a batch model holds N items: ``mode`` "axis" or "copies", and one item's
    inputs and outputs (as the single model has them, a batch dim fixed to 1)."""

    n: int
    mode: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> str:
        material = asdict(self)
        material["inputs"] = [t.to_dict() for t in self.inputs]
        material["outputs"] = [t.to_dict() for t in self.outputs]
        return json.dumps(material, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BatchLayout:
        raw = json.loads(text)
        return cls(
            int(raw["n"]),
            str(raw["mode"]),
            tuple(TensorSpec.from_dict(t) for t in raw["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in raw["outputs"]),
        )


def read_layout(model: onnx.ModelProto | Path) -> BatchLayout | None:
    """A batch model's layout, None for a model that is not one."""
    if isinstance(model, (str, Path)):
        import onnx

        model = onnx.load(str(model), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return BatchLayout.from_json(entry.value)
    return None


def check_layout(layout: BatchLayout, circuit: dict[str, Any]) -> None:
    """Refuse a layout that does not describe the circuit's own inputs and outputs (a
    model's metadata is the uploader's word: N results must be N items in the circuit)."""
    for what, items in (("inputs", layout.inputs), ("outputs", layout.outputs)):
        actual = [tuple(t["shape"]) for t in circuit[what]]
        if layout.mode == "axis":
            expected = [(layout.n, *t.shape[1:]) for t in items]
        else:
            expected = [t.shape for _ in range(layout.n) for t in items]
        if actual != expected:
            raise InvalidModelError(
                f"the circuit's {what} {actual} are not {layout.n} items of "
                f"{[t.shape for t in items]} ({layout.mode} layout): not a batch circuit"
            )


def batch_input(layout: BatchLayout, items: list[Any]) -> dict[str, list[list[float]]]:
    """The batch model's input (ezkl's ``input_data``) from exactly N single inputs, each
    in any form a single proof accepts."""
    if len(items) != layout.n:
        raise InvalidInputError(f"a batch of {layout.n} needs {layout.n} inputs; got {len(items)}")
    samples = [parse_sample(item, list(layout.inputs)) for item in items]
    return _laid_out(layout, samples)


def _laid_out(layout: BatchLayout, samples: list[list[np.ndarray]]) -> dict[str, list[list[float]]]:
    """Items laid out as the batch model takes them: per input stacked (axis), or each
    item's inputs in turn (copies); several batches of N are laid end to end."""
    batches = [samples[i : i + layout.n] for i in range(0, len(samples), layout.n)]
    if layout.mode == "axis":
        per_input = [
            np.concatenate([s[j] for s in samples]).tolist() for j in range(len(layout.inputs))
        ]
        return {"input_data": per_input}
    slots: list[list[float]] = [[] for _ in range(layout.n * len(layout.inputs))]
    for batch in batches:
        for i, sample in enumerate(batch):
            for j, values in enumerate(sample):
                slots[i * len(layout.inputs) + j].extend(values.tolist())
    return {"input_data": slots}


def batch_calibration(layout: BatchLayout, calibration: Any) -> dict[str, list[list[float]]]:
    """Calibration data for the batch model from a single model's: its samples grouped
    into batches of N (the last filled from the first), so every sample is seen."""
    samples = parse_samples(calibration, list(layout.inputs))
    count = math.ceil(len(samples) / layout.n) * layout.n
    return _laid_out(layout, [samples[i % len(samples)] for i in range(count)])


def split_outputs(layout: BatchLayout, outputs: list[Any]) -> list[list[np.ndarray]]:
    """A batch proof's outputs (its record's ``outputs``) as N results, each shaped like
    a single proof's outputs of the model."""
    arrays = [np.asarray(o, dtype=np.float64) for o in outputs]
    width = len(layout.outputs)
    if layout.mode == "axis":
        if len(arrays) != width:
            raise InvalidInputError(f"expected {width} output tensors, got {len(arrays)}")
        return [[a[i : i + 1] for a in arrays] for i in range(layout.n)]
    if len(arrays) != width * layout.n:
        raise InvalidInputError(f"expected {width * layout.n} output tensors, got {len(arrays)}")
    return [arrays[i * width : (i + 1) * width] for i in range(layout.n)]


@lru_cache(maxsize=256)
def _stored_model_layout(path: str) -> BatchLayout | None:
    """``read_layout`` of a stored model, once per process: a stored model's path names
    its content (the model id), so its layout never changes."""
    return read_layout(Path(path))


def is_batch_circuit(store: ArtifactStore, circuit: dict[str, Any]) -> bool:
    """Whether a stored circuit is a batch circuit (its model carries a layout)."""
    return (
        _stored_model_layout(str(store.path("models", circuit["model_id"]) / "model.onnx"))
        is not None
    )


def stored_layout(store: ArtifactStore, circuit: dict[str, Any]) -> BatchLayout:
    """The layout of a stored batch circuit, checked against its shapes;
    ``InvalidInputError`` for a circuit that is not a batch circuit."""
    layout = _stored_model_layout(str(store.path("models", circuit["model_id"]) / "model.onnx"))
    if layout is None:
        raise InvalidInputError(
            f"circuit {circuit['id'][:16]} is not a batch circuit; compile the model "
            "with compile_batch (or a model made by batch_model)"
        )
    check_layout(layout, circuit)
    return layout
