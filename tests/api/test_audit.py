"""GET /api/v1/audit: every state-changing API action leaves exactly one row naming its token; a
refused change leaves none; secrets never reach it; keyset pages, newest first."""
from __future__ import annotations

import base64

import pytest

from tests.api.conftest import body_of, detail_of
from tests.conftest import close_app, make_app
from tests.connection_helpers import connection_fields

BASE = "/api/v1/pipelines"
AUDIT = "/api/v1/audit"
ALICE = "alice-token-aaaaaaaaaaaaaaaa"
BOB = "bob-token-bbbbbbbbbbbbbbbbbbbb"
VIEWER = "viewer-token-vvvvvvvvvvvvvvvv"
UNNAMED = "unnamed-token-uuuuuuuuuuuuuuu"
PASSWORD = "audit-Pa55word-never-logged"


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False,
            "api_tokens": f"alice-ci={ALICE}:operator,bob={BOB}:operator,grafana={VIEWER}:viewer,{UNNAMED}:operator"}


def as_(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def audit(client, **query) -> list[dict]:
    return body_of(client.get(AUDIT, query_string=query, headers=as_(VIEWER)), 200)


def create(client, token=ALICE, **fields) -> dict:
    body = {"name": "films", "target_table": "analytics.film_dim",
            "source_query": "SELECT id AS film_id, title, rating FROM content.film_work", **fields}
    return body_of(client.post(f"{BASE}/", json=body, headers=as_(token)), 201)


def test_every_pipeline_action_is_one_row_naming_its_token(client):
    pipeline = create(client)
    url = f"{BASE}/{pipeline['id']}"
    steps = [
        ("pipeline.patch", BOB, lambda h: client.patch(url, json={"batch_size": 77}, headers=h)),
        ("pipeline.schedule.set", ALICE, lambda h: client.put(f"{url}/schedule", json={"schedule": "0 * * * *"}, headers=h)),
        ("pipeline.checks.put", BOB, lambda h: client.put(f"{url}/checks", json={"min_rows": 5}, headers=h)),
        ("pipeline.state.set", ALICE, lambda h: client.put(f"{url}/state", json={"watermark": "42"}, headers=h)),
        ("pipeline.state.reset", BOB, lambda h: client.delete(f"{url}/state", headers=h)),
        ("pipeline.tasks.put", ALICE, lambda h: client.put(f"{url}/tasks", json={"tasks": []}, headers=h)),
        ("pipeline.run", BOB, lambda h: client.post(f"{url}/run", headers=h)),
        ("pipeline.pause", ALICE, lambda h: client.post(f"{url}/pause", headers=h)),
    ]
    request_ids = {}
    for action, token, call in steps:
        response = call({**as_(token), "X-Request-ID": f"req-{action}"})
        assert response.status_code == 200, (action, response.get_data(as_text=True))
        request_ids[action] = response.headers["X-Request-ID"]

    entries = audit(client, object=pipeline["id"])
    assert [(e["action"], e["actor"], e["actor_kind"]) for e in entries] == [
        (action, {ALICE: "alice-ci", BOB: "bob"}[token], "token") for action, token, _ in reversed(steps)
    ] + [("pipeline.create", "alice-ci", "token")]
    by_action = {entry["action"]: entry for entry in entries}
    assert by_action["pipeline.patch"]["before"] == {"batch_size": 1000}
    assert by_action["pipeline.patch"]["after"] == {"batch_size": 77}
    assert by_action["pipeline.schedule.set"]["after"] == {"schedule": "0 * * * *"}
    assert by_action["pipeline.state.set"]["after"] == {"watermark": "42"}
    assert by_action["pipeline.create"]["after"]["name"] == "films"
    for action, entry in by_action.items():
        assert entry["object_type"] == "pipeline" and entry["object_name"] == "films"
        assert entry["client_addr"] == "127.0.0.1"
        if action != "pipeline.create":
            assert entry["request_id"] == request_ids[action] == f"req-{action}"
    # By name too, and an unnamed token shows as its fingerprint.
    assert len(audit(client, object="films")) == len(steps) + 1
    client.patch(url, json={"description": "x"}, headers=as_(UNNAMED))
    assert audit(client, limit=1)[0]["actor"].startswith("token-")


def test_refused_changes_leave_no_row(client, sql):
    pipeline = create(client)
    url = f"{BASE}/{pipeline['id']}"
    before = audit(client)
    detail_of(client.patch(url, json={"target_table": "public.secrets"}, headers=as_(BOB)), 400)
    detail_of(client.post(f"{BASE}/", json={"name": "films", "target_table": "analytics.film_dim",
                                            "source_query": "SELECT 1"}, headers=as_(BOB)), 400)
    detail_of(client.patch(url, json={"batch_size": 0}, headers=as_(BOB)), 422)
    detail_of(client.put(f"{url}/schedule", json={"schedule": "61 * * * *"}, headers=as_(BOB)), 400)
    detail_of(client.patch(url, json={"batch_size": 5}, headers=as_(VIEWER)), 403)
    detail_of(client.patch(url, json={"batch_size": 5}), 401)
    client.post(f"{url}/run", headers=as_(BOB))
    detail_of(client.patch(url, json={"batch_size": 5}, headers=as_(BOB)), 409)  # RUNNING
    # A second run request while one is RUNNING changes nothing, so records nothing.
    assert client.post(f"{url}/run", headers=as_(BOB)).status_code == 200
    assert [e["action"] for e in audit(client)] == ["pipeline.run"] + [e["action"] for e in before]
    assert sql("SELECT batch_size FROM etl_pipelines")[0][0] == 1000


def test_connection_actions_are_recorded_without_their_password(client, source_url):
    fields = connection_fields(source_url)
    created = body_of(client.post("/api/v1/connections/", json={"name": "prod", **fields, "password": PASSWORD},
                                  headers=as_(ALICE)), 201)
    url = f"/api/v1/connections/{created['id']}"
    body_of(client.patch(url, json={"password": PASSWORD + "2", "description": "main"}, headers=as_(BOB)), 200)
    body_of(client.post(f"{url}/test", headers=as_(ALICE)), 200)
    assert client.delete(url, headers=as_(BOB)).status_code == 204
    response = client.get(AUDIT, query_string={"object": "prod"}, headers=as_(VIEWER))
    assert PASSWORD not in response.get_data(as_text=True)
    entries = body_of(response, 200)
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("connection.delete", "bob"), ("connection.test", "alice-ci"), ("connection.patch", "bob"),
        ("connection.create", "alice-ci")]
    assert entries[3]["after"]["password_token"] == "***" and entries[3]["after"]["host"] == fields["host"]
    assert entries[2]["before"] == {"description": None, "password_token": "***"}
    assert entries[2]["after"] == {"description": "main", "password_token": "***"}


