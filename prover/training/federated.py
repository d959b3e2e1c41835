"""Federated rounds: K clients each prove one local SGD step from the same global weights,
and an aggregation circuit proves the new global weights are their weighted average.

The aggregation circuit maps ``(w_0, ..., w_{K-1})`` to ``sum_k c_k w_k`` with the
coefficients ``c_k = n_k / sum(n)`` baked in as constants. Inputs and output are *hashed*
at the step circuit's scale, so its public instances are
``[H(w_0), ..., H(w_{K-1}), H(global)]``: ``H(w_k)`` is client k's step ``weights_out``
and ``H(global)`` the next round's ``weights_in``. A round is valid only when every proof
verifies and these commitments line up.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.export import DEFAULT_OPSET
from prover.circuits.search import Progress, SearchSpace, Visibility
from prover.config import Settings
from prover.errors import CircuitError, InvalidInputError, ProverError
from prover.proving.proofs import proof_file, prove_input, public_instances, verify
from prover.store import ArtifactStore, now_iso, record_type
from prover.training.steps import STEP_CIRCUIT_TYPE, commitments_of, io_scales

AGGREGATION_TYPE = "aggregation_circuit"


class _WeightedSum(nn.Module):
    """``sum_k c_k * w_k`` over K flat weight vectors, the c_k as graph constants."""

    def __init__(self, coefficients: list[float]) -> None:
        super().__init__()
        self.coefficients = coefficients

    def forward(self, *weights: torch.Tensor) -> torch.Tensor:
        total = weights[0] * self.coefficients[0]
        for c, w in zip(self.coefficients[1:], weights[1:], strict=True):
            total = total + w * c
        return total


def _coefficients(client_weights: list[float]) -> list[float]:
    weights = [float(n) for n in client_weights]
    if not weights or any(not np.isfinite(n) or n < 0 for n in weights) or sum(weights) <= 0:
        raise InvalidInputError(
            f"client weights {client_weights} must be non-negative, finite and not all zero"
        )
    total = sum(weights)
    return [n / total for n in weights]


def _export(coefficients: list[float], parameter_count: int, path: Path) -> Path:
    k = len(coefficients)
    examples = tuple(torch.zeros(parameter_count) for _ in range(k))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(
            _WeightedSum(coefficients),
            examples,
            str(path),
            input_names=[f"w{i}" for i in range(k)],
            output_names=["global"],
            opset_version=DEFAULT_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def _calibration(
    sample_weights: list[np.ndarray] | None, k: int, parameter_count: int
) -> dict[str, Any]:
    """The clients' sample weights and a perturbed copy (weights move between rounds), or
    seeded standard-normal weights when none are given."""
    rng = np.random.default_rng(0)
    if sample_weights is None:
        base = [rng.standard_normal(parameter_count) for _ in range(k)]
    else:
        if len(sample_weights) != k:
            raise InvalidInputError(
                f"give sample weights for {k} clients; got {len(sample_weights)}"
            )
        base = [np.asarray(w, dtype=np.float64).reshape(-1) for w in sample_weights]
        if any(w.size != parameter_count for w in base):
            raise InvalidInputError(
                f"every client's sample weights must hold {parameter_count} values"
            )
    spread = max(0.1, max(float(np.max(np.abs(w))) for w in base))
    moved = [w + 0.1 * spread * rng.standard_normal(parameter_count) for w in base]
    return {
        "input_data": [np.concatenate([w, m]).tolist() for w, m in zip(base, moved, strict=True)]
    }


def compile_aggregation(
    parameter_count: int,
    client_weights: list[float],
    scale: int,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
    sample_weights: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Compile the aggregation circuit for K = ``len(client_weights)`` clients at exactly
    ``scale`` (pass the step circuit's ``training["scale"]``), so that its input and
    output commitments equal the step circuits' weight commitments.

    ``sample_weights`` (one vector per client) calibrate the circuit; without them it is
    calibrated on seeded random weights. Returns the circuit record with the aggregation
    record under ``"training"``.
    """
    coefficients = _coefficients(client_weights)
    k = len(coefficients)
    if parameter_count < 1:
        raise InvalidInputError(f"parameter count {parameter_count} must be positive")
    # Error budget, as a share of max(1, max |global|): each quantized input is off by at
    # most 2^-(s+1), and so is each coefficient (times |w_k|); each product is rounded once
    # more when rescaled. Summed over K clients that is about (K + 1) 2^-(s+1) relative, so
    # (K + 2) 2^-s leaves a factor of two for rounding ties yet is far below any SGD update.
    options = CompileOptions(
        visibility=Visibility("hashed", "fixed", "hashed"),
        tolerance=(k + 2) * 2.0**-scale,
        space=SearchSpace(scales=(scale,)),
        measure_top=settings.measure_top,
    )
    calibration = _calibration(sample_weights, k, parameter_count)
    with tempfile.TemporaryDirectory() as tmp:
        model = _export(coefficients, parameter_count, Path(tmp) / "aggregation.onnx")
        record = compile_model(model, calibration, options, store, settings, progress)
    circuit_id = record["id"]
    inputs, outputs = io_scales(store, circuit_id)
    scales = [*inputs, *outputs]
    if any(s != scale for s in scales):
        raise CircuitError(
            f"the aggregation circuit's input/output scales {scales} are not all {scale}, the "
            "step circuit's scale, so its commitments could not match the clients' weights"
        )
    if not store.exists("training", circuit_id):
        store.save_record(
            "training",
            circuit_id,
            {
                "id": circuit_id,
                "type": AGGREGATION_TYPE,
                "created_at": now_iso(),
                "clients": k,
                "client_weights": [float(n) for n in client_weights],
                "coefficients": coefficients,
                "scale": scale,
                "parameter_count": parameter_count,
                "quantization_error": float(record["accuracy"]["max_abs_error"]),
            },
        )
    return {**record, "training": store.read_record("training", circuit_id)}


