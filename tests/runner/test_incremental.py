"""Incremental mode: only rows at or beyond the watermark, upserted on the target's key, with the
watermark advanced in the same transaction; a crash at any step then a re-run equals a clean run."""
from __future__ import annotations

import pytest


SOURCE = "SELECT id AS film_id, title, rating, modified FROM content.film_inc"
FULL_EQUIVALENT = "SELECT id AS film_id, title, rating FROM content.film_inc"


@pytest.fixture
def film_inc(sql):
    """A private copy of 1000 films that the test may insert into and update."""
    sql("DROP TABLE IF EXISTS content.film_inc")
    sql("CREATE TABLE content.film_inc AS SELECT * FROM content.film_work ORDER BY modified LIMIT 1000")
    sql("ALTER TABLE content.film_inc ADD PRIMARY KEY (id)")
    yield
    sql("DROP TABLE IF EXISTS content.film_inc")


def change_source(sql, inserted: int = 50, updated: int = 30) -> None:
    sql("UPDATE content.film_inc SET title = title || ' (restored)', modified = clock_timestamp() "
        "WHERE id IN (SELECT id FROM content.film_inc ORDER BY id LIMIT %s)", (updated,))
    sql("INSERT INTO content.film_inc (id, title, type, created, modified) "
        "SELECT md5('inc' || i || clock_timestamp())::uuid, 'new film ' || i, 'movie', now(), clock_timestamp() "
        "FROM generate_series(1, %s) i", (inserted,))


def assert_target_equals_full_load(sql):
    missing = sql(f"SELECT count(*) FROM ({FULL_EQUIVALENT} EXCEPT SELECT film_id, title, rating FROM analytics.film_dim) d")
    extra = sql(f"SELECT count(*) FROM (SELECT film_id, title, rating FROM analytics.film_dim EXCEPT {FULL_EQUIVALENT}) d")
    assert (missing, extra) == ([(0,)], [(0,)])


def watermark(sql, pipeline_id):
    return sql("SELECT watermark FROM etl_state WHERE pipeline_id = %s", (pipeline_id,))[0][0]


def test_second_run_reads_only_changed_rows_and_matches_a_full_load(film_inc, create_pipeline, run_to_end, sql, client):
    pipeline = create_pipeline(mode="incremental", incremental_key="modified", source_query=SOURCE)
    assert "incremental_key" not in pipeline  # accepted, never returned (contract §2.1)
    first = run_to_end(pipeline["id"])
    assert first["status"] == "SUCCESS" and first["rows_read"] == 1000 and first["rows_written"] == 1000
    assert watermark(sql, pipeline["id"]) == sql("SELECT max(modified)::text FROM content.film_inc")[0][0]

    change_source(sql, inserted=50, updated=30)
    second = run_to_end(pipeline["id"])
    assert second["status"] == "SUCCESS"
    # The 80 changed rows, plus the boundary row(s) at the old watermark, which the upsert ignores.
    assert 80 <= second["rows_read"] <= 81
    assert second["rows_written"] == 80
    assert_target_equals_full_load(sql)
    third = run_to_end(pipeline["id"])
    assert third["rows_written"] == 0 and third["rows_read"] <= 1

    changes = sql("SELECT changed_by, old_watermark IS NULL FROM etl_state_changes WHERE pipeline_id = %s "
                  "ORDER BY changed_at", (pipeline["id"],))
    assert changes == [("run", True), ("run", False)]


