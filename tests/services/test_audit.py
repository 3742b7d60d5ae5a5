"""The audit log's service: one row per change in the change's own transaction, secrets redacted,
append-only in the database, and a daily prune that only removes old rows and records itself."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from etl_console.extensions import etl_of
from etl_console.services import audit


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def audit_rows(sql, where: str = "TRUE", params=None):
    return sql(f"SELECT actor, actor_kind, action, object_id, before, after FROM etl_audit_log WHERE {where} "
               "ORDER BY id", params)


def test_record_commits_with_the_change_and_redacts_secrets(engine, sql):
    with audit.acting_as(audit.Actor("ci-bot", "token", "10.0.0.7", "req-1")), Session(engine) as session:
        audit.record(session, "connection.patch", object_type="connection", object_id="c1", object_name="prod",
                     before={"host": "a", "password": "old-secret"}, after={"host": "b", "nested": {"api_token": "x"}})
        session.commit()
    rows = sql("SELECT actor, actor_kind, client_addr, request_id, before, after FROM etl_audit_log")
    assert rows == [("ci-bot", "token", "10.0.0.7", "req-1", {"host": "a", "password": "***"},
                     {"host": "b", "nested": {"api_token": "***"}})]


def test_a_rolled_back_change_leaves_no_row(engine, sql):
    with Session(engine) as session:
        audit.record(session, "pipeline.patch", object_type="pipeline", object_id="p1")
        session.rollback()
    assert audit_rows(sql) == []


def test_outside_a_request_the_actor_is_system(engine, sql):
    with Session(engine) as session:
        audit.record(session, "pipeline.run", object_type="pipeline", object_id="p1")
        session.commit()
    assert audit_rows(sql)[0][:2] == ("system", "system")


@pytest.mark.parametrize("statement", [
    "UPDATE etl_audit_log SET actor = 'someone else'",
    "DELETE FROM etl_audit_log",
    "TRUNCATE etl_audit_log",
    # Setting the prune's variable by hand does not open today's rows either.
    "SELECT set_config('etl.audit_prune_before', now()::text, true); DELETE FROM etl_audit_log",
])
def test_the_services_connection_cannot_change_or_remove_rows(engine, sql, statement):
    with Session(engine) as session:
        audit.record(session, "pipeline.create", object_type="pipeline", object_id="p1")
        session.commit()
    with engine.connect() as connection, pytest.raises(DBAPIError, match="append-only"):
        connection.exec_driver_sql(statement)
    assert audit_rows(sql)[0][0] == "system"
    assert len(audit_rows(sql)) == 1


def test_prune_removes_only_old_rows_and_records_itself(engine, sql):
    sql("INSERT INTO etl_audit_log (at, actor, actor_kind, action, object_type, object_id) VALUES "
        "(now() - interval '400 days', 'old', 'system', 'pipeline.run', 'pipeline', 'old'), "
        "(now() - interval '300 days', 'recent', 'system', 'pipeline.run', 'pipeline', 'recent')")
    with Session(engine) as session:
        assert audit.prune(session, 365) == 1
        session.commit()
    rows = audit_rows(sql)
    assert [row[0] for row in rows] == ["recent", "system"]
    assert rows[1][2] == "audit.prune" and rows[1][5] == {"retention_days": 365, "removed": 1}


def test_the_daily_prune_runs_once_across_competing_runners(engine, sql):
    barrier, results = threading.Barrier(3), []

    def prune():
        with Session(engine) as session, session.begin():  # the runner's unit of work commits
            barrier.wait()
            results.append(audit.prune_if_due(session, 365))

    threads = [threading.Thread(target=prune) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results, key=lambda value: value is None) == [0, None, None]
    assert len(audit_rows(sql, "action = 'audit.prune'")) == 1
    with Session(engine) as session:  # a day has not passed
        assert audit.prune_if_due(session, 365) is None
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM etl_audit_log")) == 1


def test_a_runner_prunes_daily_with_the_configured_retention(app, sql):
    from dataclasses import replace

    from etl_console.runner.runner import Runner

    sql("INSERT INTO etl_audit_log (at, actor, actor_kind, action, object_type) VALUES "
        "(now() - interval '40 days', 'old', 'system', 'pipeline.run', 'pipeline'), "
        "(now() - interval '20 days', 'kept', 'system', 'pipeline.run', 'pipeline')")
    config = replace(etl_of(app).config, audit_retention_days=30)
    runner = Runner(etl_of(app).database, config)  # not started: the test calls its step
    try:
        assert runner.prune_audit_log() == 1
        assert runner.prune_audit_log() is None  # done for today
    finally:
        runner.engine.dispose()
    assert [row[0] for row in audit_rows(sql)] == ["kept", "system"]


def test_a_change_that_fails_at_commit_leaves_no_row(app, client, create_pipeline, engine, sql, monkeypatch):
    """The name check skipped, so the unique index refuses the rename only at COMMIT: after the
    change and its audit row were both written in the transaction."""
    from etl_console.services import pipelines
    from etl_console.services.errors import NameTaken

    create_pipeline(name="first")
    second = create_pipeline(name="second")
    monkeypatch.setattr(pipelines, "_check", lambda *args, **kwargs: None)
    with Session(engine) as session, pytest.raises(NameTaken):
        pipelines.update_pipeline(session, ["analytics.film_dim"], second["id"], {"name": "first"})
    assert [row[2] for row in audit_rows(sql)] == ["pipeline.create", "pipeline.create"]
    assert sql("SELECT name FROM etl_pipelines ORDER BY name") == [("first",), ("second",)]
