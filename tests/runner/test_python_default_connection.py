"""A PYTHON pipeline that names no connection, under ETL_DEFAULT_SOURCE_CONNECTION: its tasks are
checked against, and its rows read from, the default connection, as a SQL pipeline's are."""
from __future__ import annotations

import pytest

from tests.api.conftest import body_of
from tests.connection_helpers import connection_fields
from tests.runner.test_cross_database import (  # noqa: F401 (fixtures)
    FILM_DIM,
    PROD_FILMS,
    PROD_LOGIN,
    PROD_PASSWORD,
    _detail,
    _run,
    prod_url,
)


@pytest.fixture
def app_overrides():
    return {"default_source_connection": "production"}


def test_tasks_are_checked_and_run_on_the_default_connection(client, prod_url, sql):  # noqa: F811
    fields = {**connection_fields(prod_url), "user": PROD_LOGIN, "password": PROD_PASSWORD}
    body_of(client.post("/api/v1/connections/", json={"name": "production", **fields}), 201)
    created = body_of(client.post("/api/v1/pipelines/", json={
        "name": "film_dim_python", "type": "PYTHON", "target_table": "analytics.film_dim",
        "source_query": FILM_DIM}), 201)
    tasks = {"tasks": [{"kind": "normalize_text", "config": {"columns": ["title"], "case": "upper"}}]}
    body_of(client.put(f"/api/v1/pipelines/{created['id']}/tasks", json=tasks), 200)
    refused = client.put(f"/api/v1/pipelines/{created['id']}/tasks", json={"tasks": [
        {"kind": "select", "config": {"columns": ["film_id", "title", "rating", "nope"]}}]})
    assert refused.status_code == 400 and "no column nope" in refused.get_json()["detail"]
    run = _run(client, created["id"])
    assert run["status"] == "SUCCESS" and run["rows_written"] == PROD_FILMS, run
    detail = _detail(client, created["id"], run["id"])
    assert detail["path"]["name"] == "python" and detail["config"]["source_connection"]["name"] == "production"
    assert sql("SELECT count(*) FROM analytics.film_dim WHERE title <> upper(title)") == [(0,)]


def test_a_python_query_need_not_fit_the_target_until_its_tasks_make_it(client, prod_url, sql):  # noqa: F811
    fields = {**connection_fields(prod_url), "user": PROD_LOGIN, "password": PROD_PASSWORD}
    body_of(client.post("/api/v1/connections/", json={"name": "production", **fields}), 201)
    raw = "SELECT id AS film_id, title AS raw_title, rating FROM content.film_work"
    sql_refused = client.post("/api/v1/pipelines/", json={
        "name": "film_dim_sql", "target_table": "analytics.film_dim", "source_query": raw})
    assert sql_refused.status_code == 400 and "raw_title" in sql_refused.get_json()["detail"]
    created = body_of(client.post("/api/v1/pipelines/", json={
        "name": "film_dim_python", "type": "PYTHON", "target_table": "analytics.film_dim", "source_query": raw}), 201)
    tasks = {"tasks": [{"kind": "rename", "config": {"columns": {"raw_title": "title"}}}]}
    body_of(client.put(f"/api/v1/pipelines/{created['id']}/tasks", json=tasks), 200)
    run = _run(client, created["id"])
    assert run["status"] == "SUCCESS" and run["rows_written"] == PROD_FILMS, run
