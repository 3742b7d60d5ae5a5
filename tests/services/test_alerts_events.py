"""Alert events reach the outbox in the transaction that records them, once per event and channel;
freshness breaches and restores once each."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from etl_console.db.models import Pipeline
from etl_console.extensions import etl_of
from etl_console.services import alert_events, freshness

pytestmark = pytest.mark.usefixtures("clean_database")


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def subscribe(sql, pipeline_id: str, events: list[str], name: str = "hook") -> str:
    channel_id = str(uuid.uuid4())
    sql("INSERT INTO etl_alert_channels (id, name, kind, url, enabled) VALUES (%s, %s, 'webhook', "
        "'http://127.0.0.1:9/', true)", (channel_id, f"{name}_{channel_id[:6]}"))
    sql("INSERT INTO etl_pipeline_alerts (pipeline_id, channel_id, events) VALUES (%s, %s, %s)",
        (pipeline_id, channel_id, events))
    return channel_id


def outbox(sql) -> list[tuple]:
    return sql("SELECT event_kind, event_key, payload FROM etl_alert_outbox ORDER BY created_at")


def test_an_event_is_queued_once_per_subscribed_channel_and_only_when_committed(engine, create_pipeline, sql):
    pipeline = create_pipeline()
    subscribe(sql, pipeline["id"], ["run.failed"], "a")
    subscribe(sql, pipeline["id"], ["run.recovered"], "b")  # not subscribed to run.failed
    run_id = str(uuid.uuid4())
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, finished_at, error_message, rows_read, rows_written, trigger) "
        "VALUES (%s, %s, 'FAILED', now(), 'boom', 0, 0, 'manual')", (run_id, pipeline["id"]))
    with Session(engine) as session:
        alert_events.run_failed_finally(session, pipeline_id=pipeline["id"], run_id=run_id, error="boom")
        session.rollback()
    assert outbox(sql) == []
    for _ in range(2):  # a second emit of the same event adds nothing
        with Session(engine) as session, session.begin():
            alert_events.run_failed_finally(session, pipeline_id=pipeline["id"], run_id=run_id, error="boom")
    (kind, key, payload), = outbox(sql)
    assert kind == "run.failed" and key == f"run.failed:{run_id}"
    assert payload["pipeline"] == {"id": pipeline["id"], "name": pipeline["name"],
                                   "target_table": "analytics.film_dim", "status": "IDLE"}
    assert payload["run"]["id"] == run_id and payload["run"]["error"] == "boom" and payload["error"] == "boom"
    assert payload["links"]["run"] == f"/pipelines/{pipeline['id']}/runs/{run_id}"
    assert payload["idempotency_key"] == key and payload["occurred_at"].endswith("Z")


def test_freshness_breaches_once_and_restores_once(engine, create_pipeline, sql):
    pipeline = create_pipeline()
    subscribe(sql, pipeline["id"], ["freshness.breached", "freshness.restored"])
    sql("UPDATE etl_pipelines SET freshness_minutes = 5, freshness_set_at = now() WHERE id = %s", (pipeline["id"],))

    def check():
        with Session(engine) as session, session.begin():
            return freshness.check(session)

    assert check() == ([], [])  # set a moment ago: fresh
    # The last success finished 10 minutes ago: stale, alerted once however often the step runs.
    sql("UPDATE etl_pipelines SET last_success_at = now() - interval '10 minutes' WHERE id = %s", (pipeline["id"],))
    breached, _ = check()
    assert [str(i) for i in breached] == [pipeline["id"]]
    assert check() == ([], []) and check() == ([], [])
    with Session(engine) as session:
        stale = session.scalars(select(Pipeline.name).where(freshness.stale_condition())).all()
    assert stale == [pipeline["name"]]
    # A success arrives: restored once, in the run's transaction.
    run_id = str(uuid.uuid4())
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, finished_at, rows_read, rows_written, trigger) VALUES (%s, %s, 'SUCCESS', now(), 0, 0, 'manual')",
        (run_id, pipeline["id"]))
    with Session(engine) as session, session.begin():
        alert_events.run_finished(session, pipeline_id=pipeline["id"], run_id=run_id, succeeded=True)
    assert check() == ([], [])
    kinds = [row[0] for row in outbox(sql)]
    assert kinds == ["freshness.breached", "freshness.restored"]
    keys = {row[1] for row in outbox(sql)}
    assert len(keys) == 2


def test_a_pipeline_never_run_is_stale_counting_from_when_freshness_was_set(engine, create_pipeline, sql):
    pipeline = create_pipeline()
    subscribe(sql, pipeline["id"], ["freshness.breached"])
    sql("UPDATE etl_pipelines SET freshness_minutes = 1, freshness_set_at = now() - interval '2 minutes' "
        "WHERE id = %s", (pipeline["id"],))
    with Session(engine) as session, session.begin():
        breached, _ = freshness.check(session)
    assert [str(i) for i in breached] == [pipeline["id"]]
    (kind, _, payload), = outbox(sql)
    assert payload["freshness"]["last_success_at"] is None and payload["freshness"]["freshness_minutes"] == 1


def test_first_success_after_failures_is_a_recovery_and_a_cancel_is_not_a_failure(engine, create_pipeline, sql):
    pipeline = create_pipeline()
    subscribe(sql, pipeline["id"], ["run.failed", "run.recovered"])

    def finish(status: str, error: str | None = None) -> str:
        run_id = str(uuid.uuid4())
        sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, error_message, rows_read, rows_written, trigger) "
            "VALUES (%s, %s, %s, clock_timestamp(), clock_timestamp(), %s, 0, 0, 'manual')", (run_id, pipeline["id"], status, error))
        with Session(engine) as session, session.begin():
            alert_events.run_finished(session, pipeline_id=pipeline["id"], run_id=run_id,
                                      succeeded=status == "SUCCESS", error=error)
        return run_id

    finish("SUCCESS")
    failed = finish("FAILED", "boom")
    finish("FAILED", "Run cancelled by a pause after 0 rows; the target keeps its previous contents")
    recovered = finish("SUCCESS")
    finish("SUCCESS")
    assert [(row[0], row[1]) for row in outbox(sql)] == [
        ("run.failed", f"run.failed:{failed}"), ("run.recovered", f"run.recovered:{recovered}")]


def test_the_success_of_a_retry_is_no_recovery(engine, create_pipeline, sql):
    """A failure that was retried never alerted run.failed; its retry's success recovers nothing."""
    pipeline = create_pipeline()
    subscribe(sql, pipeline["id"], ["run.failed", "run.recovered"])
    failed, retry = str(uuid.uuid4()), str(uuid.uuid4())
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, error_message, rows_read,"
        " rows_written, trigger) VALUES (%s, %s, 'FAILED', clock_timestamp(), clock_timestamp(), 'boom', 0, 0, 'manual')",
        (failed, pipeline["id"]))
    with Session(engine) as session, session.begin():
        alert_events.run_finished(session, pipeline_id=pipeline["id"], run_id=failed, succeeded=False, error="boom",
                                  retry_follows=True)
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read, rows_written,"
        " trigger, attempt, retry_of) VALUES (%s, %s, 'SUCCESS', clock_timestamp(), clock_timestamp(), 0, 0, 'retry',"
        " 2, %s)", (retry, pipeline["id"], failed))
    with Session(engine) as session, session.begin():
        alert_events.run_finished(session, pipeline_id=pipeline["id"], run_id=retry, succeeded=True)
    assert outbox(sql) == []


