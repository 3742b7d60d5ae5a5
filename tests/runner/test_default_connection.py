"""ETL_DEFAULT_SOURCE_CONNECTION: pipelines that name no connection read through the named one, so a
v1 client that never heard of connections gets the deployment's real source."""
from __future__ import annotations

import pytest

from tests.api.conftest import PIPELINE_KEYS, body_of
from tests.connection_helpers import connection_fields
from tests.runner.test_cross_database import (  # noqa: F401 (fixtures)
    FILM_DIM,
    PROD_FILMS,
    PROD_LOGIN,
    PROD_PASSWORD,
    _create_pipeline,
    _detail,
    _run,
    prod_url,
)


@pytest.fixture
def app_overrides():
    return {"default_source_connection": "production"}


def test_a_pipeline_naming_no_connection_reads_the_default_one(client, prod_url, sql):  # noqa: F811
    fields = {**connection_fields(prod_url), "user": PROD_LOGIN, "password": PROD_PASSWORD}
    body_of(client.post("/api/v1/connections/", json={"name": "production", **fields}), 201)
    created = body_of(client.post("/api/v1/pipelines/", json={
        "name": "film_dim_full", "target_table": "analytics.film_dim", "source_query": FILM_DIM}), 201)
    assert list(created) == PIPELINE_KEYS
    assert body_of(client.get(f"/api/v1/pipelines/{created['id']}/settings"), 200)["source_connection"] is None
    run = _run(client, created["id"])
    assert run["status"] == "SUCCESS" and run["rows_written"] == PROD_FILMS, run
    detail = _detail(client, created["id"], run["id"])
    assert detail["config"]["source_connection"]["name"] == "production"
    report = body_of(client.post(f"/api/v1/pipelines/{created['id']}/reconcile"), 200)
    assert report["match"] is True and report["source_rows"] == PROD_FILMS


def test_a_default_that_does_not_exist_is_a_clear_error(client):
    response = _create_pipeline(client)
    assert response.status_code == 400
    assert response.get_json()["detail"] == "ETL_DEFAULT_SOURCE_CONNECTION names 'production', which does not exist"
