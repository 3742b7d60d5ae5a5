"""/api/v1/connections: CRUD and its errors, the write-only password, encryption at rest, the test."""
from __future__ import annotations

import json
import logging
import time

import pytest

from tests.api.conftest import body_of, detail_of
from tests.conftest import FILM_DIM_QUERY
from tests.connection_helpers import connection_fields, password_login

BASE = "/api/v1/connections"
UNKNOWN_ID = "6b1f0c1e-3c7a-4d7e-9a52-0d6f2f1e9b11"
PASSWORD = "s3cret-Pa55word-never-shown"
OUT_KEYS = ["id", "name", "description", "host", "port", "database", "user", "sslmode", "options", "password_set",
            "statement_timeout_s", "max_concurrent_runs", "required_label", "url", "pipelines", "last_test", "created_at", "updated_at"]
OPERATOR = "conn-operator-token-aaaaaaaaaaaa"
VIEWER = "conn-viewer-token-bbbbbbbbbbbbbb"


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False, "api_tokens": f"{OPERATOR}:operator,{VIEWER}:viewer"}


@pytest.fixture
def client(app):
    """An operator's client (every request carries the operator token)."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {OPERATOR}"
    return client


@pytest.fixture
def source_parts(source_url) -> dict:
    """The test database's least-privilege login as separate fields, its password included."""
    return connection_fields(source_url)


def create(client, **body):
    response = client.post(f"{BASE}/", json=body)
    return body_of(response, 201)


def test_create_get_list_with_a_write_only_password(client, source_parts):
    created = create(client, name="prod", **{**source_parts, "password": PASSWORD}, max_concurrent_runs=2,
                     statement_timeout_s=12.5, sslmode="prefer")
    assert list(created) == OUT_KEYS
    assert created["password_set"] is True
    assert created["max_concurrent_runs"] == 2 and created["statement_timeout_s"] == 12.5
    assert created["pipelines"] == [] and created["last_test"] is None
    assert created["url"].startswith(f"postgresql://{source_parts['user']}@")
    assert f"/{source_parts['database']}?" in created["url"] and "sslmode=prefer" in created["url"]
    fetched = body_of(client.get(f"{BASE}/{created['id']}"), 200)
    assert fetched == created
    listed = body_of(client.get(f"{BASE}/"), 200)
    assert [item["name"] for item in listed] == ["prod"]
    for response_body in (created, fetched, listed):
        assert PASSWORD not in json.dumps(response_body)


def test_a_url_is_split_into_fields_and_its_password_kept_secret(client):
    created = create(client, name="from-url",
                     url=f"postgresql://reader:{PASSWORD}@db.internal:6543/prod?sslmode=require&options=-c%20search_path%3Dcontent")
    assert (created["host"], created["port"], created["database"], created["user"]) == ("db.internal", 6543, "prod", "reader")
    assert created["sslmode"] == "require" and created["options"] == "-c search_path=content"
    assert created["url"] == "postgresql://reader@db.internal:6543/prod?sslmode=require&options=-c+search_path%3Dcontent"
    assert created["password_set"] is True
    assert PASSWORD not in json.dumps(created)


def test_the_password_is_encrypted_at_rest(client, sql):
    created = create(client, name="enc", host="h", database="d", user="u", password=PASSWORD)
    ((token, row_text),) = sql("SELECT password_token, c::text FROM etl_connections c WHERE id = %s", (created["id"],))
    stored = bytes(token)
    assert PASSWORD.encode() not in stored and PASSWORD not in row_text
    assert stored.startswith(b"gAAAAA")  # a Fernet token (version byte 0x80, base64)
    # Setting the same password again makes another token (random IV): no equality leak.
    client.patch(f"{BASE}/{created['id']}", json={"password": PASSWORD})
    ((token_again,),) = sql("SELECT password_token FROM etl_connections WHERE id = %s", (created["id"],))
    assert bytes(token_again) != stored


def test_patch_changes_only_what_is_sent_and_null_password_removes_it(client):
    created = create(client, name="p1", host="h", database="d", user="u", password=PASSWORD)
    patched = body_of(client.patch(f"{BASE}/{created['id']}", json={"name": "p2", "max_concurrent_runs": 3}), 200)
    assert (patched["name"], patched["max_concurrent_runs"], patched["host"], patched["password_set"]) == ("p2", 3, "h", True)
    assert body_of(client.patch(f"{BASE}/{created['id']}", json={"sslmode": "require"}), 200)["sslmode"] == "require"
    assert body_of(client.patch(f"{BASE}/{created['id']}", json={"sslmode": None}), 200)["sslmode"] is None
    cleared = body_of(client.patch(f"{BASE}/{created['id']}", json={"password": None}), 200)
    assert cleared["password_set"] is False
    readdressed = body_of(client.patch(f"{BASE}/{created['id']}", json={"url": "postgresql://v@other/db2"}), 200)
    assert (readdressed["host"], readdressed["port"], readdressed["database"], readdressed["user"]) == ("other", 5432, "db2", "v")
    assert body_of(client.patch(f"{BASE}/{created['id']}", json={}), 200)["name"] == "p2"


