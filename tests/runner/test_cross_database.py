"""Pipelines reading a named source connection in another database: full, incremental, reconcile,
save-time and run-time failures. The "production" database is a second database on the test server
(its own demo rows, its own least-privilege login); the machine's PostgreSQL 15 at 127.0.0.1:5432,
when it answers, serves as a second server."""
from __future__ import annotations

import os
import uuid

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from etl_console.db.engine import libpq_dsn
from etl_console.db.source_login import provision_source_login
from etl_console.warehouse.demo import load_demo_data
from tests.api.conftest import PIPELINE_KEYS, body_of, detail_of
from tests.conftest import finished_run, wait_for
from tests.connection_helpers import connection_fields

PROD_FILMS = 1500  # the test database has 2000: a count tells which database a run read
PROD_LOGIN = "etl_prod_reader"
PROD_PASSWORD = "prod-reader-password"
OTHER_SERVER_URL = os.environ.get("ETL_TEST_OTHER_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/test")
FILM_DIM = "SELECT id AS film_id, title, rating FROM content.film_work"
FILM_DIM_INCREMENTAL = "SELECT id AS film_id, title, rating, modified FROM content.film_work"


def _make_source_database(admin_url: str, name: str, films: int) -> str:
    """A database holding the demo's sources and a least-privilege login; returns its admin URL."""
    admin = psycopg2.connect(libpq_dsn(admin_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    load_demo_data(libpq_dsn(url), films, films * 2)
    provision_source_login(libpq_dsn(url), login=PROD_LOGIN, password=PROD_PASSWORD,
                           schemas=("content", "ugc"), tables=())
    return url


def _drop_database(admin_url: str, name: str) -> None:
    admin = psycopg2.connect(libpq_dsn(admin_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def prod_url(server_url, database_url):
    name = f"etl_prod_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = _make_source_database(server_url, name, PROD_FILMS)
    yield url
    _drop_database(server_url, name)


@pytest.fixture
def prod_sql(prod_url):
    connection = psycopg2.connect(libpq_dsn(prod_url))
    connection.autocommit = True

    def run(statement, params=None):
        with connection.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    yield run
    connection.close()


@pytest.fixture
def prod_connection(client, prod_url):
    fields = {**connection_fields(prod_url), "user": PROD_LOGIN, "password": PROD_PASSWORD}
    return body_of(client.post("/api/v1/connections/", json={"name": "prod", **fields}), 201)


def _create_pipeline(client, **body):
    payload = {"name": f"x_{uuid.uuid4().hex[:8]}", "target_table": "analytics.film_dim", "source_query": FILM_DIM}
    payload.update(body)
    return client.post("/api/v1/pipelines/", json=payload)


def _run(client, pipeline_id):
    assert client.post(f"/api/v1/pipelines/{pipeline_id}/run").status_code == 200
    return finished_run(client, pipeline_id)


def _detail(client, pipeline_id, run_id):
    return body_of(client.get(f"/api/v1/pipelines/{pipeline_id}/runs/{run_id}"), 200)


def test_full_load_reads_the_named_source_and_reconciles_across_databases(client, prod_connection, sql):
    created = body_of(_create_pipeline(client, source_connection="prod"), 201)
    assert list(created) == PIPELINE_KEYS  # the v1 shape is unchanged
    settings = body_of(client.get(f"/api/v1/pipelines/{created['id']}/settings"), 200)
    assert settings["source_connection"] == {"id": prod_connection["id"], "name": "prod"}
    run = _run(client, created["id"])
    assert run["status"] == "SUCCESS", run
    assert run["rows_written"] == PROD_FILMS
    assert sql("SELECT count(*) FROM analytics.film_dim")[0][0] == PROD_FILMS
    detail = wait_for(lambda: (d := _detail(client, created["id"], run["id"]))["reconciliation"] and d,
                      message="the after-run reconciliation")
    assert detail["config"]["source_connection"]["name"] == "prod"
    assert "password" not in str(detail["config"]).lower()
    assert detail["reconciliation"].get("match") is True, detail["reconciliation"]
    assert detail["reconciliation"]["source_rows"] == PROD_FILMS

    # Drift on the target: three rows gone, one that the source never had.
    sql("DELETE FROM analytics.film_dim WHERE film_id IN (SELECT film_id FROM analytics.film_dim ORDER BY film_id LIMIT 3)")
    sql("INSERT INTO analytics.film_dim (film_id, title, rating) VALUES (gen_random_uuid(), 'stray', 1)")
    report = body_of(client.post(f"/api/v1/pipelines/{created['id']}/reconcile"), 200)
    assert (report["source_rows"], report["target_rows"]) == (PROD_FILMS, PROD_FILMS - 2)
    assert (report["missing_in_target"], report["extra_in_target"], report["match"]) == (3, 1, False)
    assert len(report["missing_sample"]) == 3 and report["extra_sample"][0]["film_id"]


def test_the_default_source_is_unchanged_without_a_connection(client, prod_connection, sql):
    created = body_of(_create_pipeline(client), 201)
    assert body_of(client.get(f"/api/v1/pipelines/{created['id']}/settings"), 200)["source_connection"] is None
    assert _run(client, created["id"])["rows_written"] == 2000  # the test database's own films


def test_incremental_reads_key_at_or_past_the_watermark_on_the_source(client, prod_connection, prod_sql, sql):
    created = body_of(_create_pipeline(client, source_connection=prod_connection["id"], mode="incremental",
                                       incremental_key="modified", source_query=FILM_DIM_INCREMENTAL), 201)
    first = _run(client, created["id"])
    assert first["status"] == "SUCCESS" and first["rows_read"] == PROD_FILMS, first
    state = body_of(client.get(f"/api/v1/pipelines/{created['id']}/state"), 200)
    assert state["watermark"] is not None  # kept with the target, in the warehouse
    try:
        prod_sql("UPDATE content.film_work SET title = title || ' (restored)', modified = now() + interval '1 day' "
                 "WHERE id IN (SELECT id FROM content.film_work ORDER BY id LIMIT 5)")
        second = _run(client, created["id"])
        assert second["status"] == "SUCCESS", second
        boundary = prod_sql("SELECT count(*) FROM content.film_work WHERE modified = "
                            "(SELECT max(modified) FROM content.film_work WHERE title NOT LIKE '%%(restored)')")[0][0]
        assert second["rows_read"] == 5 + boundary and second["rows_written"] == 5  # >= re-reads the boundary
        assert sql("SELECT count(*) FROM analytics.film_dim WHERE title LIKE '%%(restored)'")[0][0] == 5
        assert sql("SELECT count(*) FROM analytics.film_dim")[0][0] == PROD_FILMS
        third = _run(client, created["id"])
        assert (third["rows_read"], third["rows_written"]) == (5, 0)  # the boundary rows, unchanged
    finally:
        prod_sql("UPDATE content.film_work SET title = replace(title, ' (restored)', ''), modified = created "
                 "WHERE title LIKE '%%(restored)'")


def test_save_time_errors_are_clear_400s(client, prod_connection):
    assert detail_of(_create_pipeline(client, source_connection="nope"), 400) == "source_connection 'nope' does not exist"
    message = detail_of(_create_pipeline(client, source_connection="prod",
                                         source_query="SELECT id AS film_id FROM analytics.film_dim"), 400)
    assert "on source connection 'prod'" in message
    message = detail_of(_create_pipeline(client, source_connection="prod",
                                         source_query="SELECT id AS film_id, title AS nope FROM content.film_work"), 400)
    assert "column mismatch" in message and "nope" in message
    body_of(client.post("/api/v1/connections/", json={"name": "down", "host": "127.0.0.1", "port": 1,
                                                     "database": "d", "user": "u"}), 201)
    message = detail_of(_create_pipeline(client, source_connection="down"), 400)
    assert message.startswith("source connection 'down' is unreachable")
    pipeline = body_of(_create_pipeline(client), 201)
    assert detail_of(client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"source_connection": "down"}),
                     400).startswith("source connection 'down' is unreachable")
    patched = body_of(client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"source_connection": "prod"}), 200)
    assert list(patched) == PIPELINE_KEYS
    settings = body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/settings"), 200)
    assert settings["source_connection"]["name"] == "prod"
    body_of(client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"source_connection": None}), 200)
    assert body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/settings"), 200)["source_connection"] is None


