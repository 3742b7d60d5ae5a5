"""POST /pause during a run: it stops at a batch boundary and the target keeps its previous contents."""
from __future__ import annotations

import time

from tests.conftest import finished_run, wait_for
from tests.runner.helpers import film_rows_query, slow_film_query, target_count


def test_pause_mid_run_keeps_previous_target_and_fails_the_run(client, create_pipeline, run_to_end, sql):
    seed = create_pipeline(source_query=film_rows_query(300, "old"))
    assert run_to_end(seed["id"])["status"] == "SUCCESS"
    old_rows = sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id")

    # 100k rows, 20 ms of source time every 1000 rows: about 2 s of work in 1000-row batches.
    slow = create_pipeline(source_query=slow_film_query(100_000, 1000, 0.02), batch_size=1000)
    client.post(f"/api/v1/pipelines/{slow['id']}/run")
    wait_for(lambda: client.get(f"/api/v1/pipelines/{slow['id']}/runs").get_json()[0]["rows_read"] >= 5000,
             message="the slow run to make progress")

    paused_at = time.monotonic()
    response = client.post(f"/api/v1/pipelines/{slow['id']}/pause")
    assert response.status_code == 200
    assert response.get_json()["status"] == "PAUSED"

    run = finished_run(client, slow["id"], timeout=10, message="the paused run to stop")
    # One batch takes ~20 ms here, so "within one batch plus a second" is about a second.
    assert time.monotonic() - paused_at < 2.5
    assert run["status"] == "FAILED"
    assert "cancelled by a pause" in run["error_message"]
    assert run["finished_at"] is not None
    assert run["rows_read"] % 1000 == 0 and 0 < run["rows_read"] < 100_000
    assert client.get(f"/api/v1/pipelines/{slow['id']}").get_json()["status"] == "PAUSED"
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == old_rows


def test_pause_interrupts_a_source_that_produces_no_rows(client, create_pipeline, sql, app):
    """A source that computes for long before its first row has no batch boundary to stop at."""
    pipeline = create_pipeline(
        source_query="SELECT md5('x')::uuid AS film_id, 't' AS title, 1.0::float8 AS rating FROM pg_sleep(20)"
    )
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    wait_for(lambda: sql("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                         "AND query LIKE '%FROM pg_sleep(20)%' AND (query LIKE 'COPY%' OR query LIKE 'INSERT%')")[0][0],
             message="the source query to start")  # COPY stream or in-database INSERT … SELECT
    paused_at = time.monotonic()
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")

    run = finished_run(client, pipeline["id"], timeout=10, message="the paused run to stop")
    assert time.monotonic() - paused_at < 3
    assert "cancelled by a pause" in run["error_message"]
    assert target_count(sql) == 0


def test_pause_before_a_runner_claims_the_run(no_runner, etl, client, create_pipeline, sql):
    # no_runner: nobody claims, the run stays queued
    pipeline = create_pipeline()
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")

    from etl_console.runner.runner import Runner

    late_runner = Runner(etl.database, etl.config).start()
    try:
        run = finished_run(client, pipeline["id"], message="the queued run to be cancelled")
    finally:
        late_runner.stop()
    assert run["status"] == "FAILED" and "cancelled by a pause" in run["error_message"]
    assert run["rows_read"] == 0
    assert target_count(sql) == 0
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()["status"] == "PAUSED"


def test_run_right_after_a_pause_starts_a_new_run_once_the_old_one_stops(client, create_pipeline, sql):
    pipeline = create_pipeline(source_query=slow_film_query(100_000, 1000, 0.02), batch_size=1000)
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    wait_for(lambda: client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]["rows_read"] >= 2000,
             message="the first run to make progress")
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
    again = client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    assert again.status_code == 200 and again.get_json()["status"] == "RUNNING"
    runs = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()
    assert [r["status"] for r in runs] == ["RUNNING", "FAILED"]
    assert "cancelled by a pause" in runs[1]["error_message"]
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")  # let the test end quickly
