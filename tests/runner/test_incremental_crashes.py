"""A real crash (the worker process dies) at each step of an incremental run, then a re-run: the
target and the watermark end as one clean run leaves them; no duplicates, no gaps."""
from __future__ import annotations

import pytest

from etl_console.runner.runner import Runner
from tests.conftest import finished_run
from tests.runner.helpers import reap_lost_runs, start_worker
from tests.runner.test_incremental import SOURCE, assert_target_equals_full_load, change_source, film_inc, watermark

__all__ = ["film_inc"]  # the fixture, imported for use here

CRASH_POINTS = ["incremental.after_copy", "incremental.after_upsert", "incremental.before_commit",
                "run.after_target_commit"]


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False, "run_lease_s": 1.0}


@pytest.mark.parametrize("crash_point", CRASH_POINTS)
def test_crash_at_each_step_then_rerun_equals_a_clean_run(crash_point, film_inc, etl, client, create_pipeline,
                                                         sql, database_url):
    pipeline = create_pipeline(mode="incremental", incremental_key="modified", source_query=SOURCE)
    runner = Runner(etl.database, etl.config).start()

    def run_in_process():
        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
        runner.wake()
        return finished_run(client, pipeline["id"])

    try:
        assert run_in_process()["status"] == "SUCCESS"
        runner.stop()
        change_source(sql)
        old_watermark = watermark(sql, pipeline["id"])

        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
        worker = start_worker(database_url, failpoint=crash_point, poll_s="0.1", heartbeat_s="0.1", run_lease_s="1")
        assert worker.wait(60) == 86  # died at the crash point
        reap_lost_runs(etl, timeout=10)
        if crash_point != "run.after_target_commit":
            assert watermark(sql, pipeline["id"]) == old_watermark  # nothing of the crashed run landed

        runner = Runner(etl.database, etl.config).start()
        rerun = run_in_process()
    finally:
        runner.stop()
    assert rerun["status"] == "SUCCESS", rerun
    assert_target_equals_full_load(sql)
    assert watermark(sql, pipeline["id"]) == sql("SELECT max(modified)::text FROM content.film_inc")[0][0]
    runs = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()
    assert [r["status"] for r in runs] == ["SUCCESS", "FAILED", "SUCCESS"]
    assert runs[1]["error_message"].startswith("Worker lost")
