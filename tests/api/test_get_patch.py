"""GET and PATCH /api/v1/pipelines/{pipeline_id} (contract §2.3, §3.3, §3.4; DESIGN §1)."""
from __future__ import annotations

import pytest

from .conftest import BASE, UNKNOWN_ID, assert_pipeline, body_of, detail_of, get_pipeline


def test_get_returns_the_pipeline(client, pipeline):
    assert assert_pipeline(body_of(client.get(f"{BASE}/{pipeline['id']}"), 200)) == pipeline


def test_get_accepts_other_uuid_spellings_as_pydantic_does(client, pipeline):
    pid = pipeline["id"]
    for spelling in (pid.upper(), pid.replace("-", ""), "{%s}" % pid, "urn:uuid:" + pid):
        assert body_of(client.get(f"{BASE}/{spelling}"), 200)["id"] == pid


def test_get_unknown_is_404(client):
    assert detail_of(client.get(f"{BASE}/{UNKNOWN_ID}"), 404) == "Pipeline not found"


def test_patch_contract_example(client, pipeline):
    updated = body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"batch_size": 500, "enabled": False}), 200)
    assert updated == {**pipeline, "batch_size": 500, "enabled": False, "status": "PAUSED"}
    assert get_pipeline(client, pipeline["id"]) == updated


def test_patch_every_field(client, pipeline):
    changes = {
        "name": "film_dim_full_v2",
        "description": "Updated description",
        "type": "SQL",
        "mode": "full",
        "enabled": True,
        "target_table": "analytics.film_rating_agg",
        "batch_size": 7,
        "source_query": "SELECT film_id, avg(rating) AS avg_rating, count(*) AS ratings_count FROM ugc.ratings GROUP BY film_id",
    }
    updated = body_of(client.patch(f"{BASE}/{pipeline['id']}", json=changes), 200)
    expected = {**pipeline, **{k: v for k, v in changes.items() if k != "source_query"}}
    assert updated == expected
    assert get_pipeline(client, pipeline["id"]) == expected


def test_patch_changes_only_the_fields_sent(client, create_pipeline):
    pipeline = create_pipeline(description="keep me", batch_size=42)
    updated = body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"name": "renamed"}), 200)
    assert updated == {**pipeline, "name": "renamed"}


def test_patch_description_to_null(client, create_pipeline):
    pipeline = create_pipeline(description="something")
    assert body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"description": None}), 200)["description"] is None


@pytest.mark.parametrize("body", [{}, {"unknown_field": 1}])
def test_patch_with_no_fields_returns_the_current_pipeline(client, pipeline, body):
    assert body_of(client.patch(f"{BASE}/{pipeline['id']}", json=body), 200) == pipeline


def test_patch_disable_pauses_and_enable_resumes(client, pipeline):
    pid = pipeline["id"]
    assert body_of(client.patch(f"{BASE}/{pid}", json={"enabled": False}), 200)["status"] == "PAUSED"
    assert get_pipeline(client, pid)["status"] == "PAUSED"
    resumed = body_of(client.patch(f"{BASE}/{pid}", json={"enabled": True}), 200)
    assert (resumed["enabled"], resumed["status"]) == (True, "IDLE")


def test_patch_enable_on_a_paused_pipeline_makes_it_idle(client, create_pipeline):
    pipeline = create_pipeline(enabled=False)
    resumed = body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"enabled": True}), 200)
    assert (resumed["enabled"], resumed["status"]) == (True, "IDLE")


def test_patch_enable_after_pause_makes_it_idle(client, pipeline):
    pid = pipeline["id"]
    body_of(client.post(f"{BASE}/{pid}/pause"), 200)
    assert body_of(client.patch(f"{BASE}/{pid}", json={"enabled": True}), 200)["status"] == "IDLE"


def test_patch_enable_on_an_idle_pipeline_keeps_it_idle(client, pipeline):
    assert body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"enabled": True}), 200)["status"] == "IDLE"


def test_patch_other_fields_of_a_paused_pipeline_keeps_it_paused(client, create_pipeline):
    pipeline = create_pipeline(enabled=False)
    assert body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"batch_size": 9}), 200)["status"] == "PAUSED"


def test_patch_to_a_taken_name_is_400(client, create_pipeline):
    create_pipeline(name="taken")
    other = create_pipeline(name="other")
    response = client.patch(f"{BASE}/{other['id']}", json={"name": "taken"})
    assert detail_of(response, 400) == "Pipeline with this name already exists"
    assert get_pipeline(client, other["id"])["name"] == "other"


def test_patch_to_its_own_name_is_fine(client, pipeline):
    assert body_of(client.patch(f"{BASE}/{pipeline['id']}", json={"name": pipeline["name"]}), 200) == pipeline


def test_patch_to_a_target_not_allowed_is_400(client, pipeline):
    response = client.patch(f"{BASE}/{pipeline['id']}", json={"target_table": "analytics.some_unknown_table"})
    assert detail_of(response, 400) == "target_table 'analytics.some_unknown_table' is not allowed"
    assert get_pipeline(client, pipeline["id"]) == pipeline


def test_a_rejected_patch_changes_nothing(client, pipeline):
    response = client.patch(f"{BASE}/{pipeline['id']}", json={"batch_size": 3, "target_table": "nope"})
    detail_of(response, 400)
    assert get_pipeline(client, pipeline["id"]) == pipeline


@pytest.mark.parametrize("body", [{}, {"batch_size": 5}])
def test_patch_unknown_is_404(client, body):
    assert detail_of(client.patch(f"{BASE}/{UNKNOWN_ID}", json=body), 404) == "Pipeline not found"


def test_patch_validates_the_body_before_looking_the_pipeline_up(client):
    # FastAPI validates every parameter before the endpoint runs: a bad body wins over a 404.
    detail = detail_of(client.patch(f"{BASE}/{UNKNOWN_ID}", json={"batch_size": "x"}), 422)
    assert [error["loc"] for error in detail] == [["body", "batch_size"]]
