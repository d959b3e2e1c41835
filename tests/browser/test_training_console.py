"""The console's training-run page in a real browser: a run of the tiny 4-6-3 MLP, made
through the public API as a client would (step circuit, then a run of two batches), shown
with its steps, commitments and the proven-against-float loss chart; "Verify chain" asks
the service to check the step proofs and their links, and the answer is shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from helpers.models import step_batch, step_model
from helpers.stack import Service
from prover.training.step_export import export_sgd_step, flatten_params

from .test_console import Console

STEPS = 2


def batch(t: int) -> dict[str, list]:
    x, y = step_batch(t)
    return {"x": x.tolist(), "y": y.tolist()}


@pytest.fixture(scope="module")
def training_run(service: Service, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """(api key, run view) of a succeeded run of ``STEPS`` proven steps."""
    folder = tmp_path_factory.mktemp("console-step")
    x, y = step_batch(0)
    graph = export_sgd_step(step_model(), "mse", 0.5, x.shape, y.shape, folder / "step.onnx")
    weights = flatten_params(step_model()).tolist()
    key = service.key("trainer")
    with service.connect(key) as api:
        accepted = api.submit_step_circuit(graph.path, {"weights": weights, **batch(0)})
        api.wait(accepted["job_id"])
        batches = [batch(t) for t in range(STEPS)]
        run = api.start_run(accepted["circuit_id"], weights, batches)
        return key, api.wait_run(run["run_id"], timeout=600)


def test_a_training_run_shows_steps_chart_and_chain_verification(
    browser: Any, service: Service, artifacts: Path, training_run: tuple[str, dict]
) -> None:
    key, run = training_run
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        console = Console(context.new_page(), service, artifacts)
        page = console.page
        console.open()
        console.sign_in(key)
        console.settled()
        console.go("Training runs")
        console.settled()
        page.get_by_role("link", name=f"Run {run['run_id'][:12]}").click()
        console.heading(f"Training run {run['run_id'][:12]}")
        console.settled()
        expect(page.get_by_role("img", name="Loss per step: proven against float")).to_be_visible()
        steps = page.get_by_role("table", name="Steps")
        expect(steps.get_by_role("link", name=re.compile(r"^Proof "))).to_have_count(STEPS)
        first = run["steps"][0]
        expect(steps).to_contain_text(first["commitments"]["weights_in"][:12])
        expect(page.get_by_text(run["final_commitment"])).to_be_visible()
        page.get_by_role("button", name="Verify chain").click()
        expect(page.get_by_role("status", name="Chain verification result")).to_have_text("valid")
        expect(page.get_by_text(f"{STEPS} steps chain")).to_be_visible()
        console.shot("run")
        console.shot("run-narrow", narrow=True)
    finally:
        context.close()