def test_name_taken_not_found_and_422s(client):
    create(client, name="dup", host="h", database="d", user="u")
    assert detail_of(client.post(f"{BASE}/", json={"name": "dup", "host": "h", "database": "d", "user": "u"}), 400) \
        == "Connection with this name already exists"
    other = create(client, name="other", host="h", database="d", user="u")
    assert detail_of(client.patch(f"{BASE}/{other['id']}", json={"name": "dup"}), 400) \
        == "Connection with this name already exists"
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        assert detail_of(getattr(client, method)(f"{BASE}/{UNKNOWN_ID}", **kwargs), 404) == "Connection not found"
    assert detail_of(client.post(f"{BASE}/{UNKNOWN_ID}/test"), 404) == "Connection not found"
    errors = detail_of(client.get(f"{BASE}/not-a-uuid"), 422)
    assert errors[0]["loc"] == ["path", "connection_id"] and errors[0]["type"] == "uuid_parsing"
    errors = detail_of(client.post(f"{BASE}/", json={"host": "h", "port": "abc", "max_concurrent_runs": 0}), 422)
    assert {tuple(error["loc"]) for error in errors} == {("body", "name"), ("body", "port"), ("body", "max_concurrent_runs")}
    errors = detail_of(client.post(f"{BASE}/", json={"name": "s", "host": "h", "database": "d", "user": "u",
                                                     "sslmode": "sometimes"}), 422)
    assert errors[0]["loc"] == ["body", "sslmode"]
    assert "needs url" in detail_of(client.post(f"{BASE}/", json={"name": "nohost"}), 400)
    assert "not both" in detail_of(client.post(f"{BASE}/", json={"name": "both", "url": "postgresql://u@h/d", "host": "x"}), 400)
    bad_url = detail_of(client.post(f"{BASE}/", json={"name": "badurl", "url": f"mysql://u:{PASSWORD}@h/d"}), 400)
    assert PASSWORD not in bad_url


def test_delete_in_use_is_409_naming_the_pipelines(client, etl):
    connection = create(client, name="used", host="h", database="d", user="u")
    # Saved unreachable sources are refused (400), so pipelines are pointed at it in the database.
    for name in ("film_b", "film_a"):
        body_of(client.post("/api/v1/pipelines/", json={"name": name, "target_table": "analytics.film_dim",
                                                         "source_query": FILM_DIM_QUERY}), 201)
    from tests.conftest import wait_for  # noqa: F401 (keeps the import style of the suite)

    etl.database.engine.dispose()
    import psycopg2

    dsn = etl.database.warehouse_dsn
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE etl_pipelines SET source_connection_id = %s", (connection["id"],))
    assert body_of(client.get(f"{BASE}/{connection['id']}"), 200)["pipelines"] == ["film_a", "film_b"]
    assert detail_of(client.delete(f"{BASE}/{connection['id']}"), 409) == "Connection is used by pipelines: film_a, film_b"
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE etl_pipelines SET source_connection_id = NULL")
    response = client.delete(f"{BASE}/{connection['id']}")
    assert response.status_code == 204 and response.get_data() == b""
    assert detail_of(client.get(f"{BASE}/{connection['id']}"), 404) == "Connection not found"


def test_viewers_read_operators_write(app, client):
    viewer = app.test_client()
    viewer.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {VIEWER}"
    created = create(client, name="v", host="h", database="d", user="u")
    assert viewer.get(f"{BASE}/").status_code == 200
    assert viewer.get(f"{BASE}/{created['id']}").status_code == 200
    assert viewer.post(f"{BASE}/", json={"name": "w", "host": "h", "database": "d", "user": "u"}).status_code == 403
    assert viewer.patch(f"{BASE}/{created['id']}", json={"name": "w"}).status_code == 403
    assert viewer.delete(f"{BASE}/{created['id']}").status_code == 403
    assert viewer.post(f"{BASE}/{created['id']}/test").status_code == 403
    assert app.test_client().get(f"{BASE}/").status_code == 401


