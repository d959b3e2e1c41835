"""``prover keys``: a key's scope is chosen at creation (request unless asked) and listed."""

from __future__ import annotations

from pathlib import Path

from helpers.cli import one_json, run_cli


def test_keys_are_created_with_a_scope_and_listed_with_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = one_json(run_cli(data, "keys", "create", "--name", "pool", "--scope", "prove", "--json"))
    assert made["key"].startswith("pk_") and made["scope"] == "prove"
    assert one_json(run_cli(data, "keys", "create", "--json"))["scope"] == "request"
    listed = one_json(run_cli(data, "keys", "list", "--json"))["keys"]
    assert [(k["name"], k["scope"]) for k in listed] == [("pool", "prove"), ("default", "request")]


def test_an_unknown_scope_is_one_json_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "data", "keys", "create", "--scope", "root", "--json")
    assert result.returncode == 1
    error = one_json(result)["error"]
    assert error["code"] == "invalid_input" and "request, prove, admin" in error["message"]
