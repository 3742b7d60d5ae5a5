"""ETL_TARGET_MAX_CONCURRENT_RUNS: at most that many runs write one target table at once, across
runners, in queue order; a waiting run says what it waits for."""
from __future__ import annotations

import time

import pytest

from etl_console.runner.runner import Runner
from tests.conftest import finished_run, wait_for
from tests.runner.helpers import slow_film_query


@pytest.fixture
def app_overrides():
    return {"runner_threads": 4, "target_max_concurrent_runs": 1}


def test_one_run_at_a_time_writes_a_target(etl, client, create_pipeline, sql):
    second_runner = Runner(etl.database, etl.config, name="second").start()  # two runners compete
    try:
        pipelines = [create_pipeline(name=f"same_target_{i}", source_query=slow_film_query(600, 200, 0.3))
                     for i in range(3)]
        other = create_pipeline(name="other_target", target_table="analytics.film_rating_agg",
                                source_query="SELECT film_id, 1 AS ratings_count FROM ugc.ratings GROUP BY film_id")
        for pipeline in pipelines:
            assert client.post(f"/api/v1/pipelines/{pipeline['id']}/run").status_code == 200
        assert client.post(f"/api/v1/pipelines/{other['id']}/run").status_code == 200

        def waiting_for_the_target():
            run = client.get(f"/api/v1/pipelines/{pipelines[2]['id']}/runs").get_json()[0]
            queue = client.get(f"/api/v1/pipelines/{pipelines[2]['id']}/runs/{run['id']}").get_json()["queue"]
            return queue if queue and "target table analytics.film_dim" in queue["waiting_for"] else None

        queue = wait_for(waiting_for_the_target, timeout=20, message="the third run to say what it waits for")
        assert queue["running"] == 1
        peak, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            writing = sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING' AND worker_id IS NOT NULL "
                          "AND config_snapshot ->> 'target_table' = 'analytics.film_dim'")[0][0]
            peak = max(peak, writing)
            if all(client.get(f"/api/v1/pipelines/{p['id']}").get_json()["status"] != "RUNNING" for p in pipelines):
                break
            time.sleep(0.02)
        assert peak == 1
        runs = [finished_run(client, p["id"]) for p in pipelines]
        assert [r["status"] for r in runs] == ["SUCCESS"] * 3
        claimed = sql("SELECT p.name FROM etl_pipeline_runs r JOIN etl_pipelines p ON p.id = r.pipeline_id "
                      "WHERE p.name LIKE 'same_target_%%' ORDER BY r.claimed_at")
        assert [name for (name,) in claimed] == ["same_target_0", "same_target_1", "same_target_2"]  # queue order
        assert finished_run(client, other["id"])["status"] == "SUCCESS"  # another target was never held up
    finally:
        second_runner.stop()
