"""GET /api/v1/pipelines/{id} reads with one autocommit statement outside the request's session, without a
ping (Database.read_one): it answers as the ORM path did, gives the pool back its connection as it was,
and a connection the server ended still costs no request."""
from __future__ import annotations

import json

import pytest
from psycopg2.extensions import STATUS_BEGIN

from etl_console.extensions import etl_of
from tests.conftest import end_pooled_connection


def test_get_by_id_answers_the_bytes_the_list_has_for_it(client, create_pipeline):
    pipeline = create_pipeline(description="ünïcode \"quoted\"")
    answer = client.get(f"/api/v1/pipelines/{pipeline['id']}")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    listed = next(item for item in client.get("/api/v1/pipelines/").get_json() if item["id"] == pipeline["id"])
    assert answer.get_data() == json.dumps(listed, ensure_ascii=False, separators=(",", ":")).encode()
    missing = client.get("/api/v1/pipelines/00000000-0000-0000-0000-000000000000")
    assert (missing.status_code, missing.get_json()) == (404, {"detail": "Pipeline not found"})


def test_the_connection_goes_back_to_the_pool_opening_transactions(app, client, create_pipeline):
    pipeline = create_pipeline()
    engine = etl_of(app).database.engine
    engine.dispose()  # the GET's connection is then the pool's only one
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").status_code == 200
    with engine.connect() as connection:
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection.autocommit is False
        connection.exec_driver_sql("SELECT 1")
        assert dbapi_connection.status == STATUS_BEGIN


@pytest.mark.parametrize("path", ["/api/v1/pipelines/{id}", "/api/v1/pipelines/", "/api/v1/pipelines/{id}/runs"])
def test_a_connection_the_server_ended_costs_no_request_whether_pinged_or_read_again(app, client, create_pipeline, dsn, path):
    """The session's checkout pings (engine._ping_on_checkout); GET by id skips the ping and reads again."""
    pipeline = create_pipeline()
    ended = end_pooled_connection(etl_of(app).database, dsn)
    answer = client.get(path.format(id=pipeline["id"]))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    with etl_of(app).database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != ended
