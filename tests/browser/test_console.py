"""The web console in a real browser (headless Chromium, Playwright) against a real service:
sign in, upload the digits MLP with its calibration file, watch the compile job end,
request a proof, verify it and see "valid"; a wrong key shows the API's own error.
Driven by roles and labels, as a user with a screen reader would; every page must leave
the browser's console free of errors and fit a narrow screen. A screenshot of each page
is kept (see ``conftest.artifacts``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, ViewportSize, expect

from helpers.stack import Service

expect.set_options(timeout=30_000)  # a shared 2-core machine: pages may take seconds

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "digits_mlp"
NARROW: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
COMPILE_TIMEOUT_MS = 240_000
CHAIN_TIMEOUT_MS = 120_000


class Console:
    """One browser tab on the console, recording what the browser's console reports."""

    def __init__(self, page: Page, service: Service, artifacts: Path) -> None:
        self.page, self.service, self.artifacts = page, service, artifacts
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.service.url}/ui/{fragment}")

    def sign_in(self, key: str) -> None:
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def go(self, name: str) -> None:
        """Follow a link of the main navigation."""
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()

    def heading(self, text: str) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_text(text)

    def settled(self) -> None:
        """The page has rendered what it loads (its main region is no longer busy)."""
        expect(self.page.locator("main[aria-busy]")).to_have_count(0, timeout=30_000)

    def shot(self, name: str, narrow: bool = False, full_page: bool = True) -> None:
        """A screenshot, after checking that nothing went to the console."""
        assert not self.errors, f"{name}: {self.errors}"
        if narrow:
            self.page.set_viewport_size(NARROW)
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name}: the page is {overflow}px wider than a narrow screen"
        self.page.screenshot(path=self.artifacts / f"{name}.png", full_page=full_page)
        if narrow:
            self.page.set_viewport_size(DESKTOP)


@pytest.fixture
def console(browser: Any, service: Service, artifacts: Path) -> Iterator[Console]:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(30_000)
    try:
        yield Console(context.new_page(), service, artifacts)
    finally:
        context.close()


def test_a_wrong_key_shows_the_apis_error(console: Console, service: Service) -> None:
    console.open()
    console.heading("Sign in")
    console.shot("sign-in")
    console.shot("sign-in-narrow", narrow=True)
    answer = httpx.get(f"{service.url}/v1/models", headers={"Authorization": "Bearer pk_not_a_key"})
    assert answer.status_code == 401
    console.sign_in("pk_not_a_key")
    expect(console.page.get_by_role("alert")).to_contain_text(answer.json()["error"]["message"])
    expect(console.page.get_by_role("button", name="Sign out")).to_be_hidden()
    console.heading("Sign in")
    # The browser reports the refused request itself (a 401 resource), and nothing else.
    assert all("status of 401" in e for e in console.errors), console.errors
    assert console.errors, "the refused request was not seen"
    console.errors.clear()
    console.shot("sign-in-wrong-key")


LIVE_PHASE = """() => {
    const text = (id) => document.querySelector(`[data-testid=${id}]`)?.textContent;
    return text("job-state") === "running" && /^(intake|search|setup)$/.test(text("job-phase"));
}"""


def upload_and_compile(console: Console) -> str:
    """Upload the digits MLP with its calibration file; the job page follows the compile
    live until it ends. Returns the circuit id."""
    page = console.page
    console.go("Upload a model")
    console.heading("Upload a model")
    page.get_by_label("Model (ONNX file)").set_input_files(MODEL / "model.onnx")
    page.get_by_label("Calibration data (JSON file)").set_input_files(MODEL / "calibration.json")
    console.shot("upload")
    page.get_by_role("button", name="Upload and compile").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Job [0-9a-f]{12}$"))
    page.wait_for_function(LIVE_PHASE, timeout=COMPILE_TIMEOUT_MS)  # a phase, seen live
    expect(page.get_by_test_id("job-state")).to_have_text("succeeded", timeout=COMPILE_TIMEOUT_MS)
    expect(page.get_by_test_id("job-phase")).to_have_text("done")
    expect(page.get_by_label("Progress")).to_have_attribute("value", "1")
    expect(page.get_by_role("table", name="Seconds per phase")).to_contain_text("search")
    console.settled()
    console.shot("job-compile")
    page.get_by_role("link", name="Open circuit").click()
    console.settled()
    return page.url.rsplit("/", 1)[1]


def check_circuit(console: Console, key: str, circuit_id: str) -> None:
    """The circuit page: settings, accuracy, the development SRS warning, deployments."""
    page = console.page
    expect(page.get_by_role("heading", name="Settings chosen")).to_be_visible()
    with console.service.client(key) as client:
        record = client.get(f"/v1/circuits/{circuit_id}").json()["record"]
    expect(page.get_by_test_id("logrows")).to_have_text(str(record["logrows"]))
    accuracy = page.get_by_role("region", name="Accuracy against float")
    expect(accuracy).to_contain_text(str(record["accuracy"]["samples"]))
    expect(page.get_by_role("note")).to_contain_text("Development SRS")
    expect(page.get_by_text("Not deployed by this key.")).to_be_visible()
    console.shot("circuit")
    console.shot("circuit-narrow", narrow=True)


