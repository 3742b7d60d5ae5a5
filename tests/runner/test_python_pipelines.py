"""PYTHON pipelines run their tasks over Arrow batches through the same shadow, gates and publish
as SQL pipelines: transformed values land, progress and pause hold, a raising task fails the run
naming itself and leaves the target as it was."""
from __future__ import annotations

import hashlib
import hmac


from tests.conftest import FILM_DIM_QUERY, finished_run, wait_for
from tests.runner.helpers import film_rows_query, slow_film_query, target_count

HASH_ENV = "ETL_TEST_TITLE_HASH_KEY"


def detail(client, pipeline_id: str) -> dict:
    run = client.get(f"/api/v1/pipelines/{pipeline_id}/runs").get_json()[0]
    return client.get(f"/api/v1/pipelines/{pipeline_id}/runs/{run['id']}").get_json()


def python_pipeline(client, create_pipeline, tasks, **fields) -> dict:
    pipeline = create_pipeline(type="PYTHON", **fields)
    response = client.put(f"/api/v1/pipelines/{pipeline['id']}/tasks", json={"tasks": tasks})
    assert response.status_code == 200, response.get_data(as_text=True)
    return pipeline


def shadows_left(sql) -> int:
    return sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = 'etl_console_shadow' AND c.relkind = 'r'")[0][0]


def test_no_tasks_loads_the_source_unchanged_through_the_python_path(client, create_pipeline, run_to_end, sql):
    pipeline = python_pipeline(client, create_pipeline, [], batch_size=300)
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    films = sql("SELECT count(*) FROM content.film_work")[0][0]
    assert run["rows_read"] == run["rows_written"] == films == target_count(sql)
    assert sql(f"SELECT count(*) FROM (({FILM_DIM_QUERY}) EXCEPT ALL (SELECT film_id, title, rating "
               "FROM analytics.film_dim)) d") == [(0,)]
    record = detail(client, pipeline["id"])
    assert record["path"]["name"] == "python" and "PYTHON pipeline" in record["path"]["why"]
    assert record["tasks"] == []
    assert record["config"]["tasks"] == []
    assert shadows_left(sql) == 0


def test_trim_rename_hash_land_transformed_values(client, create_pipeline, run_to_end, sql, monkeypatch):
    monkeypatch.setenv(HASH_ENV, "k3y")
    query = ("SELECT id AS film_id, '  ' || title || E'\\t ' AS name, rating FROM content.film_work "
             "WHERE rating IS NOT NULL")
    tasks = [
        {"kind": "normalize_text", "config": {"columns": ["name"], "case": "upper"}},
        {"kind": "rename", "config": {"columns": {"name": "title"}}},
        {"kind": "hash", "config": {"columns": ["title"], "secret_env": HASH_ENV}},
    ]
    pipeline = python_pipeline(client, create_pipeline, tasks, source_query=query, batch_size=500)
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    expected = {str(film_id): hmac.new(b"k3y", title.strip().upper().encode(), hashlib.sha256).hexdigest()
                for film_id, title in sql("SELECT id, title FROM content.film_work WHERE rating IS NOT NULL")}
    loaded = {str(film_id): title for film_id, title in sql("SELECT film_id, title FROM analytics.film_dim")}
    assert loaded == expected
    record = detail(client, pipeline["id"])
    assert [task["kind"] for task in record["tasks"]] == ["normalize_text", "rename", "hash"]
    assert all(task["rows_in"] == task["rows_out"] == len(expected) for task in record["tasks"])
    assert all(task["seconds"] >= 0 for task in record["tasks"])


def test_filter_drops_rows_and_rows_read_still_counts_the_source(client, create_pipeline, run_to_end, sql):
    tasks = [{"kind": "filter", "config": {"column": "rating", "operator": "ge", "value": 5}}]
    pipeline = python_pipeline(client, create_pipeline, tasks, batch_size=250)
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    films, kept = sql("SELECT count(*), count(*) FILTER (WHERE rating >= 5) FROM content.film_work")[0]
    assert (run["rows_read"], run["rows_written"]) == (films, kept) and 0 < kept < films
    assert target_count(sql) == kept


def test_a_raising_task_fails_the_run_naming_it_and_leaves_the_target(client, create_pipeline, run_to_end, sql):
    first = create_pipeline(source_query=film_rows_query(700, "old"))
    assert run_to_end(first["id"])["status"] == "SUCCESS"
    before = sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id")
    # 'film 1'..'film 700' cast to integer fails on the first batch.
    tasks = [{"kind": "rename", "config": {"columns": {"title": "title"}}},
             {"kind": "cast", "config": {"columns": {"title": "integer"}}}]
    pipeline = python_pipeline(client, create_pipeline, tasks, source_query=film_rows_query(700, "film"),
                               batch_size=200)
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    message = run["error_message"]
    assert message.startswith("task 2 (cast) failed on batch 1: ValueError: column title to integer"), message
    assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == before
    assert shadows_left(sql) == 0
    record = detail(client, pipeline["id"])
    assert record["tasks"][0]["rows_out"] == 200 and record["tasks"][1]["rows_out"] == 0


def test_progress_per_batch_and_pause_at_a_boundary(client, create_pipeline, run_to_end, sql):
    first = create_pipeline(source_query=film_rows_query(50, "old"))
    assert run_to_end(first["id"])["status"] == "SUCCESS"
    tasks = [{"kind": "normalize_text", "config": {"columns": ["title"], "case": "upper"}}]
    pipeline = python_pipeline(client, create_pipeline, tasks, source_query=slow_film_query(40000, 2000, 0.2),
                               batch_size=1000)
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    seen = wait_for(lambda: (r := detail(client, pipeline["id"]))["rows_read"] >= 2000 and r, timeout=30,
                    message="progress")
    assert seen["status"] == "RUNNING"
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
    run = finished_run(client, pipeline["id"])
    assert run["status"] == "FAILED" and "cancelled by a pause" in run["error_message"]
    assert run["rows_read"] < 40000
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()["status"] == "PAUSED"
    assert target_count(sql) == 50
    assert shadows_left(sql) == 0
