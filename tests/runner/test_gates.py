"""Quality gates run over the built shadow: a failing gate ends the run FAILED, naming the gate and
the offending count, and the target keeps its previous contents."""
from __future__ import annotations

import pytest

from tests.runner.helpers import film_rows_query, target_count
from tests.runner.test_publish import SHADOWS, run_detail


def set_checks(client, pipeline_id: str, **checks) -> None:
    response = client.put(f"/api/v1/pipelines/{pipeline_id}/checks", json=checks)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.fixture
def loaded(create_pipeline, run_to_end, sql):
    """The target holds 500 rows before each test."""
    assert run_to_end(create_pipeline(source_query=film_rows_query(500, "old"))["id"])["status"] == "SUCCESS"
    return sql("SELECT film_id, title, rating FROM analytics.film_dim ORDER BY film_id")


EMPTY = "SELECT film_id, title, rating FROM analytics.film_dim WHERE false"
DUPLICATE_TITLES = ("SELECT md5('d' || i)::uuid AS film_id, 'same title' AS title, 1.0::float8 AS rating "
                    "FROM generate_series(1, 50) AS i")
NULL_TITLES = ("SELECT md5('n' || i)::uuid AS film_id, CASE WHEN i % 10 = 0 THEN NULL ELSE 't' END AS title, "
               "1.0::float8 AS rating FROM generate_series(1, 100) AS i")

FAILING = {
    "empty load (default)": (EMPTY, {}, "empty_load", 500),
    "min rows": (film_rows_query(20), {"min_rows": 100}, "min_rows", 20),
    "max drop": (film_rows_query(100), {"max_drop_percent": 50}, "max_drop", 400),
    "not null": (NULL_TITLES, {"not_null_columns": ["title"]}, "not_null(title)", 10),
    "unique key": (DUPLICATE_TITLES, {"unique_keys": [["title"]]}, "unique(title)", 1),
    "assertion": (film_rows_query(100), {"assertions": [{"name": "no new films", "sql":
                  "SELECT film_id FROM loaded WHERE title LIKE 'new %'"}]}, "assertion(no new films)", 100),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_a_failing_gate_leaves_the_target(case, loaded, client, create_pipeline, run_to_end, sql):
    query, checks, gate, count = FAILING[case]
    pipeline = create_pipeline(source_query=query)
    if checks:
        set_checks(client, pipeline["id"], **checks)
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED", run
    assert f"{gate}: " in run["error_message"] and "previous contents" in run["error_message"], run["error_message"]
    assert sql("SELECT film_id, title, rating FROM analytics.film_dim ORDER BY film_id") == loaded
    gates = run_detail(client, pipeline["id"], run["id"])["gates"]
    failed = [result for result in gates if not result["passed"]]
    assert [(result["gate"], result["count"]) for result in failed] == [(gate, count)], gates
    assert sql(SHADOWS) == [(0,)]


def test_passing_gates_are_recorded_and_the_load_published(loaded, client, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline(source_query=film_rows_query(400, "new"))
    set_checks(client, pipeline["id"], min_rows=100, max_drop_percent=25, not_null_columns=["title", "rating"],
               unique_keys=[["title"]], assertions=[
                   {"name": "ratings in range", "sql": "SELECT * FROM loaded WHERE rating NOT BETWEEN 0 AND 10"},
                   {"name": "compared with the target", "sql":
                    "SELECT 1 FROM loaded HAVING count(*) < (SELECT count(*) / 2 FROM analytics.film_dim)"},
               ])
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run
    gates = run_detail(client, pipeline["id"], run["id"])["gates"]
    assert [result["gate"] for result in gates] == [
        "min_rows", "max_drop", "not_null(title)", "not_null(rating)", "unique(title)",
        "assertion(ratings in range)", "assertion(compared with the target)"]
    assert all(result["passed"] for result in gates), gates
    assert target_count(sql) == 400
    # The source login's read grant on the shadow was temporary: the published table does not keep it.
    assert run_detail(client, pipeline["id"], run["id"])["publish"]["method"] == "rename"


def test_an_empty_load_is_published_when_the_pipeline_allows_it(loaded, client, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline(source_query=EMPTY)
    set_checks(client, pipeline["id"], allow_empty=True)
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    assert target_count(sql) == 0


def test_duplicate_keys_of_the_targets_own_unique_index_are_refused(loaded, client, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline(source_query="SELECT md5((i % 10)::text)::uuid AS film_id, 't' AS title, "
                                            "1.0::float8 AS rating FROM generate_series(1, 1000) AS i")
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    assert "duplicate keys" in run["error_message"] and "film_dim_pkey" in run["error_message"]
    assert sql("SELECT film_id, title, rating FROM analytics.film_dim ORDER BY film_id") == loaded


def test_a_broken_assertion_fails_the_gate_with_its_error(loaded, client, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline(source_query=film_rows_query(100))
    set_checks(client, pipeline["id"], assertions=[{"name": "typo", "sql": "SELECT no_such_column FROM loaded"}])
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED" and "assertion(typo): the assertion failed to run" in run["error_message"]
    assert sql("SELECT film_id, title, rating FROM analytics.film_dim ORDER BY film_id") == loaded
