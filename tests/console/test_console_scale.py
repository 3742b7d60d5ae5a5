"""No N+1: a list page of 500 pipelines and the page of a pipeline with 100,000 runs each render with a
small, fixed number of SQL statements, and both page through an index at any depth."""
from __future__ import annotations

import json

import pytest

from etl_console.extensions import etl_of
from tests.console.conftest import counting_queries, seed_runs
from tests.console.markup import parse

LIST_QUERIES = 2  # one page of pipelines LEFT JOIN LATERAL (newest run); the counts per status (GROUP BY)
# the pipeline, its latest reconciliation, one history page, the chart's 30 runs (shared with page 1),
# the quality gates panel, the history of changes (audit log), upstreams/downstreams/waiting retry,
# the alert channels to pick from, the pipeline's subscriptions (with the database clock)
PAGE_QUERIES = 9


@pytest.fixture
def app_overrides():
    # No runner: these tests TRUNCATE mid-test, which would deadlock with a runner's claim query.
    return {"START_RUNNER": False}


def seed_pipelines(sql, count: int, runs_each: int) -> None:
    sql(
        """
        INSERT INTO etl_pipelines (id, name, type, mode, enabled, status, target_table, batch_size, source_query)
        SELECT gen_random_uuid(), 'bulk_' || lpad(i::text, 4, '0'), 'SQL', 'full', i %% 5 <> 0,
               (ARRAY['IDLE', 'FAILED', 'PAUSED', 'IDLE'])[1 + i %% 4], 'analytics.film_dim', 1000,
               'SELECT id AS film_id, title, rating FROM content.film_work'
        FROM generate_series(1, %(count)s) AS i
        """,
        {"count": count},
    )
    sql(
        """
        INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read, rows_written,
                                       error_message, worker_id, trigger)
        SELECT gen_random_uuid(), p.id, CASE WHEN r %% 3 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
               now() - make_interval(mins => r), now() - make_interval(mins => r) + interval '2 seconds',
               100 * r, 100 * r, CASE WHEN r %% 3 = 0 THEN 'boom ' || r END, 'seed', 'manual'
        FROM etl_pipelines p, generate_series(1, %(runs)s) AS r
        """,
        {"runs": runs_each},
    )
    sql("ANALYZE etl_pipelines")
    sql("ANALYZE etl_pipeline_runs")


def test_a_list_page_of_500_pipelines_is_two_queries(app, client, sql):
    seed_pipelines(sql, 5, 3)
    with counting_queries(app) as few:
        assert client.get("/?limit=500").status_code == 200
    sql("TRUNCATE etl_pipelines CASCADE")
    seed_pipelines(sql, 500, 20)
    with counting_queries(app) as many:
        response = client.get("/?limit=500")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count('<tr id="p-') == 500
    assert len(many) == len(few) == LIST_QUERIES, many
    # Every row carries its newest run: run 1 of each, 100 rows, one minute ago.
    assert html.count(">100 rows written<") == 500

    with counting_queries(app) as filtered:
        response = client.get("/?status=FAILED&q=bulk_01", headers={"HX-Request": "true", "HX-Target": "pipeline-table"})
    assert response.get_data(as_text=True).count('<tr id="p-') == 25
    assert len(filtered) == LIST_QUERIES


def test_a_deep_list_page_reads_the_name_index_from_its_cursor(app, client, sql):
    """5,000 pipelines: page 60 costs what page 1 does, the same two statements, and the page
    statement walks the unique index on name from the cursor (no sort of every pipeline)."""
    sql(
        """
        INSERT INTO etl_pipelines (id, name, type, mode, enabled, status, target_table, batch_size, source_query)
        SELECT gen_random_uuid(), 'deep_' || lpad(i::text, 5, '0'), 'SQL', 'full', true, 'IDLE',
               'analytics.film_dim', 1000, 'SELECT id AS film_id, title, rating FROM content.film_work'
        FROM generate_series(1, 5000) AS i
        """
    )
    sql("ANALYZE etl_pipelines")
    with counting_queries(app, with_parameters=True) as deep:
        html = client.get("/?after=deep_03000").get_data(as_text=True)
    assert len(deep) == LIST_QUERIES, deep
    assert [name.text for name in parse(html).select("td.name > a[href]")] == [f"deep_{i:05d}" for i in range(3001, 3051)]
    page_statement = next(s for s in deep if "LATERAL" in s[0])
    raw = etl_of(app).database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + page_statement[0], page_statement[1])
        plan = json.dumps(cursor.fetchone()[0])
    finally:
        raw.close()
    assert "etl_pipelines_name_key" in plan and '"Node Type": "Sort"' not in plan, plan


def test_pipeline_page_with_100k_runs_is_a_few_queries_on_any_page(app, client, sql, create_pipeline):
    pipeline = create_pipeline(name="hundred_k")
    seed_runs(sql, pipeline["id"], 100_000)
    url = f"/pipelines/{pipeline['id']}"

    with counting_queries(app) as first:
        response = client.get(url)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.count('<tr id="run-') == 50
    assert len(first) <= PAGE_QUERIES - 1, first  # page 1 also feeds the chart

    # Walk 40 pages deep by cursor: every page costs the same.
    for _ in range(40):
        older = parse(html).first('[href][rel="next"]').attrs["href"]
        html = client.get(older).get_data(as_text=True)
    with counting_queries(app, with_parameters=True) as deep:
        response = client.get(older)
    assert response.get_data(as_text=True).count('<tr id="run-') == 50
    assert len(deep) == PAGE_QUERIES, deep
    assert_index_range_scan(app, next(s for s in deep if ") < (" in s[0]))

    # The page's fragments are one or two statements each.
    for fragment in ("/live", "/history", "/chart", "/reconciliation", "/state"):
        with counting_queries(app) as statements:
            assert client.get(url + fragment, headers={"HX-Request": "true"}).status_code == 200
        assert len(statements) <= 2, (fragment, statements)


def assert_index_range_scan(app, statement) -> None:
    """The keyset page reads ix_etl_pipeline_runs_history from the cursor on: no sort, no seq scan."""
    raw = etl_of(app).database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement[0], statement[1])
        plan = json.dumps(cursor.fetchone()[0])
    finally:
        raw.close()
    assert "ix_etl_pipeline_runs_history" in plan, plan
    assert '"Node Type": "Sort"' not in plan and "Seq Scan" not in plan, plan