def test_an_unreachable_source_at_run_time_fails_the_run_naming_the_connection(client, prod_connection):
    created = body_of(_create_pipeline(client, source_connection="prod"), 201)
    body_of(client.patch(f"/api/v1/connections/{prod_connection['id']}", json={"host": "127.0.0.1", "port": 1}), 200)
    run = _run(client, created["id"])
    assert run["status"] == "FAILED"
    assert run["error_message"].startswith("source connection 'prod' is unreachable"), run["error_message"]
    assert PROD_PASSWORD not in run["error_message"]


@pytest.fixture(scope="module")
def other_server_url():
    try:
        psycopg2.connect(libpq_dsn(OTHER_SERVER_URL), connect_timeout=2).close()
    except psycopg2.Error:
        pytest.skip("no second PostgreSQL server at " + make_url(OTHER_SERVER_URL).render_as_string())
    name = f"etl_other_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = _make_source_database(OTHER_SERVER_URL, name, 1200)
    yield url
    _drop_database(OTHER_SERVER_URL, name)


def test_full_load_and_reconcile_from_another_server(client, other_server_url, sql):
    fields = {**connection_fields(other_server_url), "user": PROD_LOGIN, "password": PROD_PASSWORD}
    connection = body_of(client.post("/api/v1/connections/", json={"name": "other-server", **fields}), 201)
    test = body_of(client.post(f"/api/v1/connections/{connection['id']}/test"), 200)
    assert test["ok"] is True, test
    created = body_of(_create_pipeline(client, source_connection="other-server"), 201)
    run = _run(client, created["id"])
    assert run["status"] == "SUCCESS" and run["rows_written"] == 1200, run
    report = body_of(client.post(f"/api/v1/pipelines/{created['id']}/reconcile"), 200)
    assert report["match"] is True and report["source_rows"] == 1200


def test_sql_assertions_gate_a_load_from_another_database(client, prod_connection, sql):
    """Assertions read the shadow in the warehouse, as the warehouse's own least-privilege login."""
    created = body_of(_create_pipeline(client, source_connection="prod"), 201)
    checks = {"assertions": [{"name": "no_untitled", "sql": "SELECT * FROM loaded WHERE title IS NULL"}]}
    body_of(client.put(f"/api/v1/pipelines/{created['id']}/checks", json=checks), 200)
    run = _run(client, created["id"])
    assert run["status"] == "SUCCESS", run
    gates = _detail(client, created["id"], run["id"])["gates"]
    assert any(g["gate"] == "assertion(no_untitled)" and g["passed"] for g in gates), gates

    failing = {"assertions": [{"name": "too_many", "sql": "SELECT 1 FROM loaded HAVING count(*) > 10"}]}
    body_of(client.put(f"/api/v1/pipelines/{created['id']}/checks", json=failing), 200)
    sql("TRUNCATE analytics.film_dim")
    run = _run(client, created["id"])
    assert run["status"] == "FAILED" and "assertion(too_many)" in run["error_message"], run
    assert sql("SELECT count(*) FROM analytics.film_dim") == [(0,)]
