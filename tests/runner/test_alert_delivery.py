"""Alerts reach a real receiver on loopback from the runners: signed, once each, through failures of
the receiver, without a hung receiver delaying runs, and without duplicates across runners."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from etl_console.runner.runner import Runner
from etl_console.services import alert_events, freshness
from tests.alert_receiver import SECRET, Receiver
from tests.api.conftest import body_of
from tests.conftest import FILM_DIM_QUERY, finished_run, wait_for

# Division by zero at run time (the save-time check plans the query, it does not run it).
FAILING_QUERY = "SELECT id AS film_id, title, (rating / (rating - rating))::float8 AS rating FROM content.film_work"
ALL_EVENTS = list(alert_events.EVENT_KINDS)


@pytest.fixture
def app_overrides():
    return {"alert_backoff_initial_s": 0.05, "alert_backoff_max_s": 0.2, "alert_poll_s": 0.1,
            "freshness_check_s": 0.2}


def subscribe(client, pipeline_id: str, url: str, events=ALL_EVENTS, name: str | None = None, **alerts) -> dict:
    channel = body_of(client.post("/api/v1/alert-channels/", json={
        "name": name or f"hook_{uuid.uuid4().hex[:6]}", "kind": "webhook", "url": url, "secret": SECRET}), 201)
    body_of(client.put(f"/api/v1/pipelines/{pipeline_id}/alerts",
                       json={"channels": [{"channel_id": channel["id"], "events": events}], **alerts}), 200)
    return channel


def run(client, pipeline_id: str) -> dict:
    assert client.post(f"/api/v1/pipelines/{pipeline_id}/run").status_code == 200
    return finished_run(client, pipeline_id)


def test_a_failure_and_its_recovery_arrive_once_each_through_a_receiver_failing_three_times(
        client, create_pipeline, sql):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    with Receiver(fail_first=3) as receiver:
        subscribe(client, pipeline["id"], receiver.url)
        failed = run(client, pipeline["id"])
        assert failed["status"] == "FAILED" and "division by zero" in failed["error_message"]
        body_of(client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"source_query": FILM_DIM_QUERY}), 200)
        recovered = run(client, pipeline["id"])
        assert recovered["status"] == "SUCCESS"
        wait_for(lambda: len(receiver.delivered) == 2, timeout=30, message="both alerts delivered")
        assert len(receiver.attempts) == 8  # 3 refusals + 1 delivery, each
        by_kind = {event["event"]: event for event in receiver.events()}
        assert set(by_kind) == {"run.failed", "run.recovered"}
        assert by_kind["run.failed"]["run"]["id"] == failed["id"]
        assert "division by zero" in by_kind["run.failed"]["error"]
        assert by_kind["run.failed"]["pipeline"]["name"] == pipeline["name"]
        assert by_kind["run.failed"]["links"]["run"] == \
            f"http://127.0.0.1:8000/pipelines/{pipeline['id']}/runs/{failed['id']}"
        assert by_kind["run.recovered"]["run"]["id"] == recovered["id"]
        assert all(record["signed"] for record in receiver.attempts)
        keys = [record["headers"]["X-Etl-Delivery"] for record in receiver.delivered]
        assert sorted(keys) == sorted([f"run.failed:{failed['id']}", f"run.recovered:{recovered['id']}"])
    deliveries = body_of(client.get("/api/v1/alert-deliveries"), 200)
    assert {(d["event"], d["status"], d["attempts"], d["last_http_status"]) for d in deliveries} == {
        ("run.failed", "DELIVERED", 4, 204), ("run.recovered", "DELIVERED", 4, 204)}


def test_a_hung_receiver_does_not_delay_runs(client, create_pipeline, app):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    with Receiver(hang=True) as receiver:
        subscribe(client, pipeline["id"], receiver.url)
        assert run(client, pipeline["id"])["status"] == "FAILED"
        wait_for(lambda: receiver.attempts, timeout=20, message="the sender to reach the receiver")
        # The receiver holds the delivery; runs go on, and so do requests.
        body_of(client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"source_query": FILM_DIM_QUERY}), 200)
        assert run(client, pipeline["id"])["status"] == "SUCCESS"
        assert run(client, pipeline["id"])["status"] == "SUCCESS"
        assert receiver.delivered == []  # still hanging all along
        receiver.release()
        wait_for(lambda: {e["event"] for e in receiver.events()} == {"run.failed", "run.recovered"},
                 timeout=30, message="the alerts once the receiver answers")


def test_four_runners_send_each_delivery_once(etl, client, create_pipeline, sql):
    pipeline = create_pipeline()
    with Receiver() as receiver:
        subscribe(client, pipeline["id"], receiver.url)
        runners = [Runner(etl.database, etl.config, name=f"alerts{i}").start() for i in range(3)]
        try:
            # 60 events at once, queued in one transaction, as 60 run failures would be.
            run_ids = [str(uuid.uuid4()) for _ in range(60)]
            sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, finished_at, error_message, rows_read,"
                " rows_written, trigger) SELECT CAST(id AS uuid), %s, 'FAILED', now(), 'boom', 0, 0, 'manual'"
                " FROM unnest(CAST(%s AS text[])) AS id", (pipeline["id"], run_ids))
            with Session(etl.database.engine) as session, session.begin():
                for run_id in run_ids:
                    alert_events.run_failed_finally(session, pipeline_id=pipeline["id"], run_id=run_id, error="boom")
            wait_for(lambda: len(receiver.delivered) >= 60, timeout=60, message="60 deliveries")
            wait_for(lambda: sql("SELECT count(*) FROM etl_alert_outbox WHERE status <> 'DELIVERED'")[0][0] == 0,
                     timeout=20, message="every delivery recorded")
        finally:
            for runner in runners:
                runner.stop(timeout=10)
        keys = [record["headers"]["X-Etl-Delivery"] for record in receiver.attempts]
        assert sorted(keys) == sorted(f"run.failed:{run_id}" for run_id in run_ids)  # each sent exactly once


def test_freshness_breach_and_restore_are_delivered_once_each(etl, client, create_pipeline, sql):
    pipeline = create_pipeline()
    with Receiver() as receiver:
        subscribe(client, pipeline["id"], receiver.url, events=["freshness.breached", "freshness.restored"],
                  freshness_minutes=5)
        # Its last success finished 10 minutes ago (as if the schedule stopped firing).
        sql("UPDATE etl_pipelines SET last_success_at = now() - interval '10 minutes' WHERE id = %s",
            (pipeline["id"],))
        wait_for(lambda: receiver.events("freshness.breached"), timeout=20, message="the breach alert")
        assert body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/alerts"), 200)["stale"] is True
        metrics = client.get("/metrics").get_data(as_text=True)
        assert f'etl_pipeline_stale{{pipeline="{pipeline["name"]}"}} 1.0' in metrics
        assert run(client, pipeline["id"])["status"] == "SUCCESS"
        wait_for(lambda: receiver.events("freshness.restored"), timeout=20, message="the restore alert")
        wait_for(lambda: sql("SELECT count(*) FROM etl_alert_outbox WHERE status = 'DELIVERED'")[0][0] == 2,
                 timeout=10, message="both recorded")
        # Further freshness rounds (any runner's) find nothing to alert.
        with Session(etl.database.engine) as session, session.begin():
            assert freshness.check(session) == ([], [])
        assert sql("SELECT event_kind FROM etl_alert_outbox ORDER BY created_at") == [
            ("freshness.breached",), ("freshness.restored",)]
        assert [e["event"] for e in receiver.events()] == ["freshness.breached", "freshness.restored"]
        assert body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/alerts"), 200)["stale"] is False



def test_a_pipeline_failing_through_its_retries_alerts_once_then_auto_pauses(client, create_pipeline):
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    with Receiver() as receiver:
        subscribe(client, pipeline["id"], receiver.url)
        body_of(client.put(f"/api/v1/pipelines/{pipeline['id']}/retries", json={
            "max_retries": 2, "retry_initial_delay_s": 0.05, "retry_max_delay_s": 0.1, "retry_jitter": 0,
            "auto_pause_after_failures": 1}), 200)
        assert client.post(f"/api/v1/pipelines/{pipeline['id']}/run").status_code == 200
        wait_for(lambda: {e["event"] for e in receiver.events()} == {"run.failed", "pipeline.auto_paused"},
                 timeout=60, message="the final failure and the auto-pause alerts")
        runs = body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/runs"), 200)
        assert [run["status"] for run in runs] == ["FAILED"] * 3  # the run and its two retries
        (failed,) = receiver.events("run.failed")
        assert failed["run"]["id"] == runs[0]["id"]  # the last attempt's failure, alerted once
        assert receiver.events("pipeline.auto_paused")[0]["pipeline"]["status"] == "PAUSED"
        assert all(record["signed"] for record in receiver.attempts)


@pytest.mark.parametrize("app_overrides", [{"alert_max_age_s": 0.5, "alert_backoff_initial_s": 0.05,
                                            "alert_poll_s": 0.1, "alert_connect_timeout_s": 0.5}])
def test_a_delivery_nobody_accepts_fails_after_the_max_age(client, create_pipeline, app_overrides):
    failures_before = _failures_total(client)
    pipeline = create_pipeline(source_query=FAILING_QUERY)
    subscribe(client, pipeline["id"], "http://127.0.0.1:9/nobody-listens")
    assert run(client, pipeline["id"])["status"] == "FAILED"
    (delivery,) = wait_for(lambda: body_of(client.get("/api/v1/alert-deliveries?status=FAILED"), 200), timeout=30,
                           message="the delivery to give up")
    assert delivery["attempts"] >= 2 and delivery["last_http_status"] is None
    assert "Connection" in delivery["last_error"] or "refused" in delivery["last_error"]
    assert _failures_total(client) == failures_before + 1
    assert "etl_alert_deliveries_failed 1.0" in client.get("/metrics").get_data(as_text=True)


def _failures_total(client) -> float:
    """This process's counter (other tests in the session may have counted before)."""
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith("etl_alert_delivery_failures_total "):
            return float(line.split()[1])
    return 0.0