def prove_and_verify(console: Console) -> str:
    """Request a proof from the demo's input file on the circuit page; the proof page
    follows the prove job; Verify answers "valid". Returns the proof id."""
    page = console.page
    page.get_by_label("Input file (JSON)").set_input_files(MODEL / "input.json")
    expect(page.get_by_label("Input (JSON)")).to_have_value((MODEL / "input.json").read_text())
    page.get_by_role("button", name="Request proof").click()
    verify = page.get_by_role("button", name="Verify", exact=True)
    expect(verify).to_be_visible(timeout=120_000)
    console.settled()
    label = json.loads((MODEL / "metrics.json").read_text())["sample_label"]
    expect(page.get_by_test_id("argmax")).to_have_text(str(label))
    verify.click()
    expect(page.get_by_role("status", name="Verification result")).to_have_text("valid")
    console.shot("proof")
    console.shot("proof-top", full_page=False)
    console.shot("proof-narrow", narrow=True)
    return page.url.rsplit("/", 1)[1]


def download(console: Console, key: str, proof_id: str, folder: Path) -> None:
    """The download is ezkl's own proof file, byte for byte what the API serves."""
    with console.page.expect_download() as download:
        console.page.get_by_role("button", name="Download proof (ezkl JSON)").click()
    saved = folder / "proof.json"
    download.value.save_as(saved)
    with console.service.client(key) as client:
        assert saved.read_bytes() == client.get(f"/v1/proofs/{proof_id}/ezkl").content
    assert "instances" in json.loads(saved.read_text())


def deploy_and_submit(console: Console, key: str, circuit_id: str, proof_id: str) -> None:
    """Deploy the circuit's verifier from its page, then submit the proven result from the
    proof's page: accepted, with the transaction the job recorded."""
    page = console.page
    page.get_by_role("link", name=circuit_id[:12], exact=True).click()
    console.heading(f"Circuit {circuit_id[:12]}")
    console.settled()
    page.get_by_role("button", name="Deploy verifier").click()
    deployments = page.get_by_role("table", name="Deployments")
    expect(deployments).to_contain_text("succeeded", timeout=CHAIN_TIMEOUT_MS)
    expect(deployments).to_contain_text(re.compile("0x[0-9a-fA-F]{40}"))
    page.go_back()
    console.heading(f"Proof {proof_id[:12]}")
    console.settled()
    page.get_by_role("button", name="Submit on chain").click()
    submissions = page.get_by_role("table", name="On-chain submissions")
    accepted = submissions.get_by_role("cell", name="accepted", exact=True)
    expect(accepted).to_be_visible(timeout=CHAIN_TIMEOUT_MS)
    with console.service.client(key) as client:
        jobs = client.get("/v1/jobs").json()["items"]
    tx = next(j["result"]["tx_hash"] for j in jobs if j["kind"] == "submit")
    expect(submissions).to_contain_text(tx)
    console.shot("proof-onchain")


def follow_a_new_job(console: Console, key: str, circuit_id: str) -> None:
    """A proof asked for elsewhere (here: the API) appears on the open jobs page and ends
    there, told by the event stream: the page reads the list again only on an event."""
    page = console.page
    lists: list[str] = []
    page.on("request", lambda r: lists.append(r.url) if "/v1/jobs?" in r.url else None)
    body = {"input": json.loads((MODEL / "input.json").read_text()), "fresh": True}
    with console.service.client(key) as client:
        asked = client.post(f"/v1/circuits/{circuit_id}/proofs", json=body).json()
    link = page.get_by_role("link", name=f"Job {asked['job_id']}")
    row = page.get_by_role("row").filter(has=link)
    expect(row).to_contain_text("succeeded", timeout=120_000)
    assert lists, "the list was not read again"
    page.wait_for_timeout(3000)  # idle: no event, no read (the list does not poll)
    count = len(lists)
    page.wait_for_timeout(3000)
    assert len(lists) == count, lists


def browse_lists(console: Console, key: str, circuit_id: str, proof_id: str) -> None:
    """Each list links to what was made; the jobs list follows the key's event stream."""
    page = console.page
    console.go("Proofs")
    console.heading("Proofs")
    page.get_by_role("link", name=f"Proof {proof_id}").click()  # the full id is its name
    console.heading(f"Proof {proof_id[:12]}")
    console.settled()
    console.go("Jobs")
    console.heading("Jobs")
    console.settled()
    expect(page.get_by_role("link", name=re.compile(r"^Job "))).to_have_count(4)
    follow_a_new_job(console, key, circuit_id)
    console.shot("jobs")
    console.shot("jobs-narrow", narrow=True)
    console.go("Models and circuits")
    console.settled()
    expect(page.get_by_role("link", name=f"Circuit {circuit_id[:12]}")).to_be_visible()
    console.shot("circuits")
    console.go("Training runs")
    console.heading("Training runs")
    console.settled()
    console.shot("runs")
    console.go("Workers")
    console.heading("Workers")
    console.settled()
    workers = page.get_by_role("table", name=re.compile(r"^Workers on "))
    expect(workers).to_contain_text("answering")
    expect(workers).to_contain_text("chain, compile, prove")
    expect(workers).to_contain_text("entries")  # its store's use
    console.shot("workers")
    console.shot("workers-narrow", narrow=True)


def test_upload_compile_prove_verify(console: Console, service: Service, tmp_path: Path) -> None:
    key = service.key("console")
    console.open()
    console.sign_in(key)
    console.heading("Models and circuits")
    console.settled()
    console.shot("circuits-empty")
    circuit_id = upload_and_compile(console)
    check_circuit(console, key, circuit_id)
    proof_id = prove_and_verify(console)
    download(console, key, proof_id, tmp_path)
    deploy_and_submit(console, key, circuit_id, proof_id)
    browse_lists(console, key, circuit_id, proof_id)
    # Signing out forgets the key.
    console.page.get_by_role("button", name="Sign out").click()
    console.heading("Sign in")
    assert console.page.evaluate("sessionStorage.length") == 0
    assert not console.errors, console.errors
