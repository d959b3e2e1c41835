"""The console's views of batches in a real browser: two single requests of one key,
batched by the service into one proof of a batch-4 circuit; a request's page says where
it sits in the batch proof and links to it, and the batch proof's page lists every
result with its on-chain key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from helpers.models import calibration_data, make_mlp
from helpers.stack import Service, compile_model, wait_job

from .test_console import Console

N = 4
INPUTS = [[[0.5, -1.0, 0.25, 1.5]], [[1.0, 0.0, -0.5, 0.3]]]


@pytest.fixture(scope="module")
def batched(service: Service, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    """(api key, the two requests' proof views), proven in one batch proof."""
    model = make_mlp(tmp_path_factory.mktemp("console-batch") / "mlp.onnx")
    key = service.key("batcher")
    form = {"batch_size": N, "input_visibility": "hashed", "output_visibility": "hashed"}
    with service.connect(key) as api:
        circuit_id = compile_model(api, model, calibration_data(), **form)["circuit_id"]
    with service.client(key) as client:
        asked = [
            client.post(
                f"/v1/circuits/{circuit_id}/proofs", json={"input": item, "batching": True}
            ).json()
            for item in INPUTS
        ]
        assert len({a["job_id"] for a in asked}) == 1, asked
        assert wait_job(client, asked[0]["job_id"])["state"] == "succeeded"
        return key, [client.get(f"/v1/proofs/{a['proof_id']}").json() for a in asked]


def test_a_batched_request_links_to_its_batch_proof(
    browser: Any, service: Service, artifacts: Path, batched: tuple[str, list[dict]]
) -> None:
    key, proofs = batched
    second = proofs[1]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        console = Console(context.new_page(), service, artifacts)
        page = console.page
        console.open()
        console.sign_in(key)
        console.settled()
        console.open(f"#/proofs/{second['proof_id']}")
        console.heading(f"Proof {second['proof_id'][:12]}")
        console.settled()
        place = page.get_by_role("definition").filter(has_text=f"of {N} (2 requests)")
        expect(place).to_have_text(f"{second['batch']['position'] + 1} of {N} (2 requests)")
        expect(page.get_by_text(second["batch"]["result_key"])).to_be_visible()
        console.shot("batched-request")
        console.shot("batched-request-narrow", narrow=True)

        batch_id = second["batch"]["proof_id"]
        page.get_by_role("link", name=batch_id[:12]).click()
        console.heading(f"Proof {batch_id[:12]}")
        console.settled()
        results = page.get_by_role("table", name="Batch results")
        expect(results.get_by_role("row")).to_have_count(N + 1)  # a header and N results
        expect(results).to_contain_text(second["batch"]["result_key"])
        console.shot("batch-proof")
    finally:
        context.close()
