"""How runs end, seen through the API, with a real runner (DESIGN §1: SUCCESS -> IDLE, FAILED -> FAILED)."""
from __future__ import annotations

import pytest

from tests.conftest import wait_for

from .conftest import BASE, body_of, get_pipeline, get_runs


@pytest.fixture
def app_overrides() -> dict:
    return {}  # this module needs the runner thread


def test_successful_run_ends_idle_with_row_counts(client, pipeline, run_to_end, sql):
    run = run_to_end(pipeline["id"])
    source_rows = sql("SELECT count(*) FROM content.film_work")[0][0]
    assert run["status"] == "SUCCESS" and run["error_message"] is None
    assert run["rows_read"] == run["rows_written"] == source_rows
    assert run["finished_at"] >= run["started_at"]
    assert get_pipeline(client, pipeline["id"])["status"] == "IDLE"
    assert sql("SELECT count(*) FROM analytics.film_dim")[0][0] == source_rows


def test_failing_query_ends_failed_with_the_database_error(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(source_query="SELECT 1/0 AS film_id")
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED" and run["finished_at"] is not None
    assert "division by zero" in run["error_message"]
    assert get_pipeline(client, pipeline["id"])["status"] == "FAILED"


def test_columns_not_matching_the_target_fail_with_a_message_naming_them(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(source_query="SELECT id AS film_id, title, rating, 1 AS extra FROM content.film_work")
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    assert "extra" in run["error_message"] and "column" in run["error_message"]
    assert get_pipeline(client, pipeline["id"])["status"] == "FAILED"


def test_a_failed_pipeline_can_be_fixed_and_run_again(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(source_query="SELECT 1/0 AS film_id")
    assert run_to_end(pipeline["id"])["status"] == "FAILED"
    fixed = body_of(
        client.patch(f"{BASE}/{pipeline['id']}", json={"source_query": "SELECT id AS film_id, title, rating FROM content.film_work"}),
        200,
    )
    assert fixed["status"] == "FAILED"  # PATCH changes config, not the outcome of the last run
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    assert get_pipeline(client, pipeline["id"])["status"] == "IDLE"
    assert [run["status"] for run in get_runs(client, pipeline["id"])] == ["SUCCESS", "FAILED"]


def test_manual_run_of_a_disabled_pipeline_succeeds_and_leaves_it_paused(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(enabled=False)
    assert run_to_end(pipeline["id"])["status"] == "SUCCESS"
    after = get_pipeline(client, pipeline["id"])
    # Disabled means PAUSED (create and PATCH rules); a manual run does not enable it.
    assert (after["enabled"], after["status"]) == (False, "PAUSED")


def test_run_after_success_starts_a_new_run(client, pipeline, run_to_end):
    first = run_to_end(pipeline["id"])
    second = run_to_end(pipeline["id"])
    assert first["id"] != second["id"]
    assert [run["id"] for run in get_runs(client, pipeline["id"])] == [second["id"], first["id"]]


def test_pipeline_is_running_while_its_run_is(client, create_pipeline):
    # One 0.5 s sleep per execution (a FROM subquery runs once), so RUNNING is observable.
    slow = "SELECT id AS film_id, title, rating FROM content.film_work, (SELECT pg_sleep(0.5)) AS pause"
    pipeline = create_pipeline(source_query=slow)
    body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    assert get_pipeline(client, pipeline["id"])["status"] == "RUNNING"
    wait_for(lambda: get_runs(client, pipeline["id"])[0]["status"] != "RUNNING", message="the run to end")
    assert get_pipeline(client, pipeline["id"])["status"] == "IDLE"
