"""GET /api/v1/pipelines/ and POST /api/v1/pipelines/ (contract §3.1, §3.2)."""
from __future__ import annotations

import pytest

from .conftest import BASE, assert_pipeline, body_of, detail_of, get_pipeline

FILM_DIM_QUERY = "SELECT id as film_id, title, rating FROM content.film_work"


def test_list_is_an_empty_array_at_first(client):
    assert client.get(f"{BASE}/").get_data() == b"[]"
    assert body_of(client.get(f"{BASE}/"), 200) == []


def test_list_returns_every_pipeline_as_pipeline_out(client, create_pipeline):
    created = [create_pipeline(), create_pipeline(enabled=False), create_pipeline(target_table="analytics.film_rating_agg")]
    listed = body_of(client.get(f"{BASE}/"), 200)
    for item in listed:
        assert_pipeline(item)
    assert sorted(listed, key=lambda p: p["id"]) == sorted(created, key=lambda p: p["id"])


def test_create_with_the_contract_example_returns_201_and_echoes_it(client):
    body = {
        "name": "film_dim_full_v2",
        "description": "Full reload of film_dim (v2)",
        "type": "SQL",
        "mode": "full",
        "enabled": True,
        "batch_size": 100,
        "target_table": "analytics.film_dim",
        "source_query": FILM_DIM_QUERY,
    }
    created = assert_pipeline(body_of(client.post(f"{BASE}/", json=body), 201))
    assert created == {
        "id": created["id"],
        "name": "film_dim_full_v2",
        "description": "Full reload of film_dim (v2)",
        "type": "SQL",
        "mode": "full",
        "enabled": True,
        "status": "IDLE",
        "target_table": "analytics.film_dim",
        "batch_size": 100,
    }
    assert get_pipeline(client, created["id"]) == created  # it was stored as shown


def test_create_defaults(client):
    body = {"name": "minimal", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
    created = body_of(client.post(f"{BASE}/", json=body), 201)
    assert {k: created[k] for k in ("description", "type", "mode", "enabled", "status", "batch_size")} == {
        "description": None,
        "type": "SQL",
        "mode": "full",
        "enabled": True,
        "status": "IDLE",
        "batch_size": 1000,
    }


def test_create_disabled_is_paused(create_pipeline, client):
    created = create_pipeline(enabled=False)
    assert created["enabled"] is False and created["status"] == "PAUSED"
    assert get_pipeline(client, created["id"])["status"] == "PAUSED"


@pytest.mark.parametrize("target", ["analytics.film_dim", "analytics.film_rating_agg"])
def test_both_allowed_targets_are_accepted(create_pipeline, target):
    assert create_pipeline(target_table=target)["target_table"] == target


def test_ignores_unknown_fields_as_pydantic_does(client):
    body = {"name": "x", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY,
            "status": "RUNNING", "id": "00000000-0000-4000-8000-000000000000", "incremental_key": "k"}
    created = body_of(client.post(f"{BASE}/", json=body), 201)
    assert created["status"] == "IDLE" and created["id"] != body["id"]


def test_duplicate_name_is_400(client, create_pipeline):
    create_pipeline(name="film_dim_full")
    body = {"name": "film_dim_full", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
    assert detail_of(client.post(f"{BASE}/", json=body), 400) == "Pipeline with this name already exists"
    assert len(body_of(client.get(f"{BASE}/"), 200)) == 1


@pytest.mark.parametrize(
    "target",
    ["analytics.some_unknown_table", "content.film_work", "film_dim", "", "analytics.FILM_DIM", "x'y", "аналитика.т"],
)
def test_target_not_allowed_is_400_with_the_value_in_the_message(client, target):
    body = {"name": "t", "target_table": target, "source_query": FILM_DIM_QUERY}
    assert detail_of(client.post(f"{BASE}/", json=body), 400) == f"target_table '{target}' is not allowed"
    assert body_of(client.get(f"{BASE}/"), 200) == []


@pytest.mark.parametrize("length, status", [(1, 201), (255, 201), (256, 422)])
def test_name_length_bounds(client, length, status):
    body = {"name": "n" * length, "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
    body_of(client.post(f"{BASE}/", json=body), status)


@pytest.mark.parametrize("batch_size, status", [(1, 201), (1_000_000, 201), (0, 422), (1_000_001, 422)])
def test_batch_size_bounds(client, batch_size, status):
    body = {"name": "b", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY, "batch_size": batch_size}
    result = body_of(client.post(f"{BASE}/", json=body), status)
    if status == 201:
        assert result["batch_size"] == batch_size


def test_create_without_trailing_slash_reaches_the_same_endpoint(client):
    # Flask answers 308 (FastAPI 307); both keep the method and body when followed.
    body = {"name": "slashless", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
    response = client.post(BASE, json=body, follow_redirects=True)
    assert body_of(response, 201)["name"] == "slashless"
