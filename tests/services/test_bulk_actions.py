"""Bulk Pause/Run and the list's keyset pages at the service level: concurrent bulk runs queue one
run per pipeline, and pages stay exact while pipelines are added between them."""
from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from etl_console.extensions import etl_of
from etl_console.services import bulk_actions, pipeline_list


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}  # queued runs stay RUNNING for the test to count


def seed(sql, names: list[str]) -> list[uuid.UUID]:
    rows = sql(
        """
        INSERT INTO etl_pipelines (id, name, type, mode, enabled, status, target_table, batch_size, source_query)
        SELECT gen_random_uuid(), name, 'SQL', 'full', true, 'IDLE', 'analytics.film_dim', 1000,
               'SELECT id AS film_id, title, rating FROM content.film_work'
        FROM unnest(%(names)s::text[]) AS name
        RETURNING id
        """,
        {"names": names},
    )
    return [uuid.UUID(str(pipeline_id)) for (pipeline_id,) in rows]


def test_four_concurrent_bulk_runs_queue_one_run_per_pipeline(app, sql):
    ids = seed(sql, [f"b_{i:02d}" for i in range(20)])
    engine = etl_of(app).database.engine
    barrier, outcomes = threading.Barrier(4), []

    def run_all(order):
        barrier.wait()
        outcomes.append(bulk_actions.run_many(sessionmaker(engine), order))

    threads = [threading.Thread(target=run_all, args=(ids[k:] + ids[:k],)) for k in (0, 5, 10, 15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 4
    assert sum(outcome.queued_runs for outcome in outcomes) == 20
    assert sum(outcome.counts.get(bulk_actions.ALREADY_RUNNING, 0) for outcome in outcomes) == 60
    per_pipeline = sql("SELECT pipeline_id, count(*) FROM etl_pipeline_runs GROUP BY pipeline_id")
    assert len(per_pipeline) == 20 and {count for _, count in per_pipeline} == {1}


def test_pause_many_counts_a_repeated_or_unknown_id_once(app, sql):
    first, second = seed(sql, ["p_one", "p_two"])
    unknown = uuid.uuid4()
    outcome = bulk_actions.pause_many(sessionmaker(etl_of(app).database.engine),
                                      [first, first, second, unknown])
    assert outcome.summary() == "2 paused, 1 not found"
    assert sql("SELECT DISTINCT status FROM etl_pipelines") == [("PAUSED",)]


def test_keyset_pages_stay_exact_while_pipelines_are_added(app, sql):
    seed(sql, [f"k_{i:02d}" for i in range(0, 40, 2)])  # k_00, k_02, ... k_38
    with Session(etl_of(app).database.engine) as session:
        page = pipeline_list.list_page(session, limit=5)
        seen = [p.name for p in page.pipelines]
        seed(sql, ["k_01", "k_39"])  # one before the cursor, one after it
        while page.next_after is not None:
            page = pipeline_list.list_page(session, after=page.next_after, limit=5)
            seen += [p.name for p in page.pipelines]
    # No page repeats or skips a row (OFFSET paging would show k_08 twice): the earlier newcomer is
    # behind the cursor, the later one is found.
    assert seen == [f"k_{i:02d}" for i in range(0, 40, 2)] + ["k_39"]
