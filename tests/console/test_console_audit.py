"""The console's audit: actions taken signed in are attributed to the console user, sign-ins (and
failed ones, without the password) are recorded, the Audit page filters and pages, and a pipeline's
page shows its history of changes."""
from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from tests.console.conftest import HX, text
from tests.console.markup import csrf_token_of, parse
from tests.connection_helpers import connection_fields

PASSWORD = "correct horse battery staple"
WRONG = "Tr0ub4dor&3-not-the-password"
TOKEN = "console-audit-token-xxxxxxxxxxx"
FILM_QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"


@pytest.fixture
def app_overrides():
    digest = generate_password_hash(PASSWORD)
    return {"START_RUNNER": False, "console_users": f"olga={digest},victor:viewer={digest}",
            "api_tokens": f"deploy-bot={TOKEN}:operator"}


def csrf(client, path: str = "/auth/login") -> str:
    return csrf_token_of(client.get(path))


def login(client, name: str, password: str = PASSWORD):
    return client.post("/auth/login", data={"csrf_token": csrf(client), "username": name, "password": password,
                                            "next": "/"})


def audit_rows(sql, where: str = "TRUE"):
    return sql(f"SELECT action, actor, actor_kind, object_name FROM etl_audit_log WHERE {where} ORDER BY id")


def test_sign_ins_are_recorded_and_a_failure_keeps_no_password(client, sql):
    assert login(client, "olga", WRONG).status_code == 401
    assert login(client, "olga").status_code == 302
    assert audit_rows(sql) == [("login.failure", "anonymous", "anonymous", "olga"),
                               ("login.success", "olga", "console", "olga")]
    everything = sql("SELECT row_to_json(a)::text FROM etl_audit_log a")
    assert all(WRONG not in row[0] and PASSWORD not in row[0] for row in everything)
    assert sql("SELECT client_addr FROM etl_audit_log") == [("127.0.0.1",), ("127.0.0.1",)]


def test_console_actions_are_attributed_to_the_signed_in_user(client, sql, source_url):
    login(client, "olga")
    token = csrf(client, "/pipelines/new")
    form = {"csrf_token": token, "name": "console_made", "description": "", "type": "SQL", "mode": "full",
            "enabled": "true", "target_table": "analytics.film_dim", "batch_size": "1000", "source_query": FILM_QUERY}
    created = client.post("/pipelines/new", data=form)
    assert created.status_code in (302, 303), text(created)
    pipeline_id = sql("SELECT id::text FROM etl_pipelines WHERE name = 'console_made'")[0][0]
    assert client.post(f"/pipelines/{pipeline_id}/edit", data={**form, "batch_size": "250"}).status_code in (302, 303)
    client.post(f"/pipelines/{pipeline_id}/schedule", data={"csrf_token": token, "schedule": "0 3 * * *"}, headers=HX)
    client.post(f"/pipelines/{pipeline_id}/checks", data={"csrf_token": token, "min_rows": "3"}, headers=HX)
    client.post(f"/pipelines/{pipeline_id}/run", data={"csrf_token": token})
    client.post(f"/pipelines/{pipeline_id}/pause", data={"csrf_token": token})
    fields = connection_fields(source_url)
    client.post("/connections/new", data={"csrf_token": token, "name": "console_conn", **fields})
    rows = audit_rows(sql, "action NOT LIKE 'login.%'")
    assert rows == [
        ("pipeline.create", "olga", "console", "console_made"),
        ("pipeline.patch", "olga", "console", "console_made"),
        ("pipeline.schedule.set", "olga", "console", "console_made"),
        ("pipeline.checks.put", "olga", "console", "console_made"),
        ("pipeline.run", "olga", "console", "console_made"),
        ("pipeline.pause", "olga", "console", "console_made"),
        ("connection.create", "olga", "console", "console_conn"),
    ]
    assert sql("SELECT before, after FROM etl_audit_log WHERE action = 'pipeline.patch'") == [
        ({"batch_size": 1000}, {"batch_size": 250})]
    connection_id = sql("SELECT id::text FROM etl_connections WHERE name = 'console_conn'")[0][0]
    edited = client.post(f"/connections/{connection_id}/edit",
                         data={"csrf_token": token, **fields, "name": "console_conn", "description": "edited"})
    assert edited.status_code == 303, text(edited)
    assert client.post(f"/connections/{connection_id}/test", data={"csrf_token": token}).status_code == 303
    assert client.post(f"/connections/{connection_id}/delete", data={"csrf_token": token}).status_code == 303
    api = {"Authorization": f"Bearer {TOKEN}"}
    incremental = client.post("/api/v1/pipelines/", headers=api, json={
        "name": "console_inc", "target_table": "analytics.film_dim", "mode": "incremental",
        "incremental_key": "modified", "source_query": FILM_QUERY.replace("rating", "rating, modified")}).get_json()
    client.put(f"/api/v1/pipelines/{incremental['id']}/state", json={"watermark": "2021-01-01"}, headers=api)
    reset = client.post(f"/pipelines/{incremental['id']}/state/reset", data={"csrf_token": token, "confirmed": "yes"})
    assert reset.status_code in (200, 303), text(reset)
    rows += [("connection.patch", "olga", "console", "console_conn"), ("connection.test", "olga", "console", "console_conn"),
             ("connection.delete", "olga", "console", "console_conn"),
             ("pipeline.create", "deploy-bot", "token", "console_inc"), ("pipeline.state.set", "deploy-bot", "token", "console_inc"),
             ("pipeline.state.reset", "olga", "console", "console_inc")]
    assert audit_rows(sql, "action NOT LIKE 'login.%'") == rows
    # A refused edit (a bad batch size) changes nothing and records nothing.
    refused = client.post(f"/pipelines/{pipeline_id}/edit", data={**form, "batch_size": "-1"})
    assert refused.status_code in (400, 422)
    assert len(audit_rows(sql, "action NOT LIKE 'login.%'")) == len(rows)


