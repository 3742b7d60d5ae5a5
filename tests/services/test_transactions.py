"""Who owns a transaction: the caller (a request, the runner, the CLI). Services flush and raise;
a change the database refuses becomes the domain error without spoiling the caller's transaction.
(That services hold no commit() or rollback() at all: tests/test_layering.py.)"""
from __future__ import annotations

import threading
import time

import psycopg2
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from etl_console.db.models import Pipeline
from etl_console.services import pipelines
from etl_console.services.errors import NameTaken
from tests.conftest import FILM_DIM_QUERY


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def _new_pipeline(name: str) -> dict:
    return {"name": name, "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}


def test_a_name_taken_after_the_check_is_name_taken_and_the_callers_transaction_goes_on(engine, dsn, sql):
    """Another transaction inserts the name, uncommitted: the service's check cannot see it, its
    insert waits on the unique index, and the other transaction's commit makes it a refusal."""
    other = psycopg2.connect(dsn)
    with other.cursor() as cursor:
        cursor.execute(
            "INSERT INTO etl_pipelines (id, name, type, mode, enabled, status, target_table, batch_size, source_query) "
            "VALUES (gen_random_uuid(), 'contested', 'SQL', 'full', true, 'IDLE', 'analytics.film_dim', 1000, %s)",
            (FILM_DIM_QUERY,))
    outcome: list = []

    def create():
        with Session(engine) as session:
            pipelines.create_pipeline(session, ["analytics.film_dim"], _new_pipeline("first_of_two"))
            try:
                pipelines.create_pipeline(session, ["analytics.film_dim"], _new_pipeline("contested"))
            except NameTaken as refused:
                outcome.append(refused)
            # The caller's transaction is still usable and still holds its earlier work.
            outcome.append(session.scalars(select(Pipeline.name).order_by(Pipeline.name)).all())
            session.commit()

    worker = threading.Thread(target=create)
    worker.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not sql(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO etl_pipelines%%'"):
        time.sleep(0.02)
    other.commit()
    other.close()
    worker.join(10)
    assert isinstance(outcome[0], NameTaken)
    assert outcome[1] == ["contested", "first_of_two"]
    assert sql("SELECT name FROM etl_pipelines ORDER BY name") == [("contested",), ("first_of_two",)]
    assert sql("SELECT action, object_name FROM etl_audit_log ORDER BY id") == [("pipeline.create", "first_of_two")]


def test_a_service_leaves_the_commit_to_its_caller(engine, sql):
    with Session(engine) as session:
        pipelines.create_pipeline(session, ["analytics.film_dim"], _new_pipeline("never_committed"))
        assert session.scalar(text("SELECT count(*) FROM etl_pipelines")) == 1
    assert sql("SELECT count(*) FROM etl_pipelines") == [(0,)]
    assert sql("SELECT count(*) FROM etl_audit_log") == [(0,)]