def test_many_runners_checking_freshness_at_once_breach_once(engine, create_pipeline, sql):
    import threading

    pipelines = [create_pipeline() for _ in range(5)]
    for pipeline in pipelines:
        subscribe(sql, pipeline["id"], ["freshness.breached"])
    sql("UPDATE etl_pipelines SET freshness_minutes = 1, last_success_at = now() - interval '1 hour'")
    barrier = threading.Barrier(8)
    breached: list = []

    def runner_step():
        barrier.wait()
        for _ in range(5):
            with Session(engine) as session, session.begin():
                breached.extend(freshness.check(session)[0])

    threads = [threading.Thread(target=runner_step) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(str(i) for i in breached) == sorted(p["id"] for p in pipelines)
    assert sql("SELECT count(*) FROM etl_alert_outbox WHERE event_kind = 'freshness.breached'") == [(5,)]


def test_finished_deliveries_older_than_the_retention_are_deleted(app, engine, create_pipeline, sql):
    import threading

    from etl_console.runner.alert_sender import AlertSender

    channel_id = subscribe(sql, create_pipeline()["id"], ["run.failed"])
    sql("INSERT INTO etl_alert_outbox (id, event_key, event_kind, channel_id, payload, status, attempts, created_at) "
        "VALUES (gen_random_uuid(), 'old', 'run.failed', %(c)s, '{}', 'DELIVERED', 1, now() - interval '31 days'),"
        "       (gen_random_uuid(), 'old-pending', 'run.failed', %(c)s, '{}', 'PENDING', 9, now() - interval '31 days'),"
        "       (gen_random_uuid(), 'recent', 'run.failed', %(c)s, '{}', 'FAILED', 3, now() - interval '29 days')",
        {"c": channel_id})
    AlertSender(engine, etl_of(app).config, "test", threading.Event()).check_freshness()
    assert sorted(sql("SELECT event_key FROM etl_alert_outbox")) == [("old-pending",), ("recent",)]
