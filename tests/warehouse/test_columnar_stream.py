"""The PYTHON pipeline's stream on a real server: COPY CSV -> Arrow batches -> tasks -> COPY CSV.
Values round-trip exactly (NULL vs '', newlines, quotes, numeric, json), batches are exactly
batch_size rows, and a cancel at a boundary stops both ends."""
from __future__ import annotations

import psycopg2
import pytest

from etl_console.warehouse.columnar import TaskChain, TransformFailed, transform_stream
from etl_console.warehouse.load import LoadCancelled
from etl_console.warehouse.source import describe

TRICKY = r"""
SELECT i AS id,
       CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'two\nlines' WHEN 3 THEN 'say "hi", ok'
                  WHEN 4 THEN E'tab\there \\ back' WHEN 5 THEN 'ünï ☃' ELSE 'plain ' || i END AS label,
       CASE WHEN i % 5 = 0 THEN NULL ELSE (i % 2 = 0) END AS flag,
       (i * 1.25)::numeric(12, 4) AS amount,
       CASE WHEN i % 3 = 0 THEN NULL ELSE i::bigint * 1000000000 END AS big,
       jsonb_build_object('n', i, 's', E'q"\n') AS doc,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' AS at
FROM generate_series(1, 1000) AS i
"""


@pytest.fixture
def stream_tables(sql):
    sql("DROP SCHEMA IF EXISTS columnar_test CASCADE")
    sql("CREATE SCHEMA columnar_test")
    sql(f"CREATE TABLE columnar_test.expected AS {TRICKY}")
    sql("CREATE TABLE columnar_test.loaded (LIKE columnar_test.expected)")
    yield
    sql("DROP SCHEMA IF EXISTS columnar_test CASCADE")


def stream(dsn, tasks, batch_size, on_boundary=lambda read, written: None):
    source, target = psycopg2.connect(dsn), psycopg2.connect(dsn)
    try:
        source.autocommit = True
        source_cursor = source.cursor()
        source_cursor.execute("BEGIN READ ONLY")
        described = describe(source_cursor, TRICKY)
        chain = TaskChain.build(tasks)
        columns = chain.prepare([column.name for column in described])
        result = transform_stream(
            source_cursor, f"COPY ({TRICKY}) TO STDOUT (FORMAT csv)", described, target.cursor(),
            f"COPY columnar_test.loaded ({', '.join(columns)}) FROM STDIN (FORMAT csv)", chain, batch_size,
            on_boundary=on_boundary, cancel_source=source.cancel,
        )
        target.commit()
        return result, chain
    finally:
        source.close()
        target.close()


@pytest.mark.parametrize("batch_size", [1, 7, 1000, 5000])
def test_values_round_trip_exactly_in_batches_of_batch_size(dsn, sql, stream_tables, batch_size):
    boundaries = []
    result, _ = stream(dsn, [], batch_size, on_boundary=lambda read, written: boundaries.append(read))
    assert (result.rows_read, result.rows_written) == (1000, 1000)
    assert result.batches == -(-1000 // batch_size)
    assert boundaries == [min(n * batch_size, 1000) for n in range(1, result.batches + 1)]
    assert sql("SELECT count(*) FROM ((TABLE columnar_test.expected EXCEPT ALL TABLE columnar_test.loaded) UNION ALL "
               "(TABLE columnar_test.loaded EXCEPT ALL TABLE columnar_test.expected)) d") == [(0,)]
    assert sql("SELECT count(*) FILTER (WHERE label IS NULL), count(*) FILTER (WHERE label = '') "
               "FROM columnar_test.loaded") == [(142, 143)]


def test_tasks_apply_per_batch_with_their_counts(dsn, sql, stream_tables):
    tasks = [{"kind": "filter", "config": {"column": "flag", "operator": "eq", "value": True}},
             {"kind": "normalize_text", "config": {"columns": ["label"], "case": "upper"}}]
    result, chain = stream(dsn, tasks, 100)
    kept = sql("SELECT count(*) FROM columnar_test.expected WHERE flag")[0][0]
    assert (result.rows_read, result.rows_written) == (1000, kept)
    assert [(s["rows_in"], s["rows_out"]) for s in chain.report()] == [(1000, kept), (kept, kept)]
    assert sql("SELECT count(*) FROM columnar_test.loaded l JOIN columnar_test.expected e USING (id) "
               "WHERE l.label IS DISTINCT FROM upper(e.label)") == [(0,)]


def test_a_cancel_at_a_boundary_stops_both_ends(dsn, sql, stream_tables):
    def cancel(read, written):
        if read >= 300:
            raise LoadCancelled("paused")

    with pytest.raises(LoadCancelled, match="paused"):
        stream(dsn, [], 100, on_boundary=cancel)
    assert sql("SELECT count(*) FROM columnar_test.loaded") == [(0,)]


def test_a_raising_task_names_task_batch_and_exception(dsn, sql, stream_tables):
    tasks = [{"kind": "select", "config": {"columns": ["id", "label", "flag", "amount", "big", "doc", "at"]}},
             {"kind": "cast", "config": {"columns": {"label": "integer"}}}]
    with pytest.raises(TransformFailed, match=r"^task 2 \(cast\) failed on batch 1: ValueError: column label"):
        stream(dsn, tasks, 100)
    assert sql("SELECT count(*) FROM columnar_test.loaded") == [(0,)]
