"""GET/PUT /api/v1/pipelines/{id}/checks: a pipeline's quality gates."""
from __future__ import annotations

import uuid

from tests.runner.helpers import slow_film_query


def test_defaults_then_replace(client, create_pipeline):
    pipeline = create_pipeline()
    response = client.get(f"/api/v1/pipelines/{pipeline['id']}/checks")
    assert response.status_code == 200 and response.content_type == "application/json"
    body = response.get_json()
    assert body == {"pipeline_id": pipeline["id"], "min_rows": None, "max_drop_percent": None, "allow_empty": False,
                    "not_null_columns": [], "unique_keys": [], "assertions": [], "updated_at": None}
    checks = {"min_rows": 10, "max_drop_percent": 50, "not_null_columns": ["title"], "unique_keys": [["title"]],
              "assertions": [{"name": "ratings in range", "sql": "SELECT * FROM loaded WHERE rating > 10;"}]}
    saved = client.put(f"/api/v1/pipelines/{pipeline['id']}/checks", json=checks)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    body = saved.get_json()
    assert body["min_rows"] == 10 and body["max_drop_percent"] == 50.0 and body["allow_empty"] is False
    assert body["assertions"] == [{"name": "ratings in range", "sql": "SELECT * FROM loaded WHERE rating > 10"}]
    assert body["updated_at"].endswith(("Z", "+00:00"))
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}/checks").get_json() == body
    # PUT replaces: what is left out returns to its default.
    assert client.put(f"/api/v1/pipelines/{pipeline['id']}/checks", json={"allow_empty": True}).get_json()["min_rows"] is None


def test_unknown_pipeline_is_404(client):
    missing = uuid.uuid4()
    assert client.get(f"/api/v1/pipelines/{missing}/checks").get_json() == {"detail": "Pipeline not found"}
    response = client.put(f"/api/v1/pipelines/{missing}/checks", json={})
    assert response.status_code == 404 and response.get_json() == {"detail": "Pipeline not found"}


def test_bad_input(client, create_pipeline):
    pipeline = create_pipeline()
    url = f"/api/v1/pipelines/{pipeline['id']}/checks"
    wrong_type = client.put(url, json={"min_rows": "many"})
    assert wrong_type.status_code == 422
    assert wrong_type.get_json()["detail"][0]["loc"] == ["body", "min_rows"]
    out_of_range = client.put(url, json={"max_drop_percent": 150})
    assert out_of_range.status_code == 422
    writes = client.put(url, json={"assertions": [{"name": "x", "sql": "DELETE FROM analytics.film_dim"}]})
    assert writes.status_code == 400 and "assertion 'x'" in writes.get_json()["detail"]
    twice = client.put(url, json={"not_null_columns": ["title", "title"]})
    assert twice.status_code == 400 and "twice" in twice.get_json()["detail"]


def test_refused_while_running(client, create_pipeline):
    pipeline = create_pipeline(source_query=slow_film_query(2000, 100, 0.2))
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    response = client.put(f"/api/v1/pipelines/{pipeline['id']}/checks", json={"min_rows": 1})
    assert response.status_code == 409
    assert response.get_json() == {"detail": "Cannot change the checks of a pipeline while it is RUNNING"}
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
