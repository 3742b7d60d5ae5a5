"""Retries with backoff, one alert after the last attempt, and auto-pause, through the served API."""
from __future__ import annotations

import random
import uuid
from datetime import datetime

from etl_console.services.run_outcomes import backoff_delay_s
from tests.conftest import FILM_DIM_QUERY, finished_run, wait_for
from tests.runner.helpers import slow_film_query

BASE = "/api/v1/pipelines"
# Fails when the run reads it, not when the pipeline is saved.
FAILING_QUERY = "SELECT md5('x')::uuid AS film_id, 't' AS title, (1 / (random() * 0)::int)::float8 AS rating"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _detail(client, pipeline_id: str, run_id: str) -> dict:
    response = client.get(f"{BASE}/{pipeline_id}/runs/{run_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _policy(client, pipeline_id: str, **policy) -> dict:
    response = client.put(f"{BASE}/{pipeline_id}/retries", json=policy)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _runs(client, pipeline_id: str) -> list[dict]:
    return client.get(f"{BASE}/{pipeline_id}/runs").get_json()


def _subscribe(sql, pipeline_id: str, events: tuple[str, ...]) -> None:
    """An alert channel subscribed to events: the outbox then shows what was alerted."""
    channel = str(uuid.uuid4())
    sql("INSERT INTO etl_alert_channels (id, name, kind, url, enabled) VALUES (%s, %s, 'webhook', "
        "'http://127.0.0.1:9/hook', true)", (channel, f"c_{channel[:8]}"))
    sql("INSERT INTO etl_pipeline_alerts (pipeline_id, channel_id, events) VALUES (%s, %s, %s)",
        (pipeline_id, channel, list(events)))


def _alerted(sql, pipeline_id: str) -> list[tuple[str, str]]:
    return [(kind, str(run)) for kind, run in sql(
        "SELECT event_kind, run_id FROM etl_alert_outbox WHERE pipeline_id = %s ORDER BY created_at", (pipeline_id,))]


def test_backoff_grows_by_the_factor_up_to_the_cap_and_jitter_stays_within_its_fraction():
    assert [backoff_delay_s(n, 0.2, 3, 2.0, 0) for n in (1, 2, 3, 4)] == [0.2, 0.6000000000000001, 1.8, 2.0]
    rand = random.Random(7)
    delays = [backoff_delay_s(2, 10, 2, 100, 0.25, rand) for _ in range(200)]
    assert min(delays) >= 15 and max(delays) <= 25 and max(delays) - min(delays) > 5


def test_a_failed_run_is_retried_with_backoff_then_alerts_once(client, create_pipeline, sql):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    _policy(client, pipeline["id"], max_retries=2, retry_initial_delay_s=0.3, retry_backoff_factor=2,
            retry_max_delay_s=10, retry_jitter=0)
    _subscribe(sql, pipeline["id"], ("run.failed",))
    client.post(f"{BASE}/{pipeline['id']}/run")

    runs = wait_for(lambda: (r := _runs(client, pipeline["id"])) and len(r) == 3 and r[0]["status"] == "FAILED" and r,
                    timeout=60, message="the run and its two retries to fail")
    first, second, third = (_detail(client, pipeline["id"], run["id"]) for run in reversed(runs))
    assert [run["attempt"] for run in (first, second, third)] == [1, 2, 3]
    assert [run["trigger"] for run in (first, second, third)] == ["manual", "retry", "retry"]
    assert first["retry_of"] is None and second["retry_of"] == first["id"] and third["retry_of"] == second["id"]
    assert first["retried_by"] == second["id"] and third["retried_by"] is None
    assert all("division by zero" in run["error_message"] for run in (first, second, third))
    # Each retry waited at least its delay: 0.3 s, then 0.3 × 2.
    assert (_at(second["claimed_at"]) - _at(first["finished_at"])).total_seconds() >= 0.3
    assert (_at(third["claimed_at"]) - _at(second["finished_at"])).total_seconds() >= 0.6
    assert _at(third["not_before"]) >= _at(second["finished_at"])
    assert client.get(f"{BASE}/{pipeline['id']}").get_json()["status"] == "FAILED"
    # One alert, for the last attempt: the failed attempts that were retried alert nothing.
    assert _alerted(sql, pipeline["id"]) == [("run.failed", third["id"])]
    assert client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["consecutive_failures"] == 1


def test_a_fix_made_while_a_retry_waits_is_what_the_retry_runs(client, create_pipeline, sql):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    _policy(client, pipeline["id"], max_retries=3, retry_initial_delay_s=1.5, retry_jitter=0)
    _subscribe(sql, pipeline["id"], ("run.failed", "run.recovered"))
    client.post(f"{BASE}/{pipeline['id']}/run")
    waiting = wait_for(lambda: client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["pending_retry"],
                       timeout=30, message="a retry to be queued")
    assert waiting["attempt"] == 2
    assert _detail(client, pipeline["id"], waiting["run_id"])["queue"]["waiting_for"].startswith(
        "its retry backoff (attempt 2, not before ")
    # While the retry waits the pipeline is FAILED, not RUNNING, so it can be fixed.
    assert client.get(f"{BASE}/{pipeline['id']}").get_json()["status"] == "FAILED"
    assert client.patch(f"{BASE}/{pipeline['id']}", json={"source_query": FILM_DIM_QUERY}).status_code == 200

    run = finished_run(client, pipeline["id"], timeout=60, message="the retry to run")
    assert run["id"] == str(waiting["run_id"]) and run["status"] == "SUCCESS"
    assert client.get(f"{BASE}/{pipeline['id']}").get_json()["status"] == "IDLE"
    # The retried failure never alerted, so its retry's success is no recovery either: nothing sent.
    assert _alerted(sql, pipeline["id"]) == []


def test_a_paused_run_is_not_retried(client, create_pipeline):
    pipeline = create_pipeline(source_query=slow_film_query(100_000, 1000, 0.02), batch_size=1000)
    _policy(client, pipeline["id"], max_retries=3, retry_initial_delay_s=0.1, retry_jitter=0)
    client.post(f"{BASE}/{pipeline['id']}/run")
    wait_for(lambda: _runs(client, pipeline["id"])[0]["rows_read"] >= 2000, message="the run to make progress")
    client.post(f"{BASE}/{pipeline['id']}/pause")
    run = finished_run(client, pipeline["id"], timeout=20, message="the paused run to stop")
    assert "cancelled by a pause" in run["error_message"]
    # A retry would have been queued in the very transaction that recorded the failure.
    assert len(_runs(client, pipeline["id"])) == 1
    assert client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["pending_retry"] is None


def test_a_pause_or_a_manual_run_withdraws_a_waiting_retry(client, create_pipeline):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    _policy(client, pipeline["id"], max_retries=5, retry_initial_delay_s=600, retry_jitter=0)
    client.post(f"{BASE}/{pipeline['id']}/run")
    waiting = wait_for(lambda: client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["pending_retry"],
                       timeout=30, message="a retry to be queued")

    manual = client.post(f"{BASE}/{pipeline['id']}/run")
    assert manual.status_code == 200 and manual.get_json()["status"] == "RUNNING"
    withdrawn = _detail(client, pipeline["id"], waiting["run_id"])
    assert withdrawn["status"] == "FAILED" and withdrawn["error_message"] == \
        "Run cancelled before it started: a retry withdrawn by a manual run"
    newest = _runs(client, pipeline["id"])[0]
    assert _detail(client, pipeline["id"], newest["id"])["attempt"] == 1

    waiting = wait_for(lambda: client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["pending_retry"],
                       timeout=30, message="the manual run's retry to be queued")
    assert client.post(f"{BASE}/{pipeline['id']}/pause").get_json()["status"] == "PAUSED"
    assert "withdrawn by a pause" in _detail(client, pipeline["id"], waiting["run_id"])["error_message"]
    assert all(run["status"] == "FAILED" for run in _runs(client, pipeline["id"]))


def test_auto_pause_after_consecutive_failures_alerts_once(client, create_pipeline, sql):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    _policy(client, pipeline["id"], max_retries=1, retry_initial_delay_s=0.1, retry_jitter=0,
            auto_pause_after_failures=2)
    _subscribe(sql, pipeline["id"], ("run.failed", "pipeline.auto_paused"))

    client.post(f"{BASE}/{pipeline['id']}/run")
    wait_for(lambda: len(_alerted(sql, pipeline["id"])) == 1, timeout=30, message="the first final failure")
    assert client.get(f"{BASE}/{pipeline['id']}").get_json()["status"] == "FAILED"
    client.post(f"{BASE}/{pipeline['id']}/run")
    wait_for(lambda: client.get(f"{BASE}/{pipeline['id']}").get_json()["status"] == "PAUSED", timeout=30,
             message="the auto-pause")
    runs = _runs(client, pipeline["id"])
    assert len(runs) == 4 and all(run["status"] == "FAILED" for run in runs)  # two runs, each retried once
    assert [kind for kind, _ in _alerted(sql, pipeline["id"])] == ["run.failed", "run.failed", "pipeline.auto_paused"]
    assert client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["consecutive_failures"] == 0
    (audited,) = sql("SELECT actor, after FROM etl_audit_log WHERE object_id = %s AND action = 'pipeline.auto_pause'",
                     (pipeline["id"],))
    assert audited[0] == "system" and audited[1]["last_run_id"] == runs[0]["id"]


def test_a_run_whose_worker_was_lost_is_retried(no_runner, etl, client, create_pipeline, sql):
    """No runner thread here: a ghost worker claims the run, then dies."""
    from etl_console.runner.queries import claim_run
    from etl_console.runner.runner import Runner

    pipeline = create_pipeline()
    _policy(client, pipeline["id"], max_retries=1, retry_initial_delay_s=0.2, retry_jitter=0)
    client.post(f"{BASE}/{pipeline['id']}/run")
    ghost = Runner(etl.database, etl.config, name="ghost")
    try:
        with ghost.engine.begin() as conn:
            lost = claim_run(conn, ghost.worker_id)
        sql("UPDATE etl_pipeline_runs SET heartbeat_at = now() - interval '1 hour' WHERE id = %s", (str(lost.run_id),))
        assert ghost.reap() == 1
    finally:
        ghost.engine.dispose()
    retry = _detail(client, pipeline["id"], client.get(f"{BASE}/{pipeline['id']}/retries").get_json()
                    ["pending_retry"]["run_id"])
    assert retry["retry_of"] == str(lost.run_id) and retry["attempt"] == 2
    assert "Worker lost" in _detail(client, pipeline["id"], str(lost.run_id))["error_message"]

    runner = Runner(etl.database, etl.config).start()
    try:
        run = finished_run(client, pipeline["id"], timeout=60, message="the retry to run")
    finally:
        runner.stop(timeout=10)
    assert run["id"] == retry["id"] and run["status"] == "SUCCESS"


def test_a_follow_up_that_fails_never_loses_the_runs_outcome(client, create_pipeline, monkeypatch):
    from etl_console.services import dependencies

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a follow-up")

    monkeypatch.setattr(dependencies, "queue_if_ready", broken)
    pipeline = create_pipeline()
    client.post(f"{BASE}/{pipeline['id']}/run")
    assert finished_run(client, pipeline["id"])["status"] == "SUCCESS"
    assert client.get(f"{BASE}/{pipeline['id']}").get_json()["status"] == "IDLE"


def test_a_run_refused_for_its_configuration_alerts_but_is_not_retried(client, create_pipeline, sql):
    pipeline = create_pipeline()
    _policy(client, pipeline["id"], max_retries=3, retry_initial_delay_s=0.1, retry_jitter=0)
    _subscribe(sql, pipeline["id"], ("run.failed",))
    # Saved before the API refused such queries: the run refuses it, and no retry would help.
    sql("UPDATE etl_pipelines SET source_query = 'DELETE FROM analytics.film_dim' WHERE id = %s", (pipeline["id"],))
    client.post(f"{BASE}/{pipeline['id']}/run")
    run = finished_run(client, pipeline["id"])
    assert run["status"] == "FAILED" and len(_runs(client, pipeline["id"])) == 1
    assert _alerted(sql, pipeline["id"]) == [("run.failed", run["id"])]


def test_disabling_the_pipeline_withdraws_a_waiting_retry(client, create_pipeline):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    _policy(client, pipeline["id"], max_retries=2, retry_initial_delay_s=600, retry_jitter=0)
    client.post(f"{BASE}/{pipeline['id']}/run")
    waiting = wait_for(lambda: client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["pending_retry"],
                       timeout=30, message="a retry to be queued")
    assert client.patch(f"{BASE}/{pipeline['id']}", json={"enabled": False}).get_json()["status"] == "PAUSED"
    assert "withdrawn by disabling the pipeline" in _detail(client, pipeline["id"], waiting["run_id"])["error_message"]
    assert client.get(f"{BASE}/{pipeline['id']}/retries").get_json()["pending_retry"] is None
