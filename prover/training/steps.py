"""Proven SGD steps: a step circuit per (architecture, loss, lr, batch shape), step proofs
whose public instances are Poseidon commitments, and verification of chains of steps.

A step circuit has inputs (weights, x, y) and outputs (new weights, loss), all *hashed*:
its public instances are ``[H(weights), H(x), H(y), H(new weights), H(loss)]``, each the
Poseidon hash of the values quantized at the circuit's scale. Input and output scales are
equal, so feeding a step's own rescaled outputs to the next step makes its
``H(new weights)`` the next step's ``H(weights)``: the chain links by commitments alone.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ezkl
import numpy as np

from prover.circuits.compiler import (
    CompileOptions,
    CompilePlan,
    Strategy,
    build_circuit,
    plan_compile,
)
from prover.circuits.intake import FloatReference, load_model
from prover.circuits.search import Progress, SearchSpace, Visibility
from prover.circuits.tensors import TensorSpec
from prover.config import Settings
from prover.errors import CircuitError, InvalidInputError, ProverError
from prover.proving.proofs import proof_file, prove_input, public_instances, verify
from prover.store import ArtifactStore, now_iso
from prover.training.graph import (
    Loss,
    StepGraph,
    read_step_graph,
    step_batch,
    step_batches,
    step_graph,
    step_weights,
)

if TYPE_CHECKING:
    from torch import nn

# Scales tried for step circuits: updates are small (lr x gradient), so the quantization
# step 2^-scale must be far below them; 2^-13 ≈ 1.2e-4, 2^-15 ≈ 3.1e-5, 2^-17 ≈ 7.6e-6.
STEP_SCALES = (13, 15, 17)
# The quantization error of the new weights may be at most this share of the mean update.
UPDATE_FRACTION = 0.1
# A step circuit is calibrated on one sample step, but must run on every batch of a run:
# its value range is 2^4 = 16 times wider than the smallest that holds the sample step.
STEP_MARGIN_BITS = 4
COMMITMENTS = ("weights_in", "x", "y", "weights_out", "loss")
# The ``type`` of a step circuit's ``training`` record.
STEP_CIRCUIT_TYPE = "training_step_circuit"


def commitment(values: np.ndarray | list[float], scale: int) -> str:
    """Poseidon commitment of values as a step circuit quantizes them (0x, big-endian):
    what a data owner publishes for a batch, or a trainer for initial weights."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    felts = [ezkl.float_to_felt(float(v), scale, ezkl.PyInputType.F32) for v in flat]
    return ezkl.felt_to_big_endian(ezkl.poseidon_hash(felts)[0])


def io_scales(store: ArtifactStore, circuit_id: str) -> tuple[list[int], list[int]]:
    """The scales ezkl gave a compiled circuit's inputs and outputs."""
    found = json.loads((store.path("circuits", circuit_id) / "settings.json").read_text())
    return (
        [int(s) for s in found["model_input_scales"]],
        [int(s) for s in found["model_output_scales"]],
    )


def batch_commitment(x: np.ndarray, y: np.ndarray, scale: int) -> str:
    """A batch's commitment as ``verify_chain`` takes it: ``H(x):H(y)``."""
    return f"{commitment(x, scale)}:{commitment(y, scale)}"


@dataclass(frozen=True)
class StepPlan:
    """A checked step-circuit request: the compile plan and options, the graph's
    description and the sample step's mean weight update (what the tolerance is set by)."""

    compile: CompilePlan
    options: CompileOptions
    graph: StepGraph
    mean_update: float
    calibration: dict[str, Any]


def plan_step(
    path: Path,
    sample: dict[str, Any],
    settings: Settings,
    reusable_verifier: bool = True,
    strategy: Strategy = "search",
) -> StepPlan:
    """Check a step graph and a sample step ``{"weights", "x", "y"}`` and plan its circuit.

    The tolerance is ``UPDATE_FRACTION`` of the sample step's mean weight update (relative
    to the largest magnitude), searched over ``STEP_SCALES``. Keys are made for ezkl's
    reusable EVM verifier by default: a step circuit's own Solidity verifier exceeds
    EIP-170 even for tiny models (measured 31-59 kB)."""
    info = load_model(path, settings)  # the generic checks: valid ONNX, size, operators
    graph = read_step_graph(path)
    if not isinstance(sample, dict) or not {"weights", "x", "y"} <= set(sample):
        raise InvalidInputError('the sample step is {"weights": [...], "x": [...], "y": [...]}')
    weights = step_weights(graph, sample["weights"])
    x, y = step_batch(graph, sample["x"], sample["y"])
    new_weights, loss_value = FloatReference(info.path, info.inputs).run([weights, x, y])
    new_weights = new_weights.astype(np.float64).reshape(-1)
    mean_update = float(np.mean(np.abs(new_weights - weights)))
    if mean_update == 0.0:
        raise InvalidInputError("the sample batch moves no weight (zero gradient); use another")
    magnitude = max(1.0, float(np.max(np.abs(new_weights))), float(np.max(np.abs(loss_value))))
    options = step_options(
        UPDATE_FRACTION * mean_update / magnitude, settings, reusable_verifier, strategy
    )
    # Calibrate on the sample step and on the step after it (weights move a little).
    calibration = {
        "input_data": [
            np.concatenate([weights, new_weights]).tolist(),
            np.concatenate([x.reshape(-1)] * 2).tolist(),
            np.concatenate([y.reshape(-1)] * 2).tolist(),
        ]
    }
    return planned_step(path, calibration, options, mean_update, settings)


