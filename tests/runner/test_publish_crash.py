"""A worker killed between building the shadow and publishing it: the target is untouched, and the
shadow it leaves behind is dropped by the next load (its advisory lock died with the process)."""
from __future__ import annotations

import pytest

from etl_console.runner.runner import Runner
from tests.conftest import finished_run
from tests.runner.helpers import film_rows_query, reap_lost_runs, start_worker, target_count
from tests.runner.test_publish import SHADOWS


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False, "run_lease_s": 1.0}


def test_sigkill_between_build_and_publish_leaves_the_target_and_no_orphan(etl, client, create_pipeline, sql,
                                                                             database_url):
    seed = create_pipeline(source_query=film_rows_query(700, "old"))
    pipeline = create_pipeline(source_query=film_rows_query(2000, "new"))

    def run_in_process(pipeline_id):
        runner = Runner(etl.database, etl.config).start()
        try:
            client.post(f"/api/v1/pipelines/{pipeline_id}/run")
            runner.wake()
            return finished_run(client, pipeline_id)
        finally:
            runner.stop()

    assert run_in_process(seed["id"])["status"] == "SUCCESS"
    before = sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id")

    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    worker = start_worker(database_url, failpoint="full.before_publish", poll_s="0.1", heartbeat_s="0.1",
                          run_lease_s="1")
    assert worker.wait(60) == 86  # died with the shadow built and committed
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == before
    assert sql(SHADOWS) == [(1,)]  # the orphan, until someone sweeps it
    assert reap_lost_runs(etl, timeout=10) == 1

    rerun = run_in_process(pipeline["id"])
    assert rerun["status"] == "SUCCESS", rerun
    assert target_count(sql) == 2000
    assert sql(SHADOWS) == [(0,)]
