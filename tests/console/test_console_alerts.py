"""The Alerts page, the pipeline page's alerts panel and the list's stale badge, as a browser gets them."""
from __future__ import annotations

import pytest

from tests.alert_receiver import SECRET, Receiver
from tests.api.conftest import body_of

HX = {"HX-Request": "true"}


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def test_create_a_channel_test_it_and_see_the_delivery(client, token):
    with Receiver() as receiver:
        created = client.post("/alerts/channels", data={"csrf_token": token, "name": "ops", "kind": "webhook",
                                                        "url": receiver.url, "secret": SECRET})
        assert created.status_code == 303
        page = client.get("/alerts").get_data(as_text=True)
        assert "ops" in page and receiver.url in page and SECRET not in page
        (channel,) = body_of(client.get("/api/v1/alert-channels/"), 200)
        tested = client.post(f"/alerts/channels/{channel['id']}/test", data={"csrf_token": token}, headers=HX)
        fragment = tested.get_data(as_text=True)
        assert tested.status_code == 200 and f'id="test-{channel["id"]}"' in fragment and "delivered" in fragment
        assert receiver.delivered and receiver.delivered[0]["signed"]
    page = client.get("/alerts?status=DELIVERED").get_data(as_text=True)
    assert "alert.test" in page and SECRET not in page


def test_a_refused_channel_shows_why_on_its_field(client, token):
    short = client.post("/alerts/channels", data={"csrf_token": token, "name": "x", "kind": "webhook",
                                                  "url": "http://127.0.0.1:9/", "secret": "short"})
    assert short.status_code == 400 and "at least 16" in short.get_data(as_text=True)
    email = client.post("/alerts/channels", data={"csrf_token": token, "name": "y", "kind": "email",
                                                  "email": "ops@example.org"})
    assert email.status_code == 400 and "ETL_SMTP_HOST" in email.get_data(as_text=True)
    no_csrf = client.post("/alerts/channels", data={"name": "z", "kind": "webhook"})
    assert no_csrf.status_code == 400 and body_of(client.get("/api/v1/alert-channels/"), 200) == []


def test_the_pipeline_panel_saves_events_and_freshness_and_the_list_shows_stale(client, token, create_pipeline, sql):
    pipeline = create_pipeline()
    channel = body_of(client.post("/api/v1/alert-channels/", json={
        "name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/", "secret": SECRET}), 201)
    page = client.get(f"/pipelines/{pipeline['id']}").get_data(as_text=True)
    assert 'id="alerts"' in page and f'value="{channel["id"]}|run.failed"' in page
    saved = client.post(f"/pipelines/{pipeline['id']}/alerts", headers=HX, data={
        "csrf_token": token, "freshness_minutes": "5",
        "subscription": [f"{channel['id']}|run.failed", f"{channel['id']}|freshness.breached"]})
    assert saved.status_code == 200 and "Alert settings saved" in saved.get_data(as_text=True)
    settings = body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/alerts"), 200)
    assert settings["freshness_minutes"] == 5
    assert settings["channels"][0]["events"] == ["run.failed", "freshness.breached"]
    refused = client.post(f"/pipelines/{pipeline['id']}/alerts", headers=HX,
                          data={"csrf_token": token, "freshness_minutes": "soon"})
    assert refused.status_code == 400 and "whole number of minutes" in refused.get_data(as_text=True)
    assert "badge-stale" not in client.get("/").get_data(as_text=True)
    sql("UPDATE etl_pipelines SET freshness_set_at = now() - interval '1 hour' WHERE id = %s", (pipeline["id"],))
    assert "badge-stale" in client.get("/").get_data(as_text=True)
