"""API bearer tokens: roles, 401/403 in the contract's form, constant-time compare, never logged."""
from __future__ import annotations

import hmac
import logging
import uuid

import pytest

from etl_console import auth
from etl_console.config import Config

OPERATOR = "operator-token-aaaaaaaaaaaaaaaa"
VIEWER = "viewer-token-bbbbbbbbbbbbbbbbbb"
OTHER = "second-operator-cccccccccccccccc"
BODY = {"name": "tok", "target_table": "analytics.film_dim", "source_query": "SELECT id AS film_id, title, rating FROM content.film_work"}


@pytest.fixture
def app_overrides():
    return {"api_tokens": f"{OPERATOR}:operator, {VIEWER}:viewer,{OTHER}:operator", "START_RUNNER": False}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_no_tokens_configured_keeps_the_api_open(database_url, clean_database):
    from tests.conftest import close_app, make_app

    app = make_app(database_url, START_RUNNER=False)
    try:
        client = app.test_client()
        assert client.get("/api/v1/pipelines/").status_code == 200
        assert client.post("/api/v1/pipelines/", json=BODY).status_code == 201
        assert client.get("/metrics").status_code == 200
        assert client.get("/").status_code == 200
    finally:
        close_app(app)


def test_missing_token_is_401_with_detail_and_challenge(client):
    reply = client.get("/api/v1/pipelines/")
    assert reply.status_code == 401
    assert reply.get_json() == {"detail": "Not authenticated"}
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert reply.content_type == "application/json"


@pytest.mark.parametrize(
    "header",
    ["Bearer nope", f"Bearer {OPERATOR}x", f"Bearer {OPERATOR[:-1]}", f"Basic {OPERATOR}", f"bearer  {VIEWER[1:]}", "Bearer"],
)
def test_wrong_token_is_401(client, header):
    reply = client.get("/api/v1/pipelines/", headers={"Authorization": header})
    assert reply.status_code == 401
    assert reply.get_json() == {"detail": "Invalid authentication credentials"}


def test_viewer_reads_and_operator_writes(client):
    assert client.get("/api/v1/pipelines/", headers=bearer(VIEWER)).status_code == 200
    denied = client.post("/api/v1/pipelines/", json=BODY, headers=bearer(VIEWER))
    assert denied.status_code == 403
    assert denied.get_json() == {"detail": "Not enough permissions: this token's role is viewer (read only)"}
    created = client.post("/api/v1/pipelines/", json=BODY, headers=bearer(OPERATOR))
    assert created.status_code == 201
    pipeline_id = created.get_json()["id"]
    for method, path, body in [
        ("PATCH", f"/api/v1/pipelines/{pipeline_id}", {"batch_size": 10}),
        ("POST", f"/api/v1/pipelines/{pipeline_id}/pause", None),
        ("POST", f"/api/v1/pipelines/{pipeline_id}/run", None),
    ]:
        assert client.open(path, method=method, json=body, headers=bearer(VIEWER)).status_code == 403
        assert client.open(path, method=method, json=body, headers=bearer(OTHER)).status_code == 200
    assert client.get(f"/api/v1/pipelines/{pipeline_id}/runs", headers=bearer(VIEWER)).status_code == 200
    # Auth comes before routing errors: an anonymous 404 does not reveal what exists.
    assert client.get(f"/api/v1/pipelines/{uuid.uuid4()}").status_code == 401
    assert client.get("/api/v1/nothing-here").status_code == 401
    # ... and before path values are parsed: a malformed id is no way around it.
    assert client.post("/api/v1/pipelines/not-a-uuid/run").status_code == 401
    assert client.post("/api/v1/pipelines/not-a-uuid/run", headers=bearer(VIEWER)).status_code == 403
    assert client.post("/api/v1/pipelines/not-a-uuid/run", headers=bearer(OPERATOR)).status_code == 422


def test_refusals_carry_a_request_id_and_are_timed(client):
    from prometheus_client import REGISTRY

    labels = {"method": "GET", "route": "/api/v1/pipelines/", "status": "401"}
    before = REGISTRY.get_sample_value("etl_http_request_duration_seconds_count", labels) or 0
    reply = client.get("/api/v1/pipelines/", headers={"X-Request-ID": "trace-401"})
    assert reply.status_code == 401 and reply.headers["X-Request-ID"] == "trace-401"
    assert REGISTRY.get_sample_value("etl_http_request_duration_seconds_count", labels) == before + 1


def test_public_endpoints_stay_open(client):
    for path in ("/api/v1/health/live", "/api/v1/openapi.json", "/api/v1/docs", "/auth/login"):
        assert client.get(path).status_code == 200, path
    assert client.get("/api/v1/health").status_code in (200, 503)


def test_metrics_need_a_token(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(VIEWER)).status_code == 200


def test_openapi_declares_the_bearer_scheme(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/api/v1/health"]["get"]["security"] == []
    post = spec["paths"]["/api/v1/pipelines/"]["post"]["responses"]
    assert "401" in post and "403" in post
    assert "401" in spec["paths"]["/api/v1/pipelines/"]["get"]["responses"]


def test_every_configured_token_is_compared_in_constant_time(client, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert client.get("/api/v1/pipelines/", headers=bearer(OPERATOR)).status_code == 200
    # All three tokens were compared although the first matched; digests have one length.
    assert calls == [(32, 32)] * 3


def test_tokens_are_never_logged(client, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    client.get("/api/v1/pipelines/", headers=bearer(OPERATOR))
    client.post("/api/v1/pipelines/", json=BODY, headers=bearer(VIEWER))
    client.get("/api/v1/pipelines/", headers=bearer(OPERATOR + "wrong"))
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    captured = capfd.readouterr()
    for secret in (OPERATOR, VIEWER, OTHER):
        assert secret not in logged
        assert secret not in captured.out and secret not in captured.err


def test_config_never_prints_tokens():
    config = Config.from_env({}, api_tokens=f"{OPERATOR}:operator", console_users="a=scrypt:1$x$y")
    assert OPERATOR not in repr(config) and "scrypt" not in repr(config)


@pytest.mark.parametrize(
    "raw, message",
    [
        (f"{OPERATOR}:admin", "entry 1 must be"),
        (f"{OPERATOR}", "entry 1 must be"),
        ("short:operator", "at least 16"),
        (f"{OPERATOR}:viewer,,tiny:viewer", "entry 3"),
    ],
)
def test_bad_token_settings_fail_loudly_without_echoing_the_token(raw, message):
    with pytest.raises(auth.AuthConfigError) as error:
        auth.parse_tokens(raw)
    assert message in str(error.value)
    assert OPERATOR not in str(error.value)


def test_console_users_need_hashes_not_passwords():
    with pytest.raises(auth.AuthConfigError, match="password hash"):
        auth.parse_users("alice=hunter2hunter2")
    with pytest.raises(auth.AuthConfigError, match="name=<hash>"):
        auth.parse_users("alice:admin=scrypt:1$a$b")
    assert auth.parse_users("alice=scrypt:1$a$b, bob:viewer=pbkdf2:sha256:1$a$b") == {
        "alice": ("scrypt:1$a$b", "operator"),
        "bob": ("pbkdf2:sha256:1$a$b", "viewer"),
    }
