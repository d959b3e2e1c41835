"""An HTTP client of the service, one method per API operation: ``Client`` (the CLI's
--remote mode, the demo, the benchmarks) and ``AsyncClient``, the same methods awaited.

Each method only describes its request (a ``Call``) and declares the operation it calls
(``@operation``); the two clients differ only in how they send calls, so each method is
written once. tests/api/test_client_coverage.py checks the declarations against the
OpenAPI document: a route, or a field of one, that no method reaches fails it.

Errors: an answer >= 400 raises ``ServiceError`` with the service's code, message and
status. Its class is also the project's error type of that code (``not_found`` raises a
``NotFoundError``), so ``except NotFoundError`` reads the same locally and remotely. A
service that does not answer raises ``UnavailableError`` naming the URL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from contextlib import aclosing, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, NamedTuple, TypedDict, TypeVar, cast

import httpx
from typing_extensions import Unpack

from prover import errors
from prover.errors import ProverError, UnavailableError

Json = dict[str, Any]
Progress = Callable[[Json], None] | None


class ServiceError(ProverError):
    """The service answered with an error: its code, message and details are kept;
    ``status`` is the HTTP status (for a failed job, its error type's). Raised as the
    subclass of the code's error type where there is one (``service_error``)."""

    def __init__(self, status: int | None, error: Json) -> None:
        status = type(self).status if status is None else status
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        # ProverError's own __init__: a subclass's (QuotaError's) takes other arguments.
        ProverError.__init__(self, str(error.get("message", f"HTTP {status}")), **details)
        self.details["status"] = status
        self.code = str(error.get("code", "service_error"))
        self.status = status


def _typed_errors() -> dict[str, type[ServiceError]]:
    """A ``ServiceError`` subclass per error type of ``prover.errors`` with a code of its
    own: ``ServiceNotFoundError(ServiceError, NotFoundError)``, and so on."""
    kinds = [
        kind
        for kind in vars(errors).values()
        if isinstance(kind, type) and issubclass(kind, ProverError) and "code" in vars(kind)
    ]
    namespace = {"__module__": __name__}
    return {
        kind.code: cast(
            type[ServiceError], type(f"Service{kind.__name__}", (ServiceError, kind), namespace)
        )
        for kind in kinds
        if kind is not ProverError
    }


TYPED_ERRORS = _typed_errors()


def service_error(status: int | None, error: Json) -> ServiceError:
    """The error the service answered, as the type of its code (plain ``ServiceError``
    for codes of the API's own: ``invalid_request``, ``http_error``, ...)."""
    return TYPED_ERRORS.get(str(error.get("code")), ServiceError)(status, error)


@dataclass(frozen=True)
class Call:
    """One request, described; None values of ``params`` and ``json`` are left out (the
    service's defaults apply)."""

    method: str
    path: str
    params: Json = field(default_factory=dict)
    json: Json | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    wait_s: float = 0.0  # the service may hold the answer this long: added to the timeout
    reports: frozenset[int] = frozenset()  # error statuses whose non-error body is an answer


Flow = Generator[Call, Json, Json]  # yields calls, is sent their answers, returns a result


def one(call: Call) -> Flow:
    """The flow of a single call: its answer."""
    return (yield call)


def given(**fields: Any) -> Json:
    """The fields that are not None."""
    return {k: v for k, v in fields.items() if v is not None}


class Operation(NamedTuple):
    """An API operation as the OpenAPI document names it (method lower-case)."""

    method: str
    path: str
    renames: dict[str, str]  # API field -> the method's parameter


OPERATIONS: dict[str, Operation] = {}  # method name -> the operation it calls
F = TypeVar("F", bound=Callable[..., Any])


def operation(method: str, path: str, **renames: str) -> Callable[[F], F]:
    """Declare the operation a client method calls, and the API fields it takes under
    another name (``field="parameter"``): what the coverage test checks."""

    def declare(function: F) -> F:
        OPERATIONS[function.__name__] = Operation(method.lower(), path, renames)
        return function

    return declare


class CompileOptions(TypedDict, total=False):
    """The compile form's options (``prover.service.options.CompileRequest``); each left
    out takes the service's default."""

    input_visibility: Literal["public", "private", "hashed", "polycommit"]
    param_visibility: Literal["fixed", "private", "public", "hashed", "polycommit"]
    output_visibility: Literal["public", "private", "hashed", "polycommit"]
    tolerance: float | None
    strategy: Literal["search", "ezkl-default"]
    objective: Literal["prove-time", "verify-gas"]
    lookup_margin: float
    reusable_verifier: bool
    segments: int | None
    max_logrows: int | None
    fit_workers: bool
    batch_size: int | None


def upload(model: Path, calibration: Path | None, options: CompileOptions) -> Json:
    """A model upload's multipart parts: the file, the calibration, the compile form."""
    files = {"model": (model.name, model.read_bytes(), "application/octet-stream")}
    if calibration is not None:
        files["calibration"] = ("calibration.json", calibration.read_bytes(), "application/json")
    return {"files": files, "data": {k: form_value(v) for k, v in given(**options).items()}}


def form_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def job_call(job_id: str, wait: float = 0.0) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}", {"wait": wait or None}, wait_s=wait)


