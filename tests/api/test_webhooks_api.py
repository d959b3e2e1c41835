"""The webhook routes in process: a private address refused as production must refuse it
(PROVER_WEBHOOK_ALLOW_PRIVATE unset), bad bodies named, another key's webhook not found,
the secret shown once."""

from __future__ import annotations

from fastapi.testclient import TestClient

HOOK = {"url": "http://127.0.0.1:8080/hook", "events": ["proof.ready", "job.failed"]}


def test_a_private_address_is_refused_naming_why(alice: TestClient) -> None:
    for url, why in (
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("http://192.168.1.20/hook", "private"),
    ):
        refused = alice.post("/v1/webhooks", json={**HOOK, "url": url})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "webhook_address_refused" and error["reason"] == why
        assert f"a {why} address" in error["message"]
        assert "PROVER_WEBHOOK_ALLOW_PRIVATE" in error["message"]
    assert alice.get("/v1/webhooks").json() == {"items": [], "next_cursor": None}


def test_bad_bodies_are_named(alice: TestClient) -> None:
    cases = [
        ({**HOOK, "events": ["proof.done"]}, "events.0"),
        ({**HOOK, "events": []}, "events"),
        ({**HOOK, "url": "ftp://example.com/x"}, "http(s)://host"),
        ({"events": ["proof.ready"]}, "url"),
    ]
    for body, named in cases:
        refused = alice.post("/v1/webhooks", json=body)
        assert refused.status_code == 422, refused.text
        assert named in refused.json()["error"]["message"], refused.text


def test_webhooks_are_the_keys_own(alice: TestClient, bob: TestClient, app: object) -> None:
    settings = app.state.settings  # type: ignore[attr-defined]
    settings.webhook_allow_private = True  # a receiver on this host, as in development
    made = alice.post("/v1/webhooks", json=HOOK)
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["secret"].startswith("whsec_") and hook["events"] == HOOK["events"]
    listed = alice.get("/v1/webhooks").json()["items"]
    assert [h["webhook_id"] for h in listed] == [hook["webhook_id"]]
    assert "secret" not in listed[0]  # shown once, at registration
    assert bob.get("/v1/webhooks").json()["items"] == []
    path = f"/v1/webhooks/{hook['webhook_id']}"
    assert bob.delete(path).status_code == 404
    assert bob.get(f"{path}/deliveries").status_code == 404
    assert alice.get(f"{path}/deliveries").json() == {"items": [], "next_cursor": None}
    deleted = alice.delete(path)
    assert deleted.status_code == 200 and deleted.json()["deleted_at"]
    assert alice.delete(path).status_code == 404
    assert alice.get("/v1/webhooks").json()["items"] == []
