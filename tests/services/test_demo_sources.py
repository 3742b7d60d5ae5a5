"""The demo's production database: its own data and reader login, a connection that passes the
privilege check, and pipelines that read through it."""
from __future__ import annotations

import os
import uuid

import psycopg2
import pytest

from etl_console.extensions import etl_of
from etl_console.services.demo_sources import PRODUCTION_LOGIN, ensure_production_source
from tests.api.conftest import body_of
from tests.conftest import finished_run


@pytest.fixture
def production(app, dsn):
    name = f"etl_production_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    yield name
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f"DROP ROLE IF EXISTS {PRODUCTION_LOGIN}")
    admin.close()


def test_the_production_source_is_created_once_and_read_through_its_connection(app, client, production, sql):
    state = etl_of(app)
    for _ in range(2):  # idempotent
        name = ensure_production_source(state.database, state.config, 700, 1400, database_name=production)
    assert name == "production"
    connections = {c["name"]: c for c in body_of(client.get("/api/v1/connections/"), 200)}
    assert set(connections) == {"production", "warehouse"}
    connection = connections["production"]
    assert (connection["database"], connection["user"], connection["password_set"]) == (production, PRODUCTION_LOGIN, True)
    test = body_of(client.post(f"/api/v1/connections/{connection['id']}/test"), 200)
    assert test["ok"] is True, test
    pipeline = body_of(client.post("/api/v1/pipelines/", json={
        "name": "film_dim_from_production", "target_table": "analytics.film_dim", "source_connection": "production",
        "source_query": "SELECT id as film_id, title, rating FROM content.film_work"}), 201)
    assert client.post(f"/api/v1/pipelines/{pipeline['id']}/run").status_code == 200
    run = finished_run(client, pipeline["id"])
    assert run["status"] == "SUCCESS" and run["rows_written"] == 700, run


def test_the_warehouse_connection_loads_inside_postgresql(app, client, production):
    state = etl_of(app)
    ensure_production_source(state.database, state.config, 300, 600, database_name=production)
    pipeline = body_of(client.post("/api/v1/pipelines/", json={
        "name": "film_dim_same_database", "target_table": "analytics.film_dim", "source_connection": "warehouse",
        "source_query": "SELECT id as film_id, title, rating FROM content.film_work"}), 201)
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    run = finished_run(client, pipeline["id"])
    assert run["status"] == "SUCCESS", run
    detail = body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}"), 200)
    assert detail["path"]["name"] == "in-database"
