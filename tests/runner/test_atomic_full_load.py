"""Full mode is atomic: readers see the old rows or the new rows, never an empty or partial table,
and everything attached to the target (indexes, constraints, grants, views) survives a load.
How the publish keeps readers from waiting, exchange by exchange, is in test_publish.py."""
from __future__ import annotations

import threading

import psycopg2
import pytest

from tests.runner.helpers import film_rows_query, slow_film_query, target_count


def test_reader_polling_during_a_load_sees_old_or_new_rows_only(client, create_pipeline, run_to_end, sql, dsn):
    old = create_pipeline(source_query=film_rows_query(1500, "old"))
    assert run_to_end(old["id"])["status"] == "SUCCESS"
    new = create_pipeline(source_query=slow_film_query(20_000, 2000, 0.05), batch_size=500)

    seen: list[int] = []
    stop = threading.Event()

    def poll():
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set() and len(seen) < 10_000:
                cur.execute("SELECT count(*) FROM analytics.film_dim")
                seen.append(cur.fetchone()[0])
        conn.close()

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        run = run_to_end(new["id"])
    finally:
        stop.set()
        reader.join(10)
    assert run["status"] == "SUCCESS" and run["rows_written"] == 20_000
    assert seen, "the reader never got an answer"
    assert set(seen) <= {1500, 20_000}, sorted(set(seen))
    assert target_count(sql) == 20_000


def test_failed_run_leaves_previous_rows_and_indexes(client, create_pipeline, run_to_end, sql):
    old = create_pipeline(source_query=film_rows_query(800, "old"))
    run_to_end(old["id"])
    before = sql("SELECT film_id, title, rating FROM analytics.film_dim ORDER BY film_id")
    # Fails at row 5000, after several batches were already streamed into the target.
    failing = create_pipeline(
        source_query="SELECT md5(i::text)::uuid AS film_id, 't' AS title, (1.0 / (i - 5000))::float8 AS rating "
        "FROM generate_series(1, 10000) AS i",
        batch_size=100,
    )
    run = run_to_end(failing["id"])
    assert run["status"] == "FAILED"
    assert "division by zero" in run["error_message"]
    assert sql("SELECT film_id, title, rating FROM analytics.film_dim ORDER BY film_id") == before
    assert sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'analytics' AND tablename = 'film_dim'") == [
        ("film_dim_pkey",)
    ]
    assert client.get(f"/api/v1/pipelines/{failing['id']}").get_json()["status"] == "FAILED"


def test_duplicate_keys_fail_the_run_and_keep_the_previous_load(create_pipeline, run_to_end, sql):
    old = create_pipeline(source_query=film_rows_query(100, "old"))
    run_to_end(old["id"])
    duplicated = create_pipeline(
        source_query="SELECT md5((i % 10)::text)::uuid AS film_id, 't' AS title, 1.0::float8 AS rating "
        "FROM generate_series(1, 1000) AS i"
    )
    run = run_to_end(duplicated["id"])
    assert run["status"] == "FAILED"
    assert "film_dim_pkey" in run["error_message"] and "duplicate" in run["error_message"].lower()
    assert target_count(sql) == 100


@pytest.fixture
def decorated_target(sql):
    """film_dim with a secondary index, a CHECK, a comment, a grant and a dependent view."""
    sql("DROP ROLE IF EXISTS etl_test_reader")
    sql("CREATE ROLE etl_test_reader")
    sql("CREATE INDEX film_dim_title_idx ON analytics.film_dim (title)")
    sql("COMMENT ON INDEX analytics.film_dim_title_idx IS 'title lookups'")
    sql("ALTER TABLE analytics.film_dim ADD CONSTRAINT film_dim_rating_range CHECK (rating BETWEEN 0 AND 10)")
    sql("GRANT SELECT ON analytics.film_dim TO etl_test_reader")
    sql("CREATE VIEW analytics.film_dim_top AS SELECT film_id, title FROM analytics.film_dim WHERE rating >= 5")
    sql("GRANT SELECT ON analytics.film_dim_top TO etl_test_reader")
    yield
    sql("DROP VIEW IF EXISTS analytics.film_dim_top")
    sql("DROP INDEX IF EXISTS analytics.film_dim_title_idx")
    sql("ALTER TABLE analytics.film_dim DROP CONSTRAINT IF EXISTS film_dim_rating_range")
    sql("REVOKE ALL ON analytics.film_dim FROM etl_test_reader")
    sql("DROP ROLE IF EXISTS etl_test_reader")


def test_indexes_constraints_grants_and_views_survive_a_load(decorated_target, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline()
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run
    indexes = dict(sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'film_dim'"))
    assert set(indexes) == {"film_dim_pkey", "film_dim_title_idx"}
    assert "UNIQUE" in indexes["film_dim_pkey"]
    assert sql("SELECT obj_description('analytics.film_dim_title_idx'::regclass, 'pg_class')") == [("title lookups",)]
    assert sql("SELECT contype FROM pg_constraint WHERE conrelid = 'analytics.film_dim'::regclass AND contype IN ('c', 'p') ORDER BY 1") == [
        ("c",), ("p",)
    ]
    assert sql("SELECT has_table_privilege('etl_test_reader', 'analytics.film_dim', 'SELECT')") == [(True,)]
    expected = sql("SELECT count(*) FROM content.film_work WHERE rating >= 5")[0][0]
    assert sql("SELECT count(*) FROM analytics.film_dim_top") == [(expected,)]
    # A constraint violated by the new rows fails the run and keeps the old ones.
    bad = create_pipeline(source_query="SELECT md5('x')::uuid AS film_id, 't' AS title, 99.0::float8 AS rating")
    failed = run_to_end(bad["id"])
    assert failed["status"] == "FAILED" and "film_dim_rating_range" in failed["error_message"]
    assert target_count(sql) == run["rows_written"]


def test_target_referenced_by_a_foreign_key_is_reloaded(create_pipeline, run_to_end, sql):
    """A foreign key into the target binds its OID: the row exchange keeps the table and the key."""
    pipeline = create_pipeline()
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    sql("CREATE TABLE analytics.film_notes (film_id uuid REFERENCES analytics.film_dim (film_id), note text)")
    try:
        second = run_to_end(pipeline["id"])
        assert second["status"] == "SUCCESS", second
        assert sql("SELECT count(*) FROM pg_constraint WHERE conrelid = 'analytics.film_notes'::regclass") == [(1,)]
    finally:
        sql("DROP TABLE analytics.film_notes")


def test_no_staging_tables_are_left_behind(create_pipeline, run_to_end, sql):
    tables_before = sql("SELECT count(*) FROM pg_class WHERE relkind = 'r'")
    failing = create_pipeline(source_query="SELECT 1/(i-3) AS film_id FROM generate_series(1,5) i")
    run_to_end(failing["id"])
    ok = create_pipeline()
    run_to_end(ok["id"])
    assert sql("SELECT count(*) FROM pg_class WHERE relkind = 'r'") == tables_before
