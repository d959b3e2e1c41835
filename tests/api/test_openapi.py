"""The OpenAPI document: every route's errors, the form of a model upload, the job kinds."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from prover.service.kinds import KINDS
from prover.service.options import CompileRequest

ROUTES = {  # every route of the API, as clients know it
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/metrics/targets"),
    ("get", "/v1/events"),
    ("get", "/v1/circuits"),
    ("get", "/v1/circuits/{circuit_id}"),
    ("post", "/v1/circuits/{circuit_id}/deployments"),
    ("post", "/v1/circuits/{circuit_id}/proofs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{job_id}"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys/me"),
    ("get", "/v1/market/requests"),
    ("get", "/v1/market/requests/{request_id}"),
    ("get", "/v1/market/circuits/{circuit_id}"),
    ("get", "/v1/market/circuits/{circuit_id}/files/{name}"),
    ("delete", "/v1/keys/{key_id}"),
    ("get", "/v1/models"),
    ("post", "/v1/models"),
    ("get", "/v1/models/{model_id}"),
    ("get", "/v1/proofs"),
    ("get", "/v1/proofs/{proof_id}"),
    ("get", "/v1/proofs/{proof_id}/ezkl"),
    ("post", "/v1/proofs/{proof_id}/submissions"),
    ("post", "/v1/proofs/{proof_id}/verify"),
    ("post", "/v1/training/circuits"),
    ("get", "/v1/training/runs"),
    ("post", "/v1/training/runs"),
    ("get", "/v1/training/runs/{run_id}"),
    ("post", "/v1/training/runs/{run_id}/ledger"),
    ("post", "/v1/training/verify-chain"),
    ("get", "/v1/webhooks"),
    ("post", "/v1/webhooks"),
    ("delete", "/v1/webhooks/{webhook_id}"),
    ("get", "/v1/webhooks/{webhook_id}/deliveries"),
}
SUBMISSIONS = {  # the routes that refuse work on what is not ready (409)
    ("post", "/v1/circuits/{circuit_id}/proofs"),
    ("post", "/v1/circuits/{circuit_id}/deployments"),
    ("post", "/v1/proofs/{proof_id}/submissions"),
    ("post", "/v1/training/runs"),
    ("post", "/v1/training/runs/{run_id}/ledger"),
}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    ]


def test_every_route_documents_its_errors(app: FastAPI) -> None:
    spec = app.openapi()
    found = operations(spec)
    missing = ROUTES - {(method, path) for method, path, _ in found}
    assert not missing, missing
    for method, path, op in found:
        assert op.get("summary"), (method, path)
        if path in ("/health", "/metrics", "/metrics/targets"):  # probes: no key
            continue
        if path.startswith("/v1/market/"):  # the market's reads: for anyone, no key
            assert "security" not in op and {"404", "422"} <= set(op["responses"]), path
            continue
        documented = set(op["responses"])
        expected = {"401", "403", "404", "422", "431", "503"}
        expected |= {"413"} if method == "post" else set()
        expected |= {"409"} if (method, path) in SUBMISSIONS else set()
        assert expected <= documented, (method, path, documented)
        for status in expected:
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorBody"), (method, path, status)
        assert op["security"] == [{"HTTPBearer": []}], (method, path)
    assert spec["paths"]["/health"]["get"]["responses"]["503"]


def test_the_model_upload_takes_every_compile_option_as_an_optional_form_field(
    app: FastAPI,
) -> None:
    spec = app.openapi()
    body = spec["paths"]["/v1/models"]["post"]["requestBody"]["content"]["multipart/form-data"]
    schemas = spec["components"]["schemas"]
    form = schemas[body["schema"]["$ref"].rsplit("/", 1)[-1]]
    fields = dict(form.get("properties", {}))
    for part in form.get("allOf", []):
        fields.update(schemas[part["$ref"].rsplit("/", 1)[-1]]["properties"])
    assert set(fields) == {"model", "calibration", *CompileRequest.model_fields}
    assert set(form["required"]) == {"model"}


def test_the_job_kinds_are_the_declared_ones(app: FastAPI) -> None:
    kind = app.openapi()["components"]["schemas"]["JobView"]["properties"]["kind"]
    assert kind["enum"] == list(KINDS)


def test_quotas_and_content_types_are_documented(app: FastAPI) -> None:
    """429 (with Retry-After) on every route with a key; 415 on every JSON body."""
    for method, path, op in operations(app.openapi()):
        if path in ("/health", "/metrics", "/metrics/targets"):  # probes: no key
            continue
        if path.startswith("/v1/market/"):  # the market's reads: for anyone, no key
            assert "security" not in op and {"404", "422"} <= set(op["responses"]), path
            continue
        assert "Retry-After" in op["responses"]["429"]["headers"], (method, path)
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            assert {"400", "413", "415"} <= set(op["responses"]), (method, path)
        cursor = [p for p in op.get("parameters", []) if p["name"] == "cursor"]
        for parameter in cursor:
            bounds = parameter["schema"]["anyOf"][0]
            assert (bounds["minimum"], bounds["maximum"]) == (0, 2**63 - 1), path