def _aggregation_meta(store: ArtifactStore, circuit_id: str) -> dict[str, Any]:
    meta = store.read_record("training", circuit_id)
    if record_type(meta) != AGGREGATION_TYPE:
        raise InvalidInputError(f"circuit {circuit_id} is not an aggregation circuit")
    return meta


def _training_type(store: ArtifactStore, circuit_id: str) -> str | None:
    if not store.exists("training", circuit_id):
        return None
    return record_type(store.read_record("training", circuit_id))


def aggregation_commitments(store: ArtifactStore, proof_id: str) -> dict[str, Any]:
    """The commitments an aggregation proof makes public: each client's weights, then the
    global weights."""
    instances = public_instances(proof_file(store, proof_id))[0]
    if len(instances) < 2:
        raise InvalidInputError(
            f"proof {proof_id} is not an aggregation proof ({len(instances)} public instances)"
        )
    return {"clients": instances[:-1], "global": instances[-1]}


def prove_aggregation(
    store: ArtifactStore,
    aggregation_circuit_id: str,
    client_new_weights: list[np.ndarray],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prove the weighted average of the clients' new weights (each client's step
    ``new_weights``, in client order). The global weights are as the circuit computed
    them: feed these to the next round's steps."""
    meta = _aggregation_meta(store, aggregation_circuit_id)
    weights = [np.asarray(w, dtype=np.float64).reshape(-1) for w in client_new_weights]
    if len(weights) != meta["clients"]:
        raise InvalidInputError(
            f"the aggregation circuit takes {meta['clients']} clients; got {len(weights)}"
        )
    for i, w in enumerate(weights):
        if w.size != meta["parameter_count"]:
            raise InvalidInputError(
                f"client {i} gives {w.size} weights; the circuit takes {meta['parameter_count']}"
            )
    proof = prove_input(
        store, meta["id"], {"input_data": [w.tolist() for w in weights]}, False, progress
    )
    return {
        "proof_id": proof["id"],
        "circuit_id": meta["id"],
        "global_weights": np.asarray(proof["outputs"][0], dtype=np.float64).reshape(-1).tolist(),
        "commitments": aggregation_commitments(store, proof["id"]),
        "timings": proof["timings"],
    }


def verify_round(
    store: ArtifactStore,
    client_step_proof_ids: list[str],
    aggregation_proof_id: str,
    global_weights_in: str | None = None,
) -> dict[str, Any]:
    """Check a federated round: every client step proof and the aggregation proof verify,
    the clients used one step circuit and started from the same global weights (equal to
    ``global_weights_in`` when given), and aggregation input k is client k's output.

    ``bad_client`` names the first client (0-based) that breaks the round, if any."""
    if not client_step_proof_ids:
        raise InvalidInputError("give at least one client step proof")
    clients: list[dict[str, Any]] = []
    circuit: str | None = None
    start = global_weights_in

    def fail(reason: str, client: int | None = None) -> dict[str, Any]:
        return {
            "valid": False,
            "reason": reason,
            "bad_client": client,
            "global_weights_in": start,
            "global_weights_out": None,
            "clients": clients,
        }

    for i, proof_id in enumerate(client_step_proof_ids):
        try:
            result = verify(store, proof_id)
            found = commitments_of(store, proof_id)
            circuit_type = _training_type(store, result["circuit_id"])
        except ProverError as exc:
            return fail(f"client {i}: {exc.message}", i)
        if circuit_type != STEP_CIRCUIT_TYPE:
            return fail(f"client {i}'s proof is not a training-step proof", i)
        clients.append({"proof_id": result["proof_id"], "valid": result["valid"], **found})
        if not result["valid"]:
            return fail(f"client {i}'s step proof does not verify: {result['reason']}", i)
        circuit = circuit or result["circuit_id"]
        if result["circuit_id"] != circuit:
            return fail(f"client {i} was proven with another step circuit than client 0", i)
        if start is None:
            start = found["weights_in"]
        elif found["weights_in"] != start:
            what = "the committed" if global_weights_in else "client 0's"
            return fail(f"client {i} does not start from {what} global weights", i)
    try:
        result = verify(store, aggregation_proof_id)
        meta = _aggregation_meta(store, result["circuit_id"])
        agg = aggregation_commitments(store, aggregation_proof_id)
    except ProverError as exc:
        return fail(f"aggregation: {exc.message}")
    if not result["valid"]:
        return fail(f"the aggregation proof does not verify: {result['reason']}")
    if meta["clients"] != len(clients) or len(agg["clients"]) != len(clients):
        return fail(
            f"the aggregation circuit averages {meta['clients']} clients, not {len(clients)}"
        )
    step_scale = store.read_record("training", circuit)["scale"] if circuit else None
    if meta["scale"] != step_scale:
        return fail(
            f"the aggregation circuit's scale {meta['scale']} is not the steps' {step_scale}"
        )
    for i, (client, committed) in enumerate(zip(clients, agg["clients"], strict=True)):
        if committed != client["weights_out"]:
            return fail(
                f"the aggregation did not average the weights client {i}'s step produced", i
            )
    return {
        "valid": True,
        "reason": None,
        "bad_client": None,
        "global_weights_in": start,
        "global_weights_out": agg["global"],
        "clients": clients,
    }
