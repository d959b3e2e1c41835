"""The Python client against the OpenAPI document: every operation a client calls has a
method declaring it (or is left out below, with the reason), every field of it (path and
query parameters, JSON body properties, form fields) is a parameter of that method, and
each method sends what it declares. Then the client's errors, sync and async."""

from __future__ import annotations

import copy
import inspect
import json
import typing
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.aio import run
from prover.client import (
    OPERATIONS,
    AsyncClient,
    Call,
    Client,
    CompileOptions,
    NoStream,
    Operation,
    Operations,
    ServiceError,
)
from prover.errors import (
    AuthError,
    CircuitError,
    NotFoundError,
    QuotaError,
    RateLimitError,
    UnavailableError,
)

# Operations of the document that are not client calls. (The console's files under /ui,
# /docs, /redoc and /openapi.json are not in the document at all: browsers read them.)
NOT_CLIENT_CALLS = {
    "/metrics": "Prometheus scrapes it, and anything under it (text exposition, not JSON)",
    "/v1/market/circuits/{circuit_id}/files": "a provider's download of a proving file "
    "(bytes, checked against its sha256: prover.provider streams it to disk)",
}
Fields = dict[str, str]  # API field -> where it goes: path, query, json or form


def left_out(path: str) -> bool:
    return any(path == p or path.startswith(f"{p}/") for p in NOT_CLIENT_CALLS)


def spec_operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }


def properties(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """A body schema's property names, through $ref, allOf and anyOf (an optional body)."""
    if "$ref" in schema:
        return properties(spec, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    names = set(schema.get("properties", {}))
    for part in [*schema.get("allOf", []), *schema.get("anyOf", [])]:
        names |= properties(spec, part)
    return names


def api_fields(spec: dict[str, Any], op: dict[str, Any]) -> Fields:
    fields = {p["name"]: p["in"] for p in op.get("parameters", [])}
    for media, body in op.get("requestBody", {}).get("content", {}).items():
        where = "json" if media == "application/json" else "form"
        fields |= dict.fromkeys(properties(spec, body["schema"]), where)
    return fields


def parameters(method: Callable[..., Any]) -> set[str]:
    """A method's parameter names; a ``**options: Unpack[SomeTypedDict]`` gives its keys."""
    names = set()
    hints = typing.get_type_hints(method, include_extras=True)
    for name, parameter in inspect.signature(method).parameters.items():
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD:
            names.add(name)
        elif typing.get_origin(hints.get(name)) is not None:  # Unpack[...]: its keys
            (keys,) = typing.get_args(hints[name])
            names |= keys.__required_keys__ | keys.__optional_keys__
    return names - {"self"}


def coverage_problems(
    spec: dict[str, Any], operations: Mapping[str, Operation], client: type[Any]
) -> list[str]:
    """What the client lacks of the document (and what it declares that is not there)."""
    problems = []
    found = spec_operations(spec)
    by_route = {(o.method, o.path): name for name, o in operations.items()}
    for (method, path), op in sorted(found.items()):
        route = f"{method.upper()} {path}"
        if left_out(path):
            continue
        if (name := by_route.get((method, path))) is None:
            problems.append(f"{route}: no client method declares it")
            continue
        takes, renames = parameters(getattr(client, name)), operations[name].renames
        for field in sorted(api_fields(spec, op)):
            if renames.get(field, field) not in takes:
                problems.append(f"{route}: {name}() has no parameter for {field!r}")
    for name, o in sorted(operations.items()):
        if (o.method, o.path) not in found:
            problems.append(f"{name}() declares {o.method.upper()} {o.path}: not in the API")
    return problems


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from prover.api.app import create_app
    from prover.config import Settings

    tmp = tmp_path_factory.mktemp("openapi")
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'p.db'}")
    return create_app(settings).openapi()


def test_the_client_covers_every_operation_and_field(spec: dict[str, Any]) -> None:
    assert coverage_problems(spec, OPERATIONS, Operations) == []
    assert {"/ui", "/ui/", "/docs"}.isdisjoint(spec["paths"])  # not client calls either


class Narrower(Operations[Any]):
    """A client whose request_proof lacks ``items``, ``market`` and ``settle`` (as it
    once did)."""

    def request_proof(  # type: ignore[override]
        self, circuit_id: str, input_obj: Any = None, fresh: bool = False, batching: bool = False
    ) -> Any:
        return self._send(Call("POST", f"/v1/circuits/{circuit_id}/proofs", json={}))


def test_a_missing_route_or_field_is_named(spec: dict[str, Any]) -> None:
    grown = copy.deepcopy(spec)
    grown["paths"]["/v1/things"] = {"get": {"operationId": "list_things"}}
    grown["paths"]["/v1/jobs"]["get"]["parameters"].append({"name": "state", "in": "query"})
    schemas = grown["components"]["schemas"]
    schemas["ProofRequest"]["properties"]["deadline"] = {"type": "number"}
    schemas["CompileForm"]["properties"]["seed"] = {"type": "integer"}  # under allOf
    grown["paths"]["/metrics/targets"] = {"get": {"operationId": "targets"}}  # left out
    assert coverage_problems(grown, OPERATIONS, Operations) == [
        "GET /v1/jobs: list_jobs() has no parameter for 'state'",
        "GET /v1/things: no client method declares it",
        "POST /v1/circuits/{circuit_id}/proofs: request_proof() has no parameter for 'deadline'",
        "POST /v1/estimates: estimate() has no parameter for 'seed'",
        "POST /v1/models: submit_model() has no parameter for 'seed'",
    ]
    assert coverage_problems(spec, OPERATIONS, Narrower) == [
        "POST /v1/circuits/{circuit_id}/proofs: request_proof() has no parameter for 'items'",
        "POST /v1/circuits/{circuit_id}/proofs: request_proof() has no parameter for 'market'",
        "POST /v1/circuits/{circuit_id}/proofs: request_proof() has no parameter for 'settle'",
    ]
    fewer = {k: v for k, v in OPERATIONS.items() if k != "verify"}
    stale = {**OPERATIONS, "gone": Operation("get", "/v1/gone", {})}
    assert coverage_problems(spec, fewer, Operations) == [
        "POST /v1/proofs/{proof_id}/verify: no client method declares it"
    ]
    assert coverage_problems(spec, stale, Operations) == [
        "gone() declares GET /v1/gone: not in the API"
    ]


def samples(tmp: Path) -> dict[str, dict[str, Any]]:
    """Arguments for every client method, each field given (non-default) values."""
    model, cal = tmp / "m.onnx", tmp / "cal.json"
    model.write_bytes(b"onnx")
    cal.write_text("{}")
    compile_form = {name: "7" for name in CompileOptions.__optional_keys__}
    upload = {"model": model, "calibration": cal, **compile_form}
    page = {"limit": 5, "cursor": 9}
    return {
        "health": {},
        "submit_model": upload,
        "estimate": upload,
        "model": {"model_id": "m1"},
        "list_models": page,
        "circuit": {"circuit_id": "c1"},
        "list_circuits": page,
        "request_proof": {
            "circuit_id": "c1",
            "input_obj": [[1.0]],
            "items": [[[1.0]]],
            "fresh": True,
            "batching": True,
            "settle": True,
            "market": {"max_price": 7},
        },
        "proof": {"proof_id": "p1"},
        "proof_file": {"proof_id": "p1", "segment": 1},
        "verify": {"proof_id": "p1"},
        "list_proofs": page,
        "deploy": {"circuit_id": "c1", "force": True},
        "submit_onchain": {"proof_id": "p1", "commit_reveal": True},
        "market_requests": {},
        "market_request": {"request_id": 3},
        "market_circuit": {"circuit_id": "c1"},
        "job": {"job_id": "j1", "wait": 5.0},
        "list_jobs": {**page, "kind": "deploy", "subject_id": "c1"},
        "submit_step_circuit": {"graph": model, "sample": {"x": [1]}, "reusable_verifier": False},
        "start_run": {"circuit_id": "c1", "weights": [0.5], "batches": [{"x": [1], "y": [2]}]},
        "start_federated_run": {
            "circuit_id": "c1",
            "weights": [0.5],
            "rounds": [[{"x": [1], "y": [2]}]],
            "client_weights": [1.0],
        },
        "run": {"run_id": "r1", "steps": False},
        "list_runs": page,
        "put_on_ledger": {"run_id": "r1"},
        "verify_chain": {"proof_ids": ["p1"], "batches": [{"x": [1]}], "initial_weights": "0x1"},
        "whoami": {},
        "create_key": {"name": "pool", "scope": "prove"},
        "list_keys": {},
        "revoke_key": {"key_id": "k1"},
        "register_webhook": {"url": "https://hooks.example/p", "events": ["proof.ready"]},
        "list_webhooks": page,
        "delete_webhook": {"webhook_id": "wh_1"},
        "webhook_deliveries": {"webhook_id": "wh_1", **page},
        "events": {"after": 7},
    }


def sent_fields(request: httpx.Request) -> Fields:
    """The fields a request carries, by where."""
    fields = dict.fromkeys(request.url.params, "query")
    media = request.headers.get("content-type", "")
    if media == "application/json":
        fields |= dict.fromkeys(json.loads(request.content), "json")
    elif media.startswith("multipart/form-data"):
        for part in request.content.split(b'form-data; name="')[1:]:
            fields[part.split(b'"', 1)[0].decode()] = "form"
    return fields


def test_each_method_sends_its_operation_with_every_field(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    sent: list[httpx.Request] = []
    transport = recording(sent)
    arguments = samples(tmp_path)
    assert set(arguments) == set(OPERATIONS), "give each client method sample arguments"
    found = spec_operations(spec)
    with Client("http://prover.test", "k", transport=transport) as client:
        for name, (method, path, renames) in OPERATIONS.items():
            kwargs = arguments[name]
            answer = getattr(client, name)(**kwargs)
            if name == "events":  # a stream opens when read; this transport answers JSON
                with pytest.raises(NoStream):
                    next(answer)
            request = sent.pop()
            fields = api_fields(spec, found[(method, path)])
            values = {
                f: kwargs[renames.get(f, f)] for f, where in fields.items() if where == "path"
            }
            assert (request.method, request.url.path) == (method.upper(), path.format(**values))
            # A header field (the stream's Last-Event-ID) is sent on a reconnection only.
            expected = {f: w for f, w in fields.items() if w not in ("path", "header")}
            assert sent_fields(request) == expected, name
            assert request.headers["authorization"] == "Bearer k"


def recording(sent: list[httpx.Request], *responses: httpx.Response) -> httpx.MockTransport:
    """A transport that records each request in ``sent`` and answers it with the next
    of ``responses`` (then with an empty object)."""
    queue = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return queue.pop(0) if queue else httpx.Response(200, json={})

    return httpx.MockTransport(answer)


def answering(*responses: httpx.Response) -> httpx.MockTransport:
    return recording([], *responses)


def error(status: int, code: str, **details: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "no", **details}})


