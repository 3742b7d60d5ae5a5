"""A queued run wakes idle runners through LISTEN/NOTIFY, on any process, long before their next poll."""
from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.runner.helpers import film_rows_query, start_worker


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}  # no runner in this process: only the separate worker can claim


def test_a_separate_worker_claims_at_once_although_it_polls_once_a_minute(client, create_pipeline, database_url, sql):
    worker = start_worker(database_url, poll_s="60", heartbeat_s="60", reconcile_after_run="false")
    try:
        wait_for(lambda: sql("SELECT count(*) FROM etl_runners")[0][0] > 0, timeout=30, message="the worker")
        # Its first poll is over: from now on only a notification can make it claim within the minute.
        pipeline = create_pipeline(source_query=film_rows_query(10))
        wait_for(lambda: sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                             "'etl-console runner listen'")[0][0] > 0, timeout=30, message="the worker to listen")
        assert client.post(f"/api/v1/pipelines/{pipeline['id']}/run").status_code == 200
        claimed = wait_for(
            lambda: sql("SELECT claimed_at - started_at FROM etl_pipeline_runs WHERE pipeline_id = %s "
                        "AND claimed_at IS NOT NULL", (pipeline["id"],)),
            timeout=20, message="the claim",
        )
        assert claimed[0][0].total_seconds() < 20  # a poll would have taken up to 60 s
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_notification_is_sent_only_when_the_request_commits(client, create_pipeline, dsn):
    import select

    import psycopg2

    listener = psycopg2.connect(dsn)
    listener.autocommit = True
    listener.cursor().execute("LISTEN etl_runs_queued")
    try:
        pipeline = create_pipeline(source_query=film_rows_query(10))
        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
        assert select.select([listener], [], [], 5)[0]
        listener.poll()
        assert [notify.channel for notify in listener.notifies] == ["etl_runs_queued"]
        listener.notifies.clear()
        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")  # idempotent while RUNNING: nothing queued
        select.select([listener], [], [], 0.5)
        listener.poll()
        assert listener.notifies == []
    finally:
        listener.close()