def run_call(run_id: str, steps: bool = True) -> Call:
    return Call("GET", f"/v1/training/runs/{run_id}", {"steps": steps})


def page(limit: int | None, cursor: int | None, **filters: Any) -> Json:
    """A list's query: the page size, the cursor (the previous page's next_cursor)."""
    return {"limit": limit, "cursor": cursor, **filters}


R = TypeVar("R")


class Operations(Generic[R]):
    """The API's operations; ``R`` is what a call returns: the answer's JSON object
    (``Client``) or a coroutine of it (``AsyncClient``). A method that takes several
    calls (``wait``) is a ``Flow``, a generator of calls sent their answers, which either
    client drives."""

    url: str
    timeout: float

    def _run(self, flow: Flow) -> R:
        raise NotImplementedError

    def _send(self, call: Call) -> R:
        return self._run(one(call))

    def _request(self, call: Call) -> Json:
        """httpx's arguments for the call."""
        return {
            "method": call.method,
            "url": call.path,
            "params": given(**call.params),
            "json": None if call.json is None else given(**call.json),
            "files": call.files,
            "data": call.data,
            "timeout": self.timeout + call.wait_s,
        }

    def _answer(self, call: Call, response: httpx.Response) -> Json:
        """The answer's JSON object, or the error it carries raised."""
        try:
            body = response.json()
        except ValueError:
            body = None
        status, obj = response.status_code, isinstance(body, dict)
        error = body.get("error") if obj else None
        if obj and (status < 400 or (status in call.reports and not isinstance(error, dict))):
            return body
        if not isinstance(error, dict):  # not the service's error shape: a proxy, a bug
            message = f"{call.method} {self.url}{call.path} answered HTTP {status}: "
            error = {"code": "http_error", "message": message + response.text[:300]}
        raise service_error(status, error)

    def _unavailable(self, call: Call, exc: httpx.TransportError) -> UnavailableError:
        url = f"{self.url}{call.path}"
        return UnavailableError(f"the service at {url} does not answer: {exc}", url=url)

    @operation("GET", "/health")
    def health(self) -> R:
        """The service's health report. A 503 with a report (``status: degraded``, the
        failing parts named) is returned, not raised: asking whether the service is
        healthy is answered either way; a 503 with an error body still raises."""
        return self._send(Call("GET", "/health", reports=frozenset({503})))

    @operation("POST", "/v1/models")
    def submit_model(
        self, model: Path, calibration: Path | None = None, **options: Unpack[CompileOptions]
    ) -> R:
        """Upload a model for compilation (a compile job; the answer has its ids)."""
        return self._send(Call("POST", "/v1/models", **upload(model, calibration, options)))

    @operation("POST", "/v1/estimates")
    def estimate(
        self, model: Path, calibration: Path | None = None, **options: Unpack[CompileOptions]
    ) -> R:
        """The service's cost estimate of compiling a model (nothing is stored)."""
        return self._send(Call("POST", "/v1/estimates", **upload(model, calibration, options)))

    @operation("GET", "/v1/models/{model_id}")
    def model(self, model_id: str) -> R:
        return self._send(Call("GET", f"/v1/models/{model_id}"))

    @operation("GET", "/v1/models")
    def list_models(self, limit: int | None = None, cursor: int | None = None) -> R:
        return self._send(Call("GET", "/v1/models", page(limit, cursor)))

    @operation("GET", "/v1/circuits/{circuit_id}")
    def circuit(self, circuit_id: str) -> R:
        return self._send(Call("GET", f"/v1/circuits/{circuit_id}"))

    @operation("GET", "/v1/circuits")
    def list_circuits(self, limit: int | None = None, cursor: int | None = None) -> R:
        return self._send(Call("GET", "/v1/circuits", page(limit, cursor)))

    @operation("POST", "/v1/circuits/{circuit_id}/proofs", input="input_obj")
    def request_proof(
        self,
        circuit_id: str,
        input_obj: Any = None,
        fresh: bool = False,
        batching: bool = False,
        *,
        items: list[Any] | None = None,
        settle: bool = False,
        market: dict[str, int] | None = None,
    ) -> R:
        """Ask for a proof of one input, or of a batch circuit's ``items`` (its N inputs).
        With ``batching`` (a batch circuit, one input) it is proven with this key's other
        requests of the batch window; ``settle`` then puts the batch's results on chain.
        With ``market`` (an offer: ``max_price`` in wei, ...) it is bought on the proof
        market."""
        body = {"input": input_obj, "items": items, "fresh": fresh}
        body |= {"batching": batching, "settle": settle, "market": market}
        return self._send(Call("POST", f"/v1/circuits/{circuit_id}/proofs", json=body))

    @operation("GET", "/v1/proofs/{proof_id}")
    def proof(self, proof_id: str) -> R:
        return self._send(Call("GET", f"/v1/proofs/{proof_id}"))

    @operation("GET", "/v1/proofs/{proof_id}/ezkl")
    def proof_file(self, proof_id: str, segment: int | None = None) -> R:
        """The proof in ezkl's own JSON (``ezkl verify`` takes it); of a proof in segments,
        the given segment's."""
        return self._send(Call("GET", f"/v1/proofs/{proof_id}/ezkl", given(segment=segment)))

    @operation("POST", "/v1/proofs/{proof_id}/verify")
    def verify(self, proof_id: str) -> R:
        return self._send(Call("POST", f"/v1/proofs/{proof_id}/verify"))

    @operation("GET", "/v1/proofs")
    def list_proofs(self, limit: int | None = None, cursor: int | None = None) -> R:
        return self._send(Call("GET", "/v1/proofs", page(limit, cursor)))

    @operation("POST", "/v1/circuits/{circuit_id}/deployments")
    def deploy(self, circuit_id: str, force: bool = False) -> R:
        call = Call("POST", f"/v1/circuits/{circuit_id}/deployments", json={"force": force})
        return self._send(call)

    @operation("POST", "/v1/proofs/{proof_id}/submissions")
    def submit_onchain(self, proof_id: str, commit_reveal: bool = False) -> R:
        body = {"commit_reveal": commit_reveal}
        return self._send(Call("POST", f"/v1/proofs/{proof_id}/submissions", json=body))

    @operation("GET", "/v1/market/requests")
    def market_requests(self) -> R:
        """The requests the service opened on the proof market (no key needed)."""
        return self._send(Call("GET", "/v1/market/requests"))

    @operation("GET", "/v1/market/requests/{request_id}")
    def market_request(self, request_id: int) -> R:
        return self._send(Call("GET", f"/v1/market/requests/{request_id}"))

    @operation("GET", "/v1/market/circuits/{circuit_id}")
    def market_circuit(self, circuit_id: str) -> R:
        """A circuit on the market: its record and its proving files' sha256."""
        return self._send(Call("GET", f"/v1/market/circuits/{circuit_id}"))

    @operation("GET", "/v1/jobs/{job_id}")
    def job(self, job_id: str, wait: float = 0.0) -> R:
        """A job's view; with ``wait`` (at most 60 s), answered once the job ends or the
        wait is over."""
        return self._send(job_call(job_id, wait))

    @operation("GET", "/v1/jobs")
    def list_jobs(
        self,
        limit: int | None = None,
        cursor: int | None = None,
        kind: str | None = None,
        subject_id: str | None = None,
    ) -> R:
        """This key's jobs, newest first; with ``kind`` and/or ``subject_id`` only those
        (a circuit's deployments: ``kind="deploy", subject_id=circuit_id``)."""
        params = page(limit, cursor, kind=kind, subject_id=subject_id)
        return self._send(Call("GET", "/v1/jobs", params))

    @operation("POST", "/v1/training/circuits", model="graph")
    def submit_step_circuit(self, graph: Path, sample: Json, reusable_verifier: bool = True) -> R:
        """Upload an exported step graph with a sample step {"weights", "x", "y"}."""
        files = {
            "model": (graph.name, graph.read_bytes(), "application/octet-stream"),
            "sample": ("sample.json", json.dumps(sample).encode(), "application/json"),
        }
        data = {"reusable_verifier": form_value(reusable_verifier)}
        return self._send(Call("POST", "/v1/training/circuits", files=files, data=data))

    @operation("POST", "/v1/training/runs")
    def start_run(self, circuit_id: str, weights: list[float], batches: list[Json]) -> R:
        body = {"circuit_id": circuit_id, "weights": weights, "batches": batches}
        return self._send(Call("POST", "/v1/training/runs", json=body))

    @operation("POST", "/v1/training/federated-runs")
    def start_federated_run(
        self,
        circuit_id: str,
        weights: list[float],
        rounds: list[list[Json]],
        client_weights: list[float] | None = None,
    ) -> R:
        """A federated run: per round one batch per client, averaged (weighted by
        ``client_weights``) into the next round's weights; read it as a run."""
        body: Json = {"circuit_id": circuit_id, "weights": weights, "rounds": rounds}
        body["client_weights"] = client_weights
        return self._send(Call("POST", "/v1/training/federated-runs", json=body))

    @operation("GET", "/v1/training/runs/{run_id}")
    def run(self, run_id: str, steps: bool = True) -> R:
        """A run's view; ``steps=False``: its state only (cheap, for polling)."""
        return self._send(run_call(run_id, steps))

    @operation("GET", "/v1/training/runs")
    def list_runs(self, limit: int | None = None, cursor: int | None = None) -> R:
        return self._send(Call("GET", "/v1/training/runs", page(limit, cursor)))

    @operation("POST", "/v1/training/runs/{run_id}/ledger")
    def put_on_ledger(self, run_id: str) -> R:
        """Start a job that puts a succeeded run on the service chain's TrainingLedger."""
        return self._send(Call("POST", f"/v1/training/runs/{run_id}/ledger"))

    @operation("POST", "/v1/training/verify-chain")
    def verify_chain(
        self,
        proof_ids: list[str],
        batches: list[Json] | None = None,
        initial_weights: str | None = None,
    ) -> R:
        body = {"proof_ids": proof_ids, "batches": batches, "initial_weights": initial_weights}
        return self._send(Call("POST", "/v1/training/verify-chain", json=body))

    @operation("GET", "/v1/keys/me")
    def whoami(self) -> R:
        """This client's key: its id, name and scope (any key may ask)."""
        return self._send(Call("GET", "/v1/keys/me"))

    @operation("POST", "/v1/keys")
    def create_key(self, name: str | None = None, scope: str | None = None) -> R:
        """A new key of ``scope`` (request, prove or admin; the service's default:
        request), its secret in the answer only (an admin key's call)."""
        return self._send(Call("POST", "/v1/keys", json={"name": name, "scope": scope}))

    @operation("GET", "/v1/keys")
    def list_keys(self) -> R:
        """Every key with its scope, revoked ones too (an admin key's call)."""
        return self._send(Call("GET", "/v1/keys"))

    @operation("DELETE", "/v1/keys/{key_id}")
    def revoke_key(self, key_id: str) -> R:
        """Revoke a key; it is refused from then on (an admin key's call)."""
        return self._send(Call("DELETE", f"/v1/keys/{key_id}"))

    @operation("POST", "/v1/webhooks")
    def register_webhook(self, url: str, events: list[str]) -> R:
        """Register an endpoint for some of this key's events; the answer's ``secret``
        (shown this once) verifies each delivery (``prover.webhook_signature``)."""
        return self._send(Call("POST", "/v1/webhooks", json={"url": url, "events": events}))

    @operation("GET", "/v1/webhooks")
    def list_webhooks(self, limit: int | None = None, cursor: int | None = None) -> R:
        return self._send(Call("GET", "/v1/webhooks", page(limit, cursor)))

    @operation("DELETE", "/v1/webhooks/{webhook_id}")
    def delete_webhook(self, webhook_id: str) -> R:
        return self._send(Call("DELETE", f"/v1/webhooks/{webhook_id}"))

    @operation("GET", "/v1/webhooks/{webhook_id}/deliveries")
    def webhook_deliveries(
        self, webhook_id: str, limit: int | None = None, cursor: int | None = None
    ) -> R:
        """A webhook's deliveries with their attempts, newest first."""
        path = f"/v1/webhooks/{webhook_id}/deliveries"
        return self._send(Call("GET", path, page(limit, cursor)))

    @operation("GET", "/v1/events", **{"Last-Event-ID": "after"})
    def events(self, after: int | None = None) -> Any:
        """This key's job events as they happen (an iterator; async in ``AsyncClient``):
        from now, or after event ``after``. A dropped stream is opened again with
        ``Last-Event-ID`` (the last event seen), so none is missed within the service's
        retention; ``UnavailableError`` once it has dropped ``RECONNECTS`` times in a row."""
        raise NotImplementedError  # each client reads a stream its own way

    def _gave_up(self, error: httpx.TransportError | None) -> UnavailableError:
        url = f"{self.url}{STREAM_CALL.path}"
        why = error or "closed by the service"
        message = f"the event stream at {url} dropped {RECONNECTS} times in a row ({why})"
        return UnavailableError(message, url=url)

    def _opened(self, response: httpx.Response) -> None:
        """``NoStream`` where the service has no event stream (an older one, a proxy in the
        way), the service's error if it refused (its body already read)."""
        if response.status_code in (404, 405):
            raise NoStream(response.status_code)
        if response.status_code >= 400:
            self._answer(STREAM_CALL, response)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            raise NoStream(response.headers.get("content-type"))

    def wait_run(
        self, run_id: str, timeout: float = 24 * 3600.0, on_progress: Progress = None
    ) -> R:
        """Wait for a training run to end, step by step (long polls on each step's job,
        reading only the run's state in between); returns its full final view, raises if
        it failed."""
        return self._run(waiting_run(run_id, timeout, on_progress))