def step_options(
    tolerance: float,
    settings: Settings,
    reusable_verifier: bool = True,
    strategy: Strategy = "search",
) -> CompileOptions:
    """The compile options of a step circuit: hashed inputs and outputs, fixed params,
    the search over ``STEP_SCALES``."""
    return CompileOptions(
        visibility=Visibility("hashed", "fixed", "hashed"),
        tolerance=tolerance,
        strategy=strategy,
        space=SearchSpace(scales=STEP_SCALES, margin_bits=STEP_MARGIN_BITS),
        measure_top=settings.measure_top,
        reusable_verifier=reusable_verifier,
    )


def planned_step(
    path: Path,
    calibration: dict[str, Any],
    options: CompileOptions,
    mean_update: float,
    settings: Settings,
) -> StepPlan:
    """The plan of a step circuit whose calibration and options are settled (by
    ``plan_step``, or carried in an accepted job: a worker does not recompute them, so it
    derives the same circuit id as the API on any CPU)."""
    plan = plan_compile(path, calibration, options, settings)
    return StepPlan(plan, options, read_step_graph(path), mean_update, calibration)


def build_step_circuit(
    step: StepPlan, store: ArtifactStore, settings: Settings, progress: Progress | None = None
) -> dict[str, Any]:
    """Build (or fetch) a planned step circuit and its ``training`` record.

    The scale is the smallest of ``STEP_SCALES`` whose quantization error on the sample
    step stays under ``UPDATE_FRACTION`` of the mean weight update; if none does, the
    update would drown in quantization error and the step is refused."""
    try:
        record = build_circuit(step.compile, step.options, store, settings, progress)
    except CircuitError as exc:
        raise CircuitError(
            f"no step circuit keeps the quantization error under {UPDATE_FRACTION:.0%} of "
            f"the mean weight update ({step.mean_update:.3g}) at scales {STEP_SCALES}: the "
            "update would drown in quantization error; raise the learning rate or use a "
            f"larger batch ({exc.message})"
        ) from exc
    circuit_id = record["id"]
    inputs, outputs = io_scales(store, circuit_id)
    if inputs[0] != outputs[0]:
        raise CircuitError(
            f"the step circuit's weight input and output scales differ ({inputs[0]} vs "
            f"{outputs[0]}), so consecutive steps could not share weight commitments"
        )
    error = float(record["accuracy"]["max_abs_error"])
    meta = {
        "id": circuit_id,
        "type": STEP_CIRCUIT_TYPE,
        "created_at": now_iso(),
        **step.graph.to_dict(),
        "scale": int(record["settings"]["input_scale"]),
        "mean_update": step.mean_update,
        "quantization_error": error,
        "error_over_update": error / step.mean_update,
        "momentum": None,
        "weight_decay": None,
    }
    if not store.exists("training", circuit_id):
        store.save_record("training", circuit_id, meta)
    return {**record, "training": store.read_record("training", circuit_id)}


def compile_step_graph(
    path: Path,
    sample: dict[str, Any],
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
    reusable_verifier: bool = True,
) -> dict[str, Any]:
    """Compile the step circuit of an exported step graph, calibrated on a sample step."""
    step = plan_step(path, sample, settings, reusable_verifier)
    return build_step_circuit(step, store, settings, progress)


def compile_step(
    module: nn.Module,
    loss: Loss,
    lr: float,
    x: np.ndarray,
    y: np.ndarray,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
    reusable_verifier: bool = True,
) -> dict[str, Any]:
    """Export one SGD step of ``module`` for batches shaped like (x, y) and compile it,
    calibrated on the step from the module's current weights (needs PyTorch)."""
    from prover.training.step_export import export_sgd_step, flatten_params

    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    sample = {"weights": flatten_params(module), "x": x, "y": y}
    with tempfile.TemporaryDirectory() as tmp:
        spec = export_sgd_step(module, loss, lr, x.shape, y.shape, Path(tmp) / "sgd_step.onnx")
        return compile_step_graph(spec.path, sample, store, settings, progress, reusable_verifier)


