"""A worker killed mid-run leaves the target as it was; its run is reaped as lost; a worker that comes
back after its lease expired cannot commit."""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from etl_console.runner.runner import Runner
from tests.conftest import wait_for
from tests.runner import helpers
from tests.runner.helpers import film_rows_query, slow_film_query

LEASE_S = 2.0


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False, "run_lease_s": LEASE_S}


def start_worker(database_url: str) -> subprocess.Popen:
    return helpers.start_worker(database_url, run_lease_s=str(LEASE_S), heartbeat_s="0.2", poll_s="0.2")


def latest_run(client, pipeline_id):
    return client.get(f"/api/v1/pipelines/{pipeline_id}/runs").get_json()[0]


@pytest.fixture
def seeded(etl, client, create_pipeline, sql):
    """The target holds 700 'old' rows, loaded by an in-process runner that is then stopped."""
    runner = Runner(etl.database, etl.config).start()
    try:
        seed = create_pipeline(source_query=film_rows_query(700, "old"))
        client.post(f"/api/v1/pipelines/{seed['id']}/run")
        wait_for(lambda: latest_run(client, seed["id"])["status"] == "SUCCESS", message="the seed load")
    finally:
        runner.stop()
    return sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id")


def test_sigkill_mid_run_keeps_target_and_run_is_reaped(etl, client, create_pipeline, sql, database_url, seeded):
    slow = create_pipeline(source_query=slow_film_query(200_000, 1000, 0.02), batch_size=1000)
    worker = start_worker(database_url)
    try:
        client.post(f"/api/v1/pipelines/{slow['id']}/run")
        wait_for(lambda: latest_run(client, slow["id"])["rows_read"] >= 3000, message="the worker to stream rows")
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
    finally:
        if worker.poll() is None:
            worker.kill()

    # The killed worker's transaction is gone: the target is readable and unchanged.
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == seeded
    assert latest_run(client, slow["id"])["status"] == "RUNNING"  # until a runner reaps it

    reaped = helpers.reap_lost_runs(etl, timeout=LEASE_S + 5)
    assert reaped == 1
    run = latest_run(client, slow["id"])
    assert run["status"] == "FAILED" and run["finished_at"] is not None
    assert run["error_message"].startswith("Worker lost: no heartbeat since 20")
    assert client.get(f"/api/v1/pipelines/{slow['id']}").get_json()["status"] == "FAILED"
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == seeded


def test_worker_resumed_after_its_lease_expired_cannot_commit(etl, client, create_pipeline, sql, database_url, seeded):
    # About 6 s of streaming: the stop lands mid-stream, never while the worker holds its run row in
    # the commit fence (a frozen fence would keep the reaper's UPDATE waiting on that lock).
    slow = create_pipeline(source_query=slow_film_query(30_000, 1000, 0.2), batch_size=1000)
    worker = start_worker(database_url)
    try:
        client.post(f"/api/v1/pipelines/{slow['id']}/run")
        wait_for(lambda: latest_run(client, slow["id"])["rows_read"] >= 2000, message="the worker to stream rows")
        worker.send_signal(signal.SIGSTOP)
        helpers.reap_lost_runs(etl, timeout=LEASE_S + 5)
        lost = latest_run(client, slow["id"])
        assert lost["status"] == "FAILED"
        worker.send_signal(signal.SIGCONT)
        # Give the resumed worker time to finish its source and reach its commit fence.
        time.sleep(7)
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert latest_run(client, slow["id"]) == lost
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == seeded


def test_commit_fence_refuses_a_run_that_is_no_longer_ours(etl, client, create_pipeline, sql):
    from etl_console.runner.execute import LeaseLost, RunExecution
    from etl_console.runner.queries import claim_run
    from etl_console.runner.runner import ActiveRun

    runner = Runner(etl.database, etl.config)
    pipeline = create_pipeline()
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    with runner.engine.begin() as conn:
        claimed = claim_run(conn, runner.worker_id)
    sql("UPDATE etl_pipeline_runs SET status = 'FAILED', error_message = 'reaped' WHERE id = %s", (str(claimed.run_id),))
    execution = RunExecution(runner, claimed, ActiveRun(claimed.run_id, claimed.pipeline_id))
    committed = []
    with pytest.raises(LeaseLost):
        execution.commit(lambda: committed.append(True), {})
    assert committed == []
    assert latest_run(client, pipeline["id"])["error_message"] == "reaped"
    runner.engine.dispose()


def test_sigkill_during_an_in_database_statement_stops_it_and_leaves_no_shadow(
        etl, client, create_pipeline, sql, database_url, seeded):
    sleeper = create_pipeline(
        source_query="SELECT md5('x')::uuid AS film_id, 't' AS title, 1.0::float8 AS rating FROM pg_sleep(60)")
    statement = ("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                 "AND query LIKE 'INSERT INTO%FROM pg_sleep(60)%'")
    worker = start_worker(database_url)
    try:
        client.post(f"/api/v1/pipelines/{sleeper['id']}/run")
        wait_for(lambda: sql(statement)[0][0], message="the in-database statement")
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
    finally:
        if worker.poll() is None:
            worker.kill()
    # The server notices its client is gone (client_connection_check_interval) instead of sleeping on.
    wait_for(lambda: sql(statement)[0][0] == 0, timeout=15, message="the orphaned statement to stop")
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == seeded

    runner = Runner(etl.database, etl.config).start()  # reaps the lost run; the next load sweeps
    try:
        wait_for(lambda: latest_run(client, sleeper["id"])["status"] == "FAILED", timeout=20, message="the reap")
        follow_up = create_pipeline(source_query=film_rows_query(10, "next"))
        client.post(f"/api/v1/pipelines/{follow_up['id']}/run")
        wait_for(lambda: latest_run(client, follow_up["id"])["status"] == "SUCCESS", message="the next load")
    finally:
        runner.stop()
    assert sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = 'etl_console_shadow' AND c.relkind = 'r'") == [(0,)]