def left(deadline: float, most: float = 30.0) -> float:
    """Seconds of a long poll: until the deadline, ``most`` at most."""
    return max(0.0, min(most, deadline - time.monotonic()))


def ended(job: Json) -> Json | None:
    """A job's final view, or None while it runs; its error raised if it failed."""
    if job["state"] == "failed":
        raise service_error(None, {**(job["error"] or {}), "job_id": job["job_id"]})
    return job if job["state"] == "succeeded" else None


def waiting(job_id: str, timeout: float, on_progress: Progress) -> Flow:
    """Waiting by long polls (short ones while reporting progress): for a service without
    the event stream."""
    deadline = time.monotonic() + timeout
    while True:
        job = yield job_call(job_id, 1.0 if on_progress else left(deadline))
        if on_progress:
            on_progress(job)
        if (done := ended(job)) is not None:
            return done
        if time.monotonic() > deadline:
            raise ProverError(f"job {job_id} did not end within {timeout} s", job_id=job_id)


class NoStream(Exception):
    """The service answered the event stream's request with something else."""


STREAM_CALL = Call("GET", "/v1/events")
STREAM_READ_S = 45.0  # the service sends a keep-alive every 15 s: longer silence is a drop
RECONNECTS = 5  # drops in a row (no line read between them) before the stream gives up


