"""The OpenAPI document describes every endpoint and its errors."""

from __future__ import annotations

from pathlib import Path

from prover.api.app import create_app
from prover.config import Settings


def test_every_endpoint_documents_its_errors(tmp_path: Path) -> None:
    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    operations = [
        (path, method, op)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    ]
    assert len(operations) >= 15
    for path, method, op in operations:
        assert op.get("summary") and op.get("description", op.get("summary")), (path, method)
        if path in ("/health", "/metrics"):
            continue
        documented = set(op["responses"])
        assert {"401", "404", "422", "503"} <= documented, (path, method, documented)
        if method == "post":
            assert "413" in documented, (path, method)
        for status in ("401", "404", "422"):
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorBody")
    assert "bearer" in str(spec["components"]["securitySchemes"]).lower()
