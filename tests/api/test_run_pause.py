"""POST .../run and .../pause without a runner: the run stays queued in RUNNING (contract §4, DESIGN §1)."""
from __future__ import annotations

import pytest

from .conftest import BASE, UNKNOWN_ID, body_of, detail_of, get_pipeline, get_runs


def test_run_switches_to_running_and_queues_one_run(client, pipeline):
    response = body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    assert response == {**pipeline, "status": "RUNNING"}
    assert get_pipeline(client, pipeline["id"])["status"] == "RUNNING"
    (run,) = get_runs(client, pipeline["id"])
    assert run["status"] == "RUNNING" and run["finished_at"] is None


def test_run_while_running_returns_the_same_object_and_queues_nothing(client, pipeline):
    first = body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    runs = get_runs(client, pipeline["id"])
    for _ in range(3):
        assert body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200) == first
    assert get_runs(client, pipeline["id"]) == runs  # still one run, the same one


def test_manual_run_works_on_a_disabled_pipeline(client, create_pipeline):
    pipeline = create_pipeline(enabled=False)
    response = body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    assert (response["enabled"], response["status"]) == (False, "RUNNING")
    assert len(get_runs(client, pipeline["id"])) == 1


def test_manual_run_works_on_a_paused_pipeline(client, pipeline):
    body_of(client.post(f"{BASE}/{pipeline['id']}/pause"), 200)
    assert body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)["status"] == "RUNNING"


def test_run_on_a_failed_pipeline_starts_a_new_run(client, pipeline, sql):
    sql("UPDATE etl_pipelines SET status = 'FAILED' WHERE id = %s", (pipeline["id"],))
    assert body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)["status"] == "RUNNING"
    assert len(get_runs(client, pipeline["id"])) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 5},
        {"enabled": False},
        {"name": "renamed"},
        {"description": None},
        {"batch_size": 1000},  # even a value it already has
        {"source_query": "SELECT 1 AS film_id"},
    ],
)
def test_patch_while_running_is_409(client, pipeline, changes):
    running = body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    response = client.patch(f"{BASE}/{pipeline['id']}", json=changes)
    assert detail_of(response, 409) == "Cannot update pipeline while it is RUNNING"
    assert get_pipeline(client, pipeline["id"]) == running


def test_empty_patch_while_running_returns_the_current_pipeline(client, pipeline):
    running = body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    assert body_of(client.patch(f"{BASE}/{pipeline['id']}", json={}), 200) == running


def test_invalid_patch_while_running_is_422_not_409(client, pipeline):
    body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    detail_of(client.patch(f"{BASE}/{pipeline['id']}", json={"batch_size": 0}), 422)


def test_pause_switches_to_paused_and_is_idempotent(client, pipeline):
    paused = body_of(client.post(f"{BASE}/{pipeline['id']}/pause"), 200)
    assert paused == {**pipeline, "status": "PAUSED"}  # enabled is a separate flag: unchanged
    assert body_of(client.post(f"{BASE}/{pipeline['id']}/pause"), 200) == paused
    assert get_pipeline(client, pipeline["id"]) == paused
    assert get_runs(client, pipeline["id"]) == []


def test_pause_a_disabled_pipeline_returns_it_as_is(client, create_pipeline):
    pipeline = create_pipeline(enabled=False)
    assert body_of(client.post(f"{BASE}/{pipeline['id']}/pause"), 200) == pipeline


def test_pause_while_running_is_paused_and_allows_patch(client, pipeline):
    body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    assert body_of(client.post(f"{BASE}/{pipeline['id']}/pause"), 200)["status"] == "PAUSED"
    assert body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"batch_size": 5}), 200)["batch_size"] == 5


@pytest.mark.parametrize("action", ["run", "pause"])
def test_run_and_pause_unknown_is_404(client, action):
    assert detail_of(client.post(f"{BASE}/{UNKNOWN_ID}/{action}"), 404) == "Pipeline not found"


@pytest.mark.parametrize("action", ["run", "pause"])
def test_run_and_pause_ignore_a_body(client, pipeline, action):
    # The FastAPI endpoints take no body, so whatever is sent is not read.
    response = client.post(f"{BASE}/{pipeline['id']}/{action}", data="{not json", content_type="application/json")
    body_of(response, 200)