def prove_step(
    store: ArtifactStore,
    circuit_id: str,
    weights: Any,
    x: Any,
    y: Any,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prove one step from ``weights`` on the batch (x, y); returns the step record:
    proof id, commitments, the new weights (as the circuit computed them: feed these to
    the next step), the loss, and the error against the float step."""
    meta = store.read_record("training", circuit_id)
    graph = step_graph(meta)
    inputs = [step_weights(graph, weights), *(a.reshape(-1) for a in step_batch(graph, x, y))]
    proof = prove_input(
        store, meta["id"], {"input_data": [v.tolist() for v in inputs]}, False, progress
    )
    if store.exists("steps", proof["id"]):
        return store.read_record("steps", proof["id"])
    circuit = store.read_record("circuits", meta["id"])
    model = store.path("models", circuit["model_id"]) / "model.onnx"
    specs = [TensorSpec.from_dict(t) for t in circuit["inputs"]]
    float_new, float_loss = FloatReference(model, specs).run(inputs)
    new_weights = np.asarray(proof["outputs"][0], dtype=np.float64).reshape(-1)
    step = {
        "id": proof["id"],
        "type": "training_step",
        "proof_id": proof["id"],
        "circuit_id": meta["id"],
        "input_digest": proof["input_digest"],
        "created_at": now_iso(),
        "commitments": commitments_of(store, proof["id"]),
        "new_weights": new_weights.tolist(),
        "loss": float(np.asarray(proof["outputs"][1]).reshape(-1)[0]),
        "float_loss": float(np.asarray(float_loss).reshape(-1)[0]),
        "max_error_vs_float": float(np.max(np.abs(new_weights - float_new.reshape(-1)))),
        "scale": meta["scale"],
        "timings": proof["timings"],
        "dev_srs": proof["dev_srs"],
    }
    store.save_record("steps", proof["id"], step)
    return step


def prove_steps(
    store: ArtifactStore,
    circuit_id: str,
    weights: Any,
    batches: list[dict[str, Any]],
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Prove a step per batch ``{"x", "y"}``, each from the new weights the previous step
    produced; returns the step records."""
    steps: list[dict[str, Any]] = []
    for i, batch in enumerate(batches):
        if progress:
            progress(f"step {i + 1}/{len(batches)}", i / len(batches))
        steps.append(prove_step(store, circuit_id, weights, batch["x"], batch["y"]))
        weights = steps[-1]["new_weights"]
    return steps


def batch_commitments(
    store: ArtifactStore, proof_id: str, batches: list[dict[str, Any]]
) -> list[str]:
    """The commitments (see ``batch_commitment``) that batches ``{"x", "y"}`` get on the
    step circuit that made ``proof_id``."""
    meta = store.read_record("training", store.read_record("proofs", proof_id)["circuit_id"])
    pairs = step_batches(step_graph(meta), batches)
    return [batch_commitment(x, y, meta["scale"]) for x, y in pairs]


def commitments_of(store: ArtifactStore, proof_id: str) -> dict[str, str]:
    """The commitments a step proof makes public, read from its instances."""
    instances = public_instances(proof_file(store, proof_id))[0]
    if len(instances) != len(COMMITMENTS):
        raise InvalidInputError(
            f"proof {proof_id} is not a training-step proof ({len(instances)} public instances)"
        )
    return dict(zip(COMMITMENTS, instances, strict=True))


@dataclass(frozen=True)
class Link:
    """Why a chain is broken: at ``step`` (0-based), with a reason."""

    step: int
    reason: str


def _expected(batches: Sequence[str | None] | None, i: int) -> str | None:
    return batches[i] if batches and i < len(batches) else None


def verify_chain(
    store: ArtifactStore,
    proof_ids: list[str],
    batches: Sequence[str | None] | None = None,
    initial_weights: str | None = None,
) -> dict[str, Any]:
    """Check each step proof and that each step starts from the weights the previous one
    produced. ``batches`` optionally gives each step's expected batch commitment (H(x)
    then H(y), joined with ':'), ``initial_weights`` the expected first commitment."""
    if not proof_ids:
        raise InvalidInputError("give at least one step proof")
    steps: list[dict[str, Any]] = []
    broken: Link | None = None
    circuit: str | None = None
    for i, proof_id in enumerate(proof_ids):
        try:
            result = verify(store, proof_id)
            found = commitments_of(store, proof_id)
        except ProverError as exc:
            broken = broken or Link(i, exc.message)
            steps.append({"proof_id": proof_id, "valid": False, "reason": exc.message})
            continue
        steps.append({"proof_id": result["proof_id"], "valid": result["valid"], **found})
        circuit = circuit or result["circuit_id"]
        if broken:
            continue
        if not result["valid"]:
            broken = Link(i, f"the proof does not verify: {result['reason']}")
        elif result["circuit_id"] != circuit:
            broken = Link(i, "the step was proven with another step circuit")
        elif i == 0 and initial_weights and found["weights_in"] != initial_weights:
            broken = Link(i, "the first step does not start from the committed initial weights")
        elif i > 0 and found["weights_in"] != steps[i - 1].get("weights_out"):
            broken = Link(i, f"step {i} does not start from the weights step {i - 1} produced")
        elif _expected(batches, i) not in (None, f"{found['x']}:{found['y']}"):
            broken = Link(i, f"step {i} was proven on another batch than the committed one")
    return {
        "valid": broken is None,
        "steps": steps,
        "broken_at": None if broken is None else broken.step,
        "reason": None if broken is None else broken.reason,
        "final_weights": steps[-1].get("weights_out") if broken is None else None,
    }
