"""Proven SGD steps: accuracy against torch, chains by commitments, and forged chains."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import one_json, run_cli
from helpers.files import write_json
from helpers.models import step_batch, step_model
from prover.circuits.witness import generate_witness
from prover.config import Settings
from prover.store import ArtifactStore
from prover.training.graph import read_step_graph
from prover.training.step_export import flatten_params, reference_step, unflatten_into
from prover.training.steps import (
    batch_commitment,
    commitment,
    compile_step,
    prove_step,
    verify_chain,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A step circuit and a 3-step proven chain from the model's initial weights."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("training"), measure_top=1)
    store = ArtifactStore(settings.data_dir)
    model = step_model()
    circuit = compile_step(model, "mse", 0.5, *step_batch(0), store, settings)
    weights = flatten_params(model)
    steps = []
    for t in range(3):
        step = prove_step(store, circuit["id"], weights, *step_batch(t))
        steps.append(step)
        weights = np.asarray(step["new_weights"])
    return {"store": store, "circuit": circuit, "steps": steps, "model": model}


def test_proven_steps_track_torch_within_the_stated_error(trained: dict) -> None:
    meta = trained["circuit"]["training"]
    assert meta["scale"] in (13, 15, 17)
    assert meta["error_over_update"] <= 0.1
    model = trained["model"]
    weights = flatten_params(model)
    for t, step in enumerate(trained["steps"]):
        unflatten_into(model, weights)
        torch_weights, torch_loss = reference_step(model, "mse", 0.5, *step_batch(t))
        error = np.max(np.abs(np.asarray(step["new_weights"]) - torch_weights))
        update = np.mean(np.abs(torch_weights - weights))
        assert error <= 0.1 * update, (t, error, update)
        assert abs(step["loss"] - torch_loss) < 1e-2
        weights = np.asarray(step["new_weights"])


def test_a_step_circuit_runs_on_batches_it_was_not_calibrated_on(
    trained: dict, tmp_path: Path
) -> None:
    """Calibrated on batch 0 only, the circuit's value range (with its margin) still
    holds every step from w0 on 40 other batches of the same distribution: each step's
    new weights and loss are torch's SGD step within the error stated for batch 0."""
    compiled = trained["store"].path("circuits", trained["circuit"]["id"]) / "model.compiled"
    model = step_model()  # w0 (the fixture's model is moved by other tests)
    weights = flatten_params(model)
    for t in range(1, 41):
        x, y = step_batch(t)
        inputs = write_json(
            tmp_path / "input.json",
            {"input_data": [weights.tolist(), x.reshape(-1).tolist(), y.reshape(-1).tolist()]},
        )
        witness = generate_witness(compiled, inputs, tmp_path / "witness.json")
        new_weights, loss = (
            np.asarray(flat, dtype=np.float64).reshape(-1)
            for flat in witness["pretty_elements"]["rescaled_outputs"]
        )
        torch_weights, torch_loss = reference_step(model, "mse", 0.5, x, y)
        error = np.max(np.abs(new_weights - torch_weights))
        assert error <= 0.1 * np.mean(np.abs(torch_weights - weights)), (t, error)
        assert abs(loss[0] - torch_loss) < 1e-2, (t, loss, torch_loss)


def test_a_chain_verifies_and_links_by_commitments(trained: dict) -> None:
    store, steps = trained["store"], trained["steps"]
    scale = trained["circuit"]["training"]["scale"]
    ids = [s["proof_id"] for s in steps]
    batches = [batch_commitment(*step_batch(t), scale) for t in range(3)]
    initial = commitment(flatten_params(step_model()), scale)
    result = verify_chain(store, ids, batches, initial)
    assert result["valid"], result
    for a, b in itertools.pairwise(steps):
        assert a["commitments"]["weights_out"] == b["commitments"]["weights_in"]
    assert result["final_weights"] == commitment(steps[-1]["new_weights"], scale)