def test_errors_are_the_projects_error_types_with_the_services_code() -> None:
    with (
        Client("http://prover.test", transport=answering(error(404, "not_found", id="c"))) as c,
        pytest.raises(NotFoundError) as missing,
    ):
        c.circuit("c")
    assert isinstance(missing.value, ServiceError)
    assert (missing.value.code, missing.value.status, missing.value.message) == (
        "not_found",
        404,
        "no",
    )
    assert missing.value.to_dict() == {
        "code": "not_found",
        "message": "no",
        "id": "c",
        "status": 404,
    }
    quota = error(429, "rate_limited", retry_after_s=2)
    with (
        Client("http://prover.test", transport=answering(quota)) as c,
        pytest.raises(RateLimitError) as limited,
    ):
        c.list_models()
    assert isinstance(limited.value, QuotaError) and limited.value.details["retry_after_s"] == 2
    for response in (error(422, "invalid_request"), httpx.Response(502, text="<html>bad</html>")):
        with (
            Client("http://prover.test", transport=answering(response)) as c,
            pytest.raises(ServiceError) as refused,
        ):
            c.list_jobs(kind="deploy")
        assert type(refused.value) is ServiceError, "no project type for these codes"
    assert refused.value.code == "http_error" and refused.value.status == 502
    assert "GET http://prover.test/v1/jobs answered HTTP 502: <html>" in refused.value.message


def test_health_reports_a_degraded_service_and_raises_an_error_body() -> None:
    report = {"status": "degraded", "database": "ok", "broker": "ok", "workers": 0}
    with Client("http://prover.test", transport=answering(httpx.Response(503, json=report))) as c:
        assert c.health() == report
    outage = error(503, "unavailable")
    with (
        Client("http://prover.test", transport=answering(outage)) as c,
        pytest.raises(UnavailableError),
    ):
        c.health()
    with (
        Client("http://prover.test", transport=answering(error(401, "unauthorized"))) as c,
        pytest.raises(AuthError),
    ):
        c.health()


def test_a_service_that_does_not_answer_is_unavailable_naming_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        Client("http://prover.test/", transport=httpx.MockTransport(refuse)) as c,
        pytest.raises(UnavailableError, match=r"http://prover.test/v1/proofs/p does not"),
    ):
        c.proof("p")


def job(state: str, error: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"job_id": "j", "state": state, "error": error})


def no_stream() -> httpx.Response:
    """What a service (or a proxy) without GET /v1/events answers it."""
    return error(404, "http_error")


def test_wait_raises_a_failed_jobs_error_as_its_type() -> None:
    failed = job("failed", {"code": "circuit_error", "message": "no settings fit"})
    seen: list[str] = []
    transport = answering(no_stream(), job("running"), failed)
    with (
        Client("http://prover.test", transport=transport) as c,
        pytest.raises(CircuitError) as broke,
    ):
        c.wait("j", on_progress=lambda j: seen.append(j["state"]))
    assert seen == ["running", "failed"]
    assert broke.value.details == {"job_id": "j", "status": 422}