def test_incremental_needs_a_key_and_a_target_with_a_primary_key(client, sql):
    body = {"name": "inc", "mode": "incremental", "target_table": "analytics.film_dim", "source_query": SOURCE}
    response = client.post("/api/v1/pipelines/", json=body)
    assert response.status_code == 400 and "incremental_key" in response.get_json()["detail"]
    sql("ALTER TABLE analytics.film_rating_agg DROP CONSTRAINT film_rating_agg_pkey")
    try:
        response = client.post("/api/v1/pipelines/", json={
            **body, "incremental_key": "film_id", "target_table": "analytics.film_rating_agg",
            "source_query": "SELECT film_id, 1 AS ratings_count FROM ugc.ratings"})
        assert response.status_code == 400
        assert response.get_json()["detail"] == (
            "target_table 'analytics.film_rating_agg' has no primary key; incremental mode upserts on it")
    finally:
        sql("ALTER TABLE analytics.film_rating_agg ADD PRIMARY KEY (film_id)")


def test_a_key_with_a_percent_sign_works_on_every_run(film_inc, create_pipeline, run_to_end, sql):
    """Identifiers are composed, never pasted into a %-template (the second run once failed with IndexError)."""
    query = 'SELECT id AS film_id, title, rating, modified AS "mod%s%%" FROM content.film_inc'
    pipeline = create_pipeline(mode="incremental", incremental_key="mod%s%%", source_query=query)
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    change_source(sql, inserted=5, updated=3)
    second = run_to_end(pipeline["id"])
    assert second["status"] == "SUCCESS", second["error_message"]
    assert second["rows_written"] == 8
    assert_target_equals_full_load(sql)


def test_a_merge_waiting_for_a_lock_says_so_and_goes_on_when_it_is_released(
        film_inc, create_pipeline, run_to_end, client, dsn, sql):
    """An index build (SHARE) on the target blocks the merge: the run shows whom it waits for."""
    import psycopg2

    from tests.conftest import finished_run, wait_for

    pipeline = create_pipeline(mode="incremental", incremental_key="modified", source_query=SOURCE)
    holder = psycopg2.connect(dsn, application_name="long-index-build")
    try:
        holder.cursor().execute("LOCK TABLE analytics.film_dim IN SHARE MODE")
        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")

        def waiting():
            run = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]
            wait = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}").get_json()["lock_wait"]
            return wait if wait and wait["state"] == "waiting" else None

        wait = wait_for(waiting, timeout=20, message="the run to say it waits")
        assert wait["lock"] == "ROW EXCLUSIVE on analytics.film_dim"
        assert any(f"pid {holder.get_backend_pid()} holds ShareLock" in h for h in wait["holders"]), wait
        assert sql("SELECT count(*) FROM analytics.film_dim") == [(0,)]
    finally:
        holder.rollback()
        holder.close()
    run = finished_run(client, pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    assert_target_equals_full_load(sql)


@pytest.mark.parametrize("app_overrides, path", [({}, "in-database"), ({"load_path": "copy"}, "copy")])
def test_the_changed_rows_are_staged_inside_postgresql_unless_the_stream_is_forced(
        film_inc, create_pipeline, run_to_end, client, sql, path):
    pipeline = create_pipeline(mode="incremental", incremental_key="modified", source_query=SOURCE)
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    change_source(sql, inserted=20, updated=10)
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS" and run["rows_written"] == 30
    record = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}").get_json()
    assert record["path"]["name"] == path
    assert_target_equals_full_load(sql)
    # The staging table is gone whichever way the rows came.
    assert sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = 'etl_console_shadow' AND c.relkind = 'r'") == [(0,)]


def test_a_failing_gate_on_the_staged_rows_leaves_target_and_watermark(film_inc, create_pipeline, run_to_end, client, sql):
    pipeline = create_pipeline(mode="incremental", incremental_key="modified", source_query=SOURCE)
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    before = watermark(sql, pipeline["id"])
    response = client.put(f"/api/v1/pipelines/{pipeline['id']}/checks", json={"min_rows": 1_000_000})
    assert response.status_code == 200, response.get_data(as_text=True)
    change_source(sql, inserted=5, updated=0)
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED" and "min_rows" in run["error_message"]
    assert watermark(sql, pipeline["id"]) == before
    assert sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = 'etl_console_shadow' AND c.relkind = 'r'") == [(0,)]
