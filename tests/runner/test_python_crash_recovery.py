"""A worker SIGKILLed in the middle of a PYTHON pipeline's stream: the target is untouched, the run is
reaped as lost, no shadow outlives it, and the next run loads the transformed rows. One run per
pipeline holds for PYTHON pipelines as for SQL ones."""
from __future__ import annotations

import signal

import pytest

from etl_console.runner.runner import Runner
from tests.conftest import wait_for
from tests.runner import helpers
from tests.runner.helpers import film_rows_query, slow_film_query

LEASE_S = 2.0


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False, "run_lease_s": LEASE_S}


def latest_run(client, pipeline_id):
    return client.get(f"/api/v1/pipelines/{pipeline_id}/runs").get_json()[0]


def shadows_left(sql) -> int:
    return sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = 'etl_console_shadow' AND c.relkind = 'r'")[0][0]


def run_in_process(etl, client, pipeline_id) -> dict:
    runner = Runner(etl.database, etl.config).start()
    try:
        client.post(f"/api/v1/pipelines/{pipeline_id}/run")
        return wait_for(lambda: (run := latest_run(client, pipeline_id))["status"] != "RUNNING" and run,
                        timeout=60, message="the in-process run")
    finally:
        runner.stop()


def test_sigkill_mid_stream_then_the_next_run_loads(etl, client, create_pipeline, sql, database_url):
    seed = create_pipeline(source_query=film_rows_query(500, "old"))
    assert run_in_process(etl, client, seed["id"])["status"] == "SUCCESS"
    seeded = sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id")

    pipeline = create_pipeline(type="PYTHON", source_query=slow_film_query(200_000, 1000, 0.02), batch_size=1000)
    tasks = {"tasks": [{"kind": "normalize_text", "config": {"columns": ["title"], "case": "upper"}}]}
    assert client.put(f"/api/v1/pipelines/{pipeline['id']}/tasks", json=tasks).status_code == 200
    worker = helpers.start_worker(database_url, run_lease_s=str(LEASE_S), heartbeat_s="0.2", poll_s="0.2")
    try:
        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
        # A second request while it runs is the same run (one run per pipeline).
        assert client.post(f"/api/v1/pipelines/{pipeline['id']}/run").get_json()["status"] == "RUNNING"
        wait_for(lambda: latest_run(client, pipeline["id"])["rows_read"] >= 3000, message="the worker to stream")
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert len(client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()) == 1
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == seeded

    assert helpers.reap_lost_runs(etl, timeout=LEASE_S + 5) == 1
    lost = latest_run(client, pipeline["id"])
    assert lost["status"] == "FAILED" and lost["error_message"].startswith("Worker lost")
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == seeded

    client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"source_query": film_rows_query(900, "new")})
    run = run_in_process(etl, client, pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    assert sql("SELECT count(*), count(*) FILTER (WHERE title LIKE 'NEW %') FROM analytics.film_dim") == [(900, 900)]
    assert shadows_left(sql) == 0