def test_the_async_client_sends_the_same_calls() -> None:
    sent: list[httpx.Request] = []
    answers = (no_stream(), job("running"), job("succeeded"), error(404, "not_found"))
    transport = recording(sent, *answers)

    async def calls() -> dict[str, Any]:
        async with AsyncClient("http://prover.test", transport=transport) as c:
            ended = await c.wait("j", timeout=10)
            with pytest.raises(NotFoundError):
                await c.list_jobs(kind="compile", subject_id="c1")
            return ended

    assert run(calls())["state"] == "succeeded"
    assert [(r.url.path, set(r.url.params)) for r in sent] == [
        ("/v1/events", set()),  # no stream: long polls instead
        ("/v1/jobs/j", {"wait"}),
        ("/v1/jobs/j", {"wait"}),
        ("/v1/jobs", {"kind", "subject_id"}),
    ]


class Dropping(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A stream's body whose connection drops once it is sent."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self.body
        raise httpx.ReadError("connection dropped")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body
        raise httpx.ReadError("connection dropped")


def sse(opening: int, *events: dict[str, Any]) -> Dropping:
    """The event stream's text: its opening (the id it starts after), then ``events``."""
    text = f": stream open\nid: {opening}\n\n"
    for e in events:
        text += f"id: {e['id']}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n"
    return Dropping(text.encode())


def event(seq: int, state: str, job_id: str = "j") -> dict[str, Any]:
    view = {"job_id": job_id, "state": state, "error": None}
    return {"id": seq, "type": f"job.{state}", "subject_id": job_id, "data": view}


def streaming(
    sent: list[httpx.Request], bodies: list[Dropping], *answers: httpx.Response
) -> httpx.MockTransport:
    """GET /v1/events answered with each of ``bodies`` in turn, other calls with
    ``answers`` in turn; every request recorded in ``sent``."""
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path != "/v1/events":
            return queue.pop(0)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=bodies.pop(0)
        )

    return httpx.MockTransport(answer)


def test_events_resume_after_a_drop_with_the_last_event_id() -> None:
    sent: list[httpx.Request] = []
    bodies = [sse(3), sse(3, event(4, "running")), sse(4, event(5, "succeeded"))]
    with Client("http://prover.test", "k", transport=streaming(sent, bodies)) as c:
        stream = c.events(after=3)
        got = [next(stream)["id"], next(stream)["id"]]
        stream.close()
    assert got == [4, 5]
    # The first stream asks after 3; it drops before any event, so the next resumes from
    # its opening id, and the third from the event the second delivered.
    assert [(dict(r.url.params), r.headers.get("last-event-id")) for r in sent] == [
        ({"after": "3"}, None),
        ({}, "3"),
        ({}, "4"),
    ]


def test_wait_follows_the_stream_and_reads_the_job_as_it_opens() -> None:
    sent: list[httpx.Request] = []
    events = (event(8, "running", "other"), event(9, "progress"), event(10, "succeeded"))
    bodies = [sse(7, *events)]
    seen: list[str] = []
    with Client("http://prover.test", "k", transport=streaming(sent, bodies, job("queued"))) as c:
        final = c.wait("j", on_progress=lambda j: seen.append(j["state"]))
    assert final["state"] == "succeeded" and seen == ["queued", "progress", "succeeded"]
    assert [r.url.path for r in sent] == ["/v1/events", "/v1/jobs/j"]


def test_the_async_client_follows_the_stream_and_resumes_it() -> None:
    sent: list[httpx.Request] = []
    failed = event(4, "failed")
    failed["data"]["error"] = {"code": "circuit_error", "message": "no settings fit"}
    # The first stream drops as it opens: the job is read at each opening.
    bodies = [sse(2), sse(2, event(3, "running"), failed), sse(5, event(6, "queued"))]
    transport = streaming(sent, bodies, job("queued"), job("queued"))

    async def follow() -> dict[str, Any]:
        async with AsyncClient("http://prover.test", "k", transport=transport) as c:
            with pytest.raises(CircuitError):
                await c.wait("j")
            stream = c.events(after=5)
            first = await anext(stream)
            await stream.aclose()
            return first

    assert run(follow())["id"] == 6
    assert [(r.url.path, r.headers.get("last-event-id")) for r in sent] == [
        ("/v1/events", None),
        ("/v1/jobs/j", None),
        ("/v1/events", "2"),
        ("/v1/jobs/j", None),
        ("/v1/events", None),
    ]
