"""Incremental mode under the same promises as full mode: readers never wait for its merge, and the
pipeline's gates apply to the batch being merged (a failing gate merges nothing, moves no watermark)."""
from __future__ import annotations

from tests.runner.test_incremental import SOURCE, film_inc, watermark
from tests.runner.test_publish import Reader, run_detail

__all__ = ["film_inc"]  # the fixture, imported for use here


def test_a_failing_gate_merges_nothing_and_keeps_the_watermark(film_inc, client, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline(mode="incremental", incremental_key="modified", source_query=SOURCE)
    assert client.put(f"/api/v1/pipelines/{pipeline['id']}/checks",
                      json={"not_null_columns": ["title"], "unique_keys": [["film_id"]]}).status_code == 200
    first = run_to_end(pipeline["id"])
    assert first["status"] == "SUCCESS"
    gates = run_detail(client, pipeline["id"], first["id"])["gates"]
    assert [(g["gate"], g["passed"]) for g in gates] == [("not_null(title)", True), ("unique(film_id)", True)]
    before = sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id")
    mark = watermark(sql, pipeline["id"])

    sql("UPDATE content.film_inc SET title = NULL, modified = clock_timestamp() "
        "WHERE id IN (SELECT id FROM content.film_inc ORDER BY id LIMIT 3)")
    second = run_to_end(pipeline["id"])
    assert second["status"] == "FAILED"
    assert "not_null(title): 3 rows have a NULL title" in second["error_message"], second["error_message"]
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == before
    assert watermark(sql, pipeline["id"]) == mark


def test_readers_never_wait_for_an_incremental_merge(film_inc, client, create_pipeline, run_to_end, sql, dsn):
    pipeline = create_pipeline(mode="incremental", incremental_key="modified", source_query=SOURCE)
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    sql("UPDATE content.film_inc SET title = title || ' (v2)', modified = clock_timestamp()")
    reader = Reader(dsn)
    reader.start()
    try:
        run = run_to_end(pipeline["id"])
    finally:
        reader.stop.set()
        reader.join(10)
    assert run["status"] == "SUCCESS" and run["rows_written"] == 1000
    assert reader.counts and set(reader.counts) == {1000}
    assert max(reader.waits) < 0.3, max(reader.waits)