def test_pages_newest_first_with_a_next_link_and_filters(client):
    for number in range(5):
        create(client, name=f"p{number}", token=ALICE if number % 2 else BOB)
    seen, url = [], f"{AUDIT}?limit=2"
    while url:
        response = client.get(url, headers=as_(VIEWER))
        seen += body_of(response, 200)
        link = response.headers.get("Link")
        url = link[1:link.index(">")] if link else None
    assert [e["object_name"] for e in seen] == ["p4", "p3", "p2", "p1", "p0"]
    assert [e["object_name"] for e in audit(client, actor="alice-ci")] == ["p3", "p1"]
    assert len(audit(client, action="pipeline.")) == 5 and audit(client, action="pipeline") == []
    assert len(audit(client, since="2000-01-01T00:00:00Z")) == 5
    assert audit(client, since="2999-01-01T00:00:00") == []
    with_actor = client.get(f"{AUDIT}?limit=1&actor=bob", headers=as_(VIEWER))
    assert "actor=bob" in with_actor.headers["Link"]  # the filters follow the cursor
    assert detail_of(client.get(f"{AUDIT}?cursor=nonsense", headers=as_(VIEWER)), 422)[0]["loc"] == ["query", "cursor"]
    huge = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|99999999999999999999").decode()
    assert detail_of(client.get(f"{AUDIT}?cursor={huge}", headers=as_(VIEWER)), 422)[0]["loc"] == ["query", "cursor"]
    assert detail_of(client.get(f"{AUDIT}?since=yesterday", headers=as_(VIEWER)), 422)[0]["loc"] == ["query", "since"]
    assert detail_of(client.get(f"{AUDIT}?limit=0", headers=as_(VIEWER)), 422)[0]["loc"] == ["query", "limit"]
    detail_of(client.get(AUDIT), 401)


def test_with_auth_off_the_actor_is_anonymous(database_url, clean_database):
    app = make_app(database_url, START_RUNNER=False)
    try:
        client = app.test_client()
        pipeline = create(client, token="ignored-when-auth-is-off")
        url = f"{BASE}/{pipeline['id']}"
        for response in (client.patch(url, json={"batch_size": 5}),
                         client.put(f"{url}/schedule", json={"schedule": "@daily"}),
                         client.put(f"{url}/checks", json={"min_rows": 1}),
                         client.put(f"{url}/tasks", json={"tasks": []}),
                         client.post(f"{url}/run"),
                         client.post(f"{url}/pause")):
            assert response.status_code == 200, response.get_data(as_text=True)
        entries = body_of(client.get(AUDIT), 200)
        assert [(e["action"], e["actor"], e["actor_kind"]) for e in entries] == [
            (action, "anonymous", "anonymous") for action in (
                "pipeline.pause", "pipeline.run", "pipeline.tasks.put", "pipeline.checks.put",
                "pipeline.schedule.set", "pipeline.patch", "pipeline.create")]
    finally:
        close_app(app)


def test_token_names_are_parsed_and_a_trailing_equals_is_part_of_the_token():
    import hashlib

    from etl_console.auth import AuthSettings, parse_tokens

    base64_token = "QUJDREVGR0hJSktMTU5PUFFSU1RVVg=="  # ends in '=': not a name
    entries = parse_tokens(f"ci={ALICE}:operator,{base64_token}:viewer")
    settings = AuthSettings(entries)
    assert settings.token_identity(ALICE) == ("operator", "ci")
    fingerprint = hashlib.sha256(base64_token.encode()).hexdigest()[:8]
    assert settings.token_identity(base64_token) == ("viewer", f"token-{fingerprint}")
    assert settings.token_identity("ci=" + ALICE) is None  # the name is not part of the token


def test_openapi_documents_the_audit_endpoint(client):
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/audit"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"object", "actor", "action", "since", "limit", "cursor"}
    assert "401" in operation["responses"] and "403" not in operation["responses"]  # a read: viewers may
    assert set(document["components"]["schemas"]["AuditEntry"]["properties"]) == {
        "id", "at", "actor", "actor_kind", "client_addr", "action", "object_type", "object_id", "object_name",
        "before", "after", "request_id"}
