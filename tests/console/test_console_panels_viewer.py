"""A viewer reads the new panels and the run detail page, without their buttons and forms."""
from __future__ import annotations

import pytest

from tests.console.markup import csrf_token_of
from tests.console.test_console_auth import app_overrides, login  # noqa: F401 - the same users and token

TOKEN = {"Authorization": "Bearer " + "x" * 20}


@pytest.fixture
def incremental(client):
    created = client.post("/api/v1/pipelines/", headers=TOKEN, json={
        "name": "watched", "target_table": "analytics.film_dim", "mode": "incremental", "incremental_key": "modified",
        "source_query": "SELECT id AS film_id, title, rating, modified FROM content.film_work"})
    assert created.status_code == 201
    pipeline_id = created.get_json()["id"]
    client.put(f"/api/v1/pipelines/{pipeline_id}/state", headers=TOKEN, json={"watermark": "5"})
    client.put(f"/api/v1/pipelines/{pipeline_id}/schedule", headers=TOKEN, json={"schedule": "0 3 * * *"})
    return pipeline_id


def test_a_viewer_sees_the_panels_without_their_controls(client, incremental):
    login(client, "victor")
    page = client.get(f"/pipelines/{incremental}").get_data(as_text=True)
    assert 'id="reconciliation"' in page and 'id="state"' in page and 'id="schedule"' in page
    assert "<code>5</code>" in page and '<code class="cron">0 3 * * *</code>' in page
    assert "Reconcile now</button>" not in page and "Reset watermark" not in page and "Save schedule" not in page
    token = csrf_token_of(page)
    for path, data in (("reconcile", {}), ("state/reset", {"confirmed": "yes"}), ("schedule", {"schedule": ""})):
        refused = client.post(f"/pipelines/{incremental}/{path}", data={"csrf_token": token, **data})
        assert refused.status_code == 403, path
    assert client.get(f"/api/v1/pipelines/{incremental}/state", headers=TOKEN).get_json()["watermark"] == "5"
    confirm = client.get(f"/pipelines/{incremental}/state/reset").get_data(as_text=True)
    assert "Only operators can reset" in confirm and "<button" not in confirm.split("<main")[1]

    client.post("/auth/logout", data={"csrf_token": token})
    login(client, "olga")
    page = client.get(f"/pipelines/{incremental}").get_data(as_text=True)
    assert "Reconcile now</button>" in page and "Reset watermark</button>" in page and "Save schedule" in page