def test_test_answers_for_a_good_login(client, source_parts):
    created = create(client, name="good", **source_parts)
    result = body_of(client.post(f"{BASE}/{created['id']}/test"), 200)
    assert result["ok"] is True, result
    assert result["server_version"] and result["round_trip_ms"] >= 0 and result["privilege_problems"] == []
    assert result["error"] is None
    last = body_of(client.get(f"{BASE}/{created['id']}"), 200)["last_test"]
    assert last["ok"] is True and last["tested_at"] == result["tested_at"]


@pytest.fixture
def scram_login(dsn, source_parts):
    """Fields of a login that must present its password (PASSWORD); skips where that cannot be set up."""
    with password_login(dsn, "etl_conn_test_login", PASSWORD) as login:
        if login is None:
            pytest.skip("the test server's pg_hba.conf is not writable from here")
        yield {**source_parts, "user": login, "password": PASSWORD}


def test_test_passes_with_the_right_password_and_reports_a_wrong_one(client, scram_login):
    good = create(client, name="right", **scram_login)
    result = body_of(client.post(f"{BASE}/{good['id']}/test"), 200)
    assert result["ok"] is True, result
    wrong = create(client, name="wrong", **{**scram_login, "password": "not-" + PASSWORD})
    result = body_of(client.post(f"{BASE}/{wrong['id']}/test"), 200)
    assert result["ok"] is False and "password authentication failed" in result["error"], result
    assert PASSWORD not in json.dumps(result)
    missing = create(client, name="nopassword", **{**scram_login, "password": None})
    assert body_of(client.post(f"{BASE}/{missing['id']}/test"), 200)["ok"] is False


def test_test_of_an_unreachable_port_answers_fast(client):
    created = create(client, name="nowhere", host="127.0.0.1", port=1, database="d", user="u", password=PASSWORD)
    started = time.monotonic()
    result = body_of(client.post(f"{BASE}/{created['id']}/test"), 200)
    assert time.monotonic() - started < 5
    assert result["ok"] is False and result["error"].startswith("cannot connect") and result["server_version"] is None


def test_test_fails_a_superuser_login_and_says_so(client, database_url):
    created = create(client, name="su", **connection_fields(database_url))
    result = body_of(client.post(f"{BASE}/{created['id']}/test"), 200)
    assert result["ok"] is False and result["server_version"]
    assert any("is a superuser" in problem for problem in result["privilege_problems"]), result


def test_a_login_with_a_dangerous_role_fails_the_test(client, source_parts, sql):
    sql("DROP ROLE IF EXISTS etl_test_monitor")  # never granted anything: nothing depends on it
    sql("CREATE ROLE etl_test_monitor LOGIN PASSWORD 'monitor-pw' IN ROLE pg_monitor")
    try:
        created = create(client, name="monitor", **{**source_parts, "user": "etl_test_monitor", "password": "monitor-pw"})
        result = body_of(client.post(f"{BASE}/{created['id']}/test"), 200)
        assert result["ok"] is False
        assert "etl_test_monitor is a member of pg_monitor" in result["privilege_problems"], result
    finally:
        sql("DROP ROLE IF EXISTS etl_test_monitor")


def test_the_password_is_in_no_response_and_no_log_line(client, scram_login, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    bodies = []
    created = client.post(f"{BASE}/", json={"name": "logged", **{**scram_login, "password": "not-" + PASSWORD}})
    bodies.append(created.get_data(as_text=True))
    connection_id = created.get_json()["id"]
    for response in (
        client.get(f"{BASE}/"),
        client.get(f"{BASE}/{connection_id}"),
        client.post(f"{BASE}/{connection_id}/test"),  # wrong password: the failure is reported, not the secret
        client.patch(f"{BASE}/{connection_id}", json={"password": PASSWORD}),
        client.post(f"{BASE}/{connection_id}/test"),  # right password
        client.patch(f"{BASE}/{connection_id}", json={"password": PASSWORD, "port": "bad"}),  # a 422 echoing input
        client.post(f"{BASE}/", json={"password": PASSWORD, "url": f"postgresql://u:{PASSWORD}@h/d"}),  # echoes the body
        client.post(f"{BASE}/", json={"name": "long", "host": "h", "database": "d", "user": "u",
                                      "password": PASSWORD * 100}),  # too long: echoes the field
        client.patch(f"{BASE}/{connection_id}", json={"url": f"postgresql://u:{PASSWORD}@h/d", "host": "x"}),
        client.post(f"{BASE}/", json={"name": "logged", "host": "h", "database": "d", "user": "u", "password": PASSWORD}),
        client.get("/api/v1/openapi.json"),
    ):
        bodies.append(response.get_data(as_text=True))
    assert all(PASSWORD not in body for body in bodies)
    assert json.loads(bodies[5])["ok"] is True
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    captured = capfd.readouterr()
    assert PASSWORD not in logged and PASSWORD not in captured.out and PASSWORD not in captured.err
