"""/api/v1/alert-channels, /api/v1/pipelines/{id}/alerts and /api/v1/alert-deliveries, as a client sees them."""
from __future__ import annotations

import pytest

from tests.alert_receiver import SECRET, Receiver
from tests.api.conftest import UNKNOWN_ID, assert_pipeline, body_of, detail_of

BASE = "/api/v1/alert-channels/"


def create_channel(client, url: str = "http://127.0.0.1:9/hook", **fields) -> dict:
    body = {"name": fields.pop("name", "ops-hook"), "kind": "webhook", "url": url, "secret": SECRET, **fields}
    return body_of(client.post(BASE, json=body), 201)


def test_a_webhook_secret_is_write_only(client, sql):
    channel = create_channel(client)
    assert channel["secret_set"] is True and "secret" not in channel
    assert list(channel) == ["id", "name", "kind", "url", "email", "enabled", "secret_set", "created_at", "updated_at"]
    patched = body_of(client.patch(f"{BASE}{channel['id']}", json={"secret": "another-secret-0123456789",
                                                                     "enabled": False}), 200)
    assert patched["enabled"] is False and patched["secret_set"] is True
    for response in (client.get(BASE), client.get(f"{BASE}{channel['id']}"), client.get("/api/v1/openapi.json")):
        assert SECRET.encode() not in response.get_data() and b"another-secret" not in response.get_data()
    (token,), = sql("SELECT secret_token FROM etl_alert_channels")
    assert SECRET.encode() not in bytes(token)  # encrypted at rest
    audit = sql("SELECT action, coalesce(after::text, '') FROM etl_audit_log WHERE object_type = 'alert_channel'")
    assert [row[0] for row in audit] == ["alert_channel.create", "alert_channel.patch"]
    assert all("0123456789" not in row[1] for row in audit)


def test_unusable_channels_are_refused_with_a_clear_400(client):
    no_secret = client.post(BASE, json={"name": "a", "kind": "webhook", "url": "http://127.0.0.1:9/"})
    assert "needs a secret" in detail_of(no_secret, 400)
    email = client.post(BASE, json={"name": "b", "kind": "email", "email": "ops@example.org"})
    assert "ETL_SMTP_HOST" in detail_of(email, 400)
    create_channel(client, name="taken")
    assert detail_of(client.post(BASE, json={"name": "taken", "kind": "webhook", "url": "http://127.0.0.1:9/",
                                             "secret": SECRET}), 400) == "Alert channel with this name already exists"
    assert detail_of(client.get(f"{BASE}{UNKNOWN_ID}"), 404) == "Alert channel not found"
    assert detail_of(client.get(f"{BASE}not-a-uuid"), 422)[0]["loc"] == ["path", "channel_id"]
    bad_url = detail_of(client.post(BASE, json={"name": "c", "kind": "webhook", "url": "ftp://x", "secret": SECRET}), 422)
    assert bad_url[0]["loc"] == ["body", "url"]


def test_the_test_endpoint_sends_a_signed_event_and_reports_a_dead_receiver(client):
    with Receiver() as receiver:
        channel = create_channel(client, receiver.url)
        result = body_of(client.post(f"{BASE}{channel['id']}/test"), 200)
        assert result["delivered"] is True and result["status"] == "DELIVERED" and result["http_status"] == 204
        (received,) = receiver.delivered
        assert received["signed"], received["headers"]
        assert received["headers"]["X-Etl-Event"] == "alert.test"
        assert received["headers"]["X-Etl-Delivery"] == received["json"]["idempotency_key"]
        assert received["json"]["links"]["alerts"] == "http://127.0.0.1:8000/alerts"
    dead = create_channel(client, "http://127.0.0.1:9/nobody", name="dead")
    result = body_of(client.post(f"{BASE}{dead['id']}/test"), 200)
    assert result["delivered"] is False and result["status"] == "FAILED" and result["error"]
    deliveries = body_of(client.get(f"/api/v1/alert-deliveries?status=FAILED"), 200)
    assert [(d["channel"], d["attempts"], d["event"]) for d in deliveries] == [("dead", 1, "alert.test")]
    assert deliveries[0]["last_error"] == result["error"]


def test_pipeline_alerts_and_freshness_round_trip_without_touching_the_v1_shape(client, create_pipeline):
    pipeline = create_pipeline()
    channel = create_channel(client)
    url = f"/api/v1/pipelines/{pipeline['id']}/alerts"
    assert body_of(client.get(url), 200)["channels"] == []
    put = {"channels": [{"channel_id": channel["id"], "events": ["run.recovered", "run.failed"]}],
           "freshness_minutes": 60}
    settings = body_of(client.put(url, json=put), 200)
    assert settings["channels"] == [{"channel_id": channel["id"], "channel": "ops-hook",
                                     "events": ["run.failed", "run.recovered"]}]
    assert settings["freshness_minutes"] == 60 and settings["stale"] is False
    assert body_of(client.get(url), 200) == settings
    assert_pipeline(body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}"), 200))
    bad_event = detail_of(client.put(url, json={"channels": [{"channel_id": channel["id"], "events": ["nope"]}]}), 422)
    assert bad_event[0]["loc"][:2] == ["body", "channels"]
    unknown = client.put(url, json={"channels": [{"channel_id": UNKNOWN_ID, "events": ["run.failed"]}]})
    assert "does not exist" in detail_of(unknown, 400)
    assert detail_of(client.put(f"/api/v1/pipelines/{UNKNOWN_ID}/alerts", json={"channels": []}), 404) == \
        "Pipeline not found"
    cleared = body_of(client.put(url, json={"channels": [], "freshness_minutes": None}), 200)
    assert cleared["channels"] == [] and cleared["freshness_minutes"] is None


def test_deliveries_page_by_cursor(client, sql):
    channel = create_channel(client)
    sql("INSERT INTO etl_alert_outbox (id, event_key, event_kind, channel_id, payload, status, attempts) "
        "SELECT gen_random_uuid(), 'k' || i, 'run.failed', %s, '{}', 'PENDING', 0 FROM generate_series(1, 5) i",
        (channel["id"],))
    first = client.get("/api/v1/alert-deliveries?limit=3")
    assert len(body_of(first, 200)) == 3
    link = first.headers["Link"]
    next_url = link[link.index("<") + 1:link.index(">")].replace("http://localhost", "")
    assert len(body_of(client.get(next_url), 200)) == 2
    assert body_of(client.get(f"/api/v1/alert-deliveries?channel={channel['id']}&status=DELIVERED"), 200) == []
    assert detail_of(client.get("/api/v1/alert-deliveries?status=LOST"), 422)[0]["loc"] == ["query", "status"]


@pytest.mark.parametrize("method,path", [("post", BASE), ("put", f"/api/v1/pipelines/{UNKNOWN_ID}/alerts")])
def test_viewers_cannot_change_alerts(database_url, clean_database, method, path):
    from tests.conftest import close_app, make_app

    app = make_app(database_url, START_RUNNER=False, api_tokens="operator-token-0123456789:operator,viewer-token-0123456789:viewer")
    try:
        response = getattr(app.test_client(), method)(path, json={}, headers={"Authorization": "Bearer viewer-token-0123456789"})
        assert response.status_code == 403
    finally:
        close_app(app)