def test_the_audit_page_filters_and_the_pipeline_page_shows_its_history(client, sql):
    api = {"Authorization": f"Bearer {TOKEN}"}
    for name in ("alpha", "beta"):
        body = {"name": name, "target_table": "analytics.film_dim", "source_query": FILM_QUERY}
        assert client.post("/api/v1/pipelines/", json=body, headers=api).status_code == 201
    alpha = sql("SELECT id::text FROM etl_pipelines WHERE name = 'alpha'")[0][0]
    client.patch(f"/api/v1/pipelines/{alpha}", json={"batch_size": 42}, headers=api)
    login(client, "victor")  # a viewer reads the audit log too
    page = text(client.get("/audit"))
    assert 'href="/audit">Audit</a>' in page
    assert page.count("deploy-bot") == 3 and "login.success" in page
    filtered = text(client.get("/audit", query_string={"object": "alpha", "action": "pipeline."}))
    assert "beta" not in filtered and filtered.count("<tr>") == 3  # header + patch + create
    assert "<code>1000</code>" in filtered and "<code>42</code>" in filtered
    assert "deploy-bot" not in text(client.get("/audit", query_string={"actor": "olga"}))
    bad = client.get("/audit", query_string={"since": "last tuesday"})
    assert bad.status_code == 400 and "is not a time" in text(bad)
    assert client.get("/audit", query_string={"object": "a\x00b"}).status_code == 400

    pipeline_page = text(client.get(f"/pipelines/{alpha}"))
    start = pipeline_page.index('<section id="audit-history"')
    panel = pipeline_page[start:pipeline_page.index("</section>", start)]
    assert "History of changes" in panel and "pipeline.patch" in panel and "pipeline.create" in panel
    assert "beta" not in panel and f'href="/audit?object={alpha}"' in panel


def test_the_audit_page_pages_back_through_older_entries(client, sql, monkeypatch):
    from etl_console.console import audit_page

    monkeypatch.setattr(audit_page, "PAGE_SIZE", 2)
    sql("INSERT INTO etl_audit_log (actor, actor_kind, action, object_type, object_name) "
        "SELECT 'system', 'system', 'pipeline.run', 'pipeline', 'p' || n FROM generate_series(1, 5) n")
    login(client, "olga")
    seen, url = [], "/audit?actor=system"
    while url:
        page = parse(client.get(url))
        seen += [row.select("td")[3].own_text for row in page.select("table.audit tbody tr")]  # the object column
        older = page.first('a.button[rel="next"]')
        url = older.attrs["href"] if older else None
    assert seen == ["p5", "p4", "p3", "p2", "p1"]