def reconnect_delay(drops: int) -> float:
    return min(0.25 * 2 ** (drops - 1), 5.0)


class EventLines:
    """Reads the event stream's lines: each event's JSON at the blank line that ends it,
    and None at a comment (the stream's opening, keep-alives); keeps the last event id,
    where a reconnection resumes."""

    def __init__(self, after: int | None) -> None:
        self.last_id, self.opened = after, False
        self.data: list[str] = []

    def request(self, timeout: float) -> Json:
        """httpx's arguments to open the stream: the first time after ``after`` (or from
        now), then with ``Last-Event-ID``, as a browser's EventSource does."""
        resume = self.opened and self.last_id is not None
        self.opened, self.data = True, []
        return {
            "method": "GET",
            "url": STREAM_CALL.path,
            "params": given(after=None if resume else self.last_id),
            "headers": {"Last-Event-ID": str(self.last_id)} if resume else {},
            "timeout": httpx.Timeout(timeout, read=STREAM_READ_S),
        }

    def feed(self, line: str) -> list[Json | None]:
        """What the line completes: an event, a comment's None, or nothing yet."""
        if line.startswith(":"):
            return [None]
        if not line:
            text, self.data = "\n".join(self.data), []
            return [json.loads(text)] if text else []
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name == "id" and value.isdigit():
            self.last_id = int(value)
        return []


