"""Same-database loads run inside PostgreSQL (INSERT … SELECT as the source login), with progress,
pause, and the path they took on the run; ETL_LOAD_PATH=copy forces the COPY stream."""
from __future__ import annotations

import time

import pytest

from tests.conftest import FILM_DIM_QUERY, finished_run, wait_for
from tests.runner.helpers import slow_film_query, target_count


def detail(client, pipeline_id: str) -> dict:
    run = client.get(f"/api/v1/pipelines/{pipeline_id}/runs").get_json()[0]
    return client.get(f"/api/v1/pipelines/{pipeline_id}/runs/{run['id']}").get_json()


def shadows_left(sql) -> int:
    return sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = 'etl_console_shadow' AND c.relkind = 'r'")[0][0]


def test_a_same_database_load_runs_inside_postgresql_and_says_so(client, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline()
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    films = sql("SELECT count(*) FROM content.film_work")[0][0]
    assert run["rows_read"] == run["rows_written"] == films == target_count(sql)
    assert sql(f"SELECT count(*) FROM ({FILM_DIM_QUERY} EXCEPT SELECT film_id, title, rating "
               "FROM analytics.film_dim) d") == [(0,)]
    record = detail(client, pipeline["id"])
    assert record["path"]["name"] == "in-database", record["path"]
    assert "reads the warehouse itself" in record["path"]["why"]
    assert record["progress"] == "exact"
    assert shadows_left(sql) == 0


@pytest.mark.parametrize("app_overrides", [{"load_path": "copy"}])
def test_the_copy_stream_can_be_forced_for_comparison(client, create_pipeline, run_to_end):
    pipeline = create_pipeline()
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    record = detail(client, pipeline["id"])
    assert record["path"] == {"name": "copy", "why": "ETL_LOAD_PATH=copy forces the COPY stream"}


def test_progress_grows_while_the_statement_runs(client, create_pipeline, sql):
    # 60,000 rows; the server sleeps 0.4 s after every 10,000: about 2.5 s inside one statement.
    pipeline = create_pipeline(source_query=slow_film_query(60000, 10000, 0.4))
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    seen, approximate = [], False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = detail(client, pipeline["id"])
        if record["status"] != "RUNNING":
            break
        seen.append(record["rows_read"])
        approximate = approximate or (record["progress"] or "").startswith("approximate")
        time.sleep(0.1)
    final = finished_run(client, pipeline["id"])
    assert final["status"] == "SUCCESS" and final["rows_read"] == 60000
    assert approximate  # the API says the running count is an estimate
    assert len({value for value in seen if value}) >= 2, seen  # it grew during the statement


def test_pause_cancels_the_statement_within_a_second(client, create_pipeline, sql):
    sql("INSERT INTO analytics.film_dim VALUES (md5('kept')::uuid, 'kept', 1)")
    pipeline = create_pipeline(
        source_query="SELECT md5('x')::uuid AS film_id, 't' AS title, 1.0::float8 AS rating FROM pg_sleep(20)")
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    wait_for(lambda: sql("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                         "AND query LIKE 'INSERT INTO%FROM pg_sleep(20)%'")[0][0], message="the statement")
    paused_at = time.monotonic()
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
    run = finished_run(client, pipeline["id"], timeout=10, message="the paused run")
    assert time.monotonic() - paused_at < 2.5  # heartbeat period (0.1 s here) + cancel
    assert "cancelled by a pause" in run["error_message"]
    assert sql("SELECT title FROM analytics.film_dim") == [("kept",)]
    assert wait_for(lambda: shadows_left(sql) == 0, timeout=5, message="the shadow to go")


def test_a_source_login_that_may_write_elsewhere_keeps_read_only_transactions(client, create_pipeline, run_to_end, sql):
    sql("GRANT INSERT ON content.film_work TO etl_source")
    try:
        pipeline = create_pipeline()
        assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
        record = detail(client, pipeline["id"])
        assert record["path"]["name"] == "copy"
        assert "content.film_work" in record["path"]["why"] and "READ ONLY" in record["path"]["why"]
    finally:
        sql("REVOKE INSERT ON content.film_work FROM etl_source")


def test_values_load_as_the_copy_stream_would_load_them(client, create_pipeline, run_to_end, sql):
    """COPY parses every value as text into the target's type; the in-database path does the same."""
    pipeline = create_pipeline(source_query="SELECT id::text AS film_id, upper(title) AS title, "
                                            "coalesce(rating, 0)::text AS rating FROM content.film_work")
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    assert detail(client, pipeline["id"])["path"]["name"] == "in-database"
    assert sql("SELECT count(*) FROM content.film_work f JOIN analytics.film_dim d ON d.film_id = f.id "
               "AND d.title = upper(f.title) AND d.rating = coalesce(f.rating, 0)") == sql(
        "SELECT count(*) FROM content.film_work")

    bad = create_pipeline(source_query="SELECT 'not a uuid' AS film_id, title, rating FROM content.film_work")
    failed = run_to_end(bad["id"])
    assert failed["status"] == "FAILED"
    assert 'invalid input syntax for type uuid: "not a uuid"' in failed["error_message"]
