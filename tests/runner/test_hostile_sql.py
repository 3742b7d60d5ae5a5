"""User SQL is rejected when saved, or fails at run time with no effect."""
from __future__ import annotations

import pytest

from tests.runner.helpers import film_rows_query, target_count

WRITING_CTE = (
    "WITH gone AS (DELETE FROM content.film_work RETURNING id) "
    "SELECT id AS film_id, 'x' AS title, 1.0::float8 AS rating FROM gone"
)
TWO_STATEMENTS = "SELECT id AS film_id, title, rating FROM content.film_work; DELETE FROM content.film_work"
READ_WRITE = (
    "SELECT md5('x')::uuid AS film_id, set_config('transaction_read_only', 'off', false) AS title, "
    "1.0::float8 AS rating"
)
HOSTILE = {
    "writing CTE": (WRITING_CTE, "must not modify data"),
    "several statements": (TWO_STATEMENTS, "single SELECT or WITH statement"),
    "set_config": (READ_WRITE, "must not call set_config()"),
    "insert": ("INSERT INTO content.film_work (id) VALUES (gen_random_uuid())", "not INSERT"),
    "select into": ("SELECT * INTO analytics.stolen FROM content.film_work", "SELECT ... INTO"),
    "row locks": ("SELECT id AS film_id FROM content.film_work FOR UPDATE", "must not lock rows"),
}


@pytest.fixture
def app_overrides():
    return {"statement_timeout_s": 1.0}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_query_is_rejected_when_saved(client, name):
    query, expected = HOSTILE[name]
    response = client.post(
        "/api/v1/pipelines/", json={"name": "bad", "target_table": "analytics.film_dim", "source_query": query}
    )
    assert response.status_code == 400
    assert expected in response.get_json()["detail"]
    assert client.get("/api/v1/pipelines/").get_json() == []


@pytest.mark.parametrize("name", ["writing CTE", "several statements", "set_config"])
def test_hostile_query_that_got_into_the_database_fails_at_run_time_without_effect(
    name, client, create_pipeline, run_to_end, sql
):
    """A row written before these checks existed (or by hand) still cannot write when it runs."""
    seed = create_pipeline(source_query=film_rows_query(50, "old"))
    run_to_end(seed["id"])
    films_before = sql("SELECT count(*) FROM content.film_work")
    pipeline = create_pipeline()
    sql("UPDATE etl_pipelines SET source_query = %s WHERE id = %s", (HOSTILE[name][0], pipeline["id"]))
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    assert run["error_message"]
    assert sql("SELECT count(*) FROM content.film_work") == films_before
    assert target_count(sql) == 50


def test_runtime_read_only_transaction_blocks_writes_the_parser_cannot_see(create_pipeline, run_to_end, sql):
    """A function that writes is invisible to the parser; READ ONLY stops it at run time."""
    sql("CREATE OR REPLACE FUNCTION public.etl_test_sneaky() RETURNS text LANGUAGE sql AS "
        "$$ DELETE FROM content.film_work WHERE false; SELECT 'x' $$")
    try:
        pipeline = create_pipeline(
            source_query="SELECT md5('x')::uuid AS film_id, public.etl_test_sneaky() AS title, 1.0::float8 AS rating"
        )
        run = run_to_end(pipeline["id"])
        assert run["status"] == "FAILED"
        # READ ONLY on the COPY stream; on the in-database path the login's missing privileges.
        assert "read-only transaction" in run["error_message"] or "permission denied" in run["error_message"]
    finally:
        sql("DROP FUNCTION public.etl_test_sneaky()")


def test_pg_sleep_beyond_the_statement_timeout_fails_the_run(create_pipeline, run_to_end):
    pipeline = create_pipeline(
        source_query="SELECT md5('x')::uuid AS film_id, 't' AS title, 1.0::float8 AS rating FROM pg_sleep(5)"
    )
    run = run_to_end(pipeline["id"], timeout=15)
    assert run["status"] == "FAILED"
    assert "statement timeout" in run["error_message"]
    assert "ETL_STATEMENT_TIMEOUT_S" in run["error_message"]


def test_columns_that_do_not_match_the_target_are_named(create_pipeline, run_to_end):
    pipeline = create_pipeline(source_query="SELECT id AS movie_id, title, rating, type FROM content.film_work")
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    message = run["error_message"]
    assert "movie_id" in message and "type" in message
    assert "film_id" in message  # the target column the source failed to provide


def test_wrong_column_type_fails_with_the_column_named(create_pipeline, run_to_end):
    pipeline = create_pipeline(source_query="SELECT title AS film_id, title, rating FROM content.film_work")
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    assert "uuid" in run["error_message"] and "film_id" in run["error_message"]


@pytest.fixture
def source_role(sql):
    """A role that may read content.* and the targets, and nothing else."""
    if sql("SELECT 1 FROM pg_roles WHERE rolname = 'etl_test_source'"):  # left by an interrupted run
        sql("DROP OWNED BY etl_test_source")
        sql("DROP ROLE etl_test_source")
    sql("CREATE ROLE etl_test_source NOLOGIN")
    sql("GRANT etl_test_source TO etl_source")  # the least-privilege login narrows further with SET ROLE
    sql("GRANT USAGE ON SCHEMA content, analytics TO etl_test_source")
    sql("GRANT SELECT ON content.film_work, analytics.film_dim TO etl_test_source")
    yield "etl_test_source"
    sql("DROP OWNED BY etl_test_source")
    sql("DROP ROLE etl_test_source")


def test_source_role_limits_what_user_sql_can_read(source_role, database_url, sql, clean_database):
    """ETL_SOURCE_ROLE: the query runs with that role's privileges; the load keeps the service's."""
    from tests.conftest import close_app, finished_run, make_app

    app = make_app(database_url, source_role=source_role)
    client = app.test_client()
    try:
        allowed = client.post("/api/v1/pipelines/", json={
            "name": "films", "target_table": "analytics.film_dim",
            "source_query": "SELECT id AS film_id, title, rating FROM content.film_work"}).get_json()
        denied = client.post("/api/v1/pipelines/", json={
            "name": "ratings", "target_table": "analytics.film_rating_agg",
            "source_query": "SELECT film_id, count(*) AS ratings_count FROM ugc.ratings GROUP BY film_id"}).get_json()

        def finish(pipeline):
            client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
            return finished_run(client, pipeline["id"])

        assert finish(allowed)["status"] == "SUCCESS"
        failed = finish(denied)
        assert failed["status"] == "FAILED"
        assert "permission denied for schema ugc" in failed["error_message"]
        assert "least-privilege login" in failed["error_message"]
        assert client.post(f"/api/v1/pipelines/{allowed['id']}/reconcile").get_json()["match"] is True
    finally:
        close_app(app)