def test_forged_chains_are_rejected_at_the_broken_link(trained: dict) -> None:
    store, steps, circuit = trained["store"], trained["steps"], trained["circuit"]
    scale = circuit["training"]["scale"]
    ids = [s["proof_id"] for s in steps]

    swapped = verify_chain(store, [ids[0], ids[2], ids[1]])
    assert not swapped["valid"] and swapped["broken_at"] == 1

    # Step 1 proven from other weights (the float step's, not the circuit's own outputs).
    model = step_model()
    float_weights, _ = reference_step(model, "mse", 0.5, *step_batch(0))
    other = prove_step(store, circuit["id"], float_weights, *step_batch(1))
    forged = verify_chain(store, [ids[0], other["proof_id"]])
    assert not forged["valid"] and forged["broken_at"] == 1
    assert "does not start from the weights" in forged["reason"]

    # A step proven on a batch other than the committed one.
    x, y = step_batch(7)
    committed = [batch_commitment(*step_batch(t), scale) for t in range(2)]
    wrong_batch = prove_step(store, circuit["id"], steps[0]["new_weights"], x, y)
    result = verify_chain(store, [ids[0], wrong_batch["proof_id"]], committed)
    assert not result["valid"] and result["broken_at"] == 1 and "batch" in result["reason"]


MODEL_FILE = """
import torch


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
"""


def test_cli_compiles_steps_and_verifies_a_chain(trained: dict, tmp_path: Path) -> None:
    """The CLI on the same store: compile is answered from it, a step is proven from the
    chain's last weights, and the 4-step chain verifies; a broken one exits 1."""
    (tmp_path / "model.py").write_text(MODEL_FILE)
    batches = []
    for t in (0, 3):
        x, y = step_batch(t)
        batches.append(write_json(tmp_path / f"b{t}.json", {"x": x.tolist(), "y": y.tolist()}))
    data = trained["store"].root
    compiled = one_json(
        run_cli(
            data,
            "train",
            "compile",
            f"{tmp_path / 'model.py'}:make_model",
            "--loss",
            "mse",
            "--lr",
            "0.5",
            "--batch",
            "4",
            "--sample-batch",
            str(batches[0]),
            "--json",
        )
    )
    assert compiled["circuit_id"] == trained["circuit"]["id"]
    last = trained["steps"][-1]
    write_json(tmp_path / "w.json", {"weights": last["new_weights"]})
    step = one_json(
        run_cli(
            data,
            "train",
            "step",
            compiled["circuit_id"],
            "--weights",
            str(tmp_path / "w.json"),
            "--batch",
            str(batches[1]),
            "--json",
        )
    )
    assert step["commitments"]["weights_in"] == last["commitments"]["weights_out"]
    chain = [s["proof_id"] for s in trained["steps"]] + [step["proof_id"]]
    ok = run_cli(
        data,
        "train",
        "verify-chain",
        *chain,
        "--initial",
        compiled["initial_weights_commitment"],
        "--json",
    )
    assert ok.returncode == 0 and one_json(ok)["valid"]
    broken = run_cli(data, "train", "verify-chain", chain[0], chain[3], "--json")
    assert broken.returncode == 1 and one_json(broken)["broken_at"] == 1


def test_cli_exports_a_step_graph_with_its_sample(tmp_path: Path) -> None:
    """`prover train export` writes the self-describing graph and the sample step that
    `POST /v1/training/circuits` takes; a sample batch of the wrong size is refused."""
    (tmp_path / "model.py").write_text(MODEL_FILE)
    x, y = step_batch(0)
    batch = write_json(tmp_path / "b.json", {"x": x.tolist(), "y": y.tolist()})
    model = f"{tmp_path / 'model.py'}:make_model"
    common = ("--loss", "mse", "--lr", "0.5", "--sample-batch", str(batch), "--json")
    out, sample = tmp_path / "step.onnx", tmp_path / "sample.json"
    exported = run_cli(
        tmp_path / "data", "train", "export", model, "--batch", "4", "-o", str(out),
        "--sample-out", str(sample), *common,
    )  # fmt: skip
    described = one_json(exported)
    assert described["parameter_count"] == 51 and described["x_shape"] == [4, 4]
    assert read_step_graph(out).to_dict() == {k: v for k, v in described.items() if k != "path"}
    written = json.loads(sample.read_text())
    assert np.allclose(written["weights"], flatten_params(step_model()))
    assert np.allclose(written["y"], y)
    wrong = run_cli(tmp_path / "data", "train", "export", model, "--batch", "5", *common)
    assert wrong.returncode == 1 and "--batch is 5" in one_json(wrong)["error"]["message"]