class Following:
    """Waiting for a job's end on the event stream: the job is read when the stream opens
    (it may have ended before) and at each keep-alive (every 15 s), and followed by its
    events in between, which carry its view."""

    def __init__(self, job_id: str, timeout: float, on_progress: Progress) -> None:
        self.job_id, self.timeout, self.on_progress = job_id, timeout, on_progress
        self.deadline = time.monotonic() + timeout

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            message = f"job {self.job_id} did not end within {self.timeout} s"
            raise ProverError(message, job_id=self.job_id)

    def about(self, event: Json) -> Json | None:
        """The job's view an event carries, if the event is about this job."""
        mine = event.get("subject_id") == self.job_id and event["type"].startswith("job.")
        return event["data"] if mine else None

    def seen(self, job: Json) -> Json | None:
        if self.on_progress:
            self.on_progress(job)
        return ended(job)


def waiting_run(run_id: str, timeout: float, on_progress: Progress) -> Flow:
    deadline = time.monotonic() + timeout
    while True:
        run = yield run_call(run_id, steps=False)
        if on_progress:
            on_progress(run)
        if run["state"] == "succeeded":
            return (yield run_call(run_id))
        if run["state"] == "failed":
            raise service_error(None, {**(run["error"] or {}), "run_id": run_id})
        if time.monotonic() > deadline:
            raise ProverError(f"run {run_id} did not end within {timeout} s", run_id=run_id)
        yield job_call(run["job_id"], left(deadline))


def headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


class Client(Operations[Json]):
    """The service at ``url`` with an API key; use it as a context manager."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.http = httpx.Client(
            base_url=self.url, headers=headers(key), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self, flow: Flow) -> Json:
        call = next(flow)
        while True:
            try:
                response = self.http.request(**self._request(call))
            except httpx.TransportError as exc:
                raise self._unavailable(call, exc) from exc
            try:
                call = flow.send(self._answer(call, response))
            except StopIteration as end:
                return end.value

    def events(self, after: int | None = None) -> Generator[Json, None, None]:
        with closing(self._stream(after)) as stream:
            yield from (item for item in stream if item is not None)

    def wait(self, job_id: str, timeout: float = 3600.0, on_progress: Progress = None) -> Json:
        """Wait for a job to end, following the event stream (``on_progress`` is called
        with the job's view at each of its events); returns its final view, raises its
        error if it failed. Long polls where the service has no event stream."""
        following = Following(job_id, timeout, on_progress)
        try:
            with closing(self._stream(None)) as stream:
                for item in stream:
                    following.check_deadline()
                    job = self.job(job_id) if item is None else following.about(item)
                    if job is not None and (done := following.seen(job)) is not None:
                        return done
        except NoStream:
            pass
        return self._run(waiting(job_id, timeout, on_progress))

    def _stream(self, after: int | None) -> Generator[Json | None, None, None]:
        """The event stream's items (``EventLines``), opened again after a drop."""
        lines, drops = EventLines(after), 0
        while True:
            error = None
            try:
                with self.http.stream(**lines.request(self.timeout)) as response:
                    if response.status_code >= 400:
                        response.read()
                    self._opened(response)
                    for line in response.iter_lines():
                        drops = 0
                        yield from lines.feed(line)
            except httpx.TransportError as exc:
                error = exc
            drops += 1
            if drops > RECONNECTS:
                raise self._gave_up(error)
            time.sleep(reconnect_delay(drops))


class AsyncClient(Operations[Coroutine[Any, Any, Json]]):
    """``Client``'s methods as coroutines; use it as an async context manager."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=headers(key), timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _run(self, flow: Flow) -> Coroutine[Any, Any, Json]:
        return self._drive(flow)

    async def _drive(self, flow: Flow) -> Json:
        call = next(flow)
        while True:
            try:
                response = await self.http.request(**self._request(call))
            except httpx.TransportError as exc:
                raise self._unavailable(call, exc) from exc
            try:
                call = flow.send(self._answer(call, response))
            except StopIteration as end:
                return end.value

    async def events(self, after: int | None = None) -> AsyncGenerator[Json, None]:
        async with aclosing(self._stream(after)) as stream:
            async for item in stream:
                if item is not None:
                    yield item

    async def wait(
        self, job_id: str, timeout: float = 3600.0, on_progress: Progress = None
    ) -> Json:
        """``Client.wait``, awaited."""
        following = Following(job_id, timeout, on_progress)
        try:
            async with aclosing(self._stream(None)) as stream:
                async for item in stream:
                    following.check_deadline()
                    job = await self.job(job_id) if item is None else following.about(item)
                    if job is not None and (done := following.seen(job)) is not None:
                        return done
        except NoStream:
            pass
        return await self._drive(waiting(job_id, timeout, on_progress))

    async def _stream(self, after: int | None) -> AsyncGenerator[Json | None, None]:
        """``Client._stream``, awaited."""
        lines, drops = EventLines(after), 0
        while True:
            error = None
            try:
                async with self.http.stream(**lines.request(self.timeout)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                    self._opened(response)
                    async for line in response.aiter_lines():
                        drops = 0
                        for item in lines.feed(line):
                            yield item
            except httpx.TransportError as exc:
                error = exc
            drops += 1
            if drops > RECONNECTS:
                raise self._gave_up(error)
            await asyncio.sleep(reconnect_delay(drops))
