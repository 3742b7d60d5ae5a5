"""WTF_CSRF_TIME_LIMIT=None: a console tab's token stays good for as long as its session, so an
operator who comes back after lunch is not refused with "The CSRF token has expired"."""
from __future__ import annotations

import time

import itsdangerous.timed


def test_a_token_from_hours_ago_is_still_accepted(app, client, create_pipeline, token, monkeypatch):
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None
    pipeline = create_pipeline()
    later = int(time.time()) + 5 * 3600
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later)

    app.config["WTF_CSRF_TIME_LIMIT"] = 3600  # Flask-WTF's default, for contrast
    expired = client.post(f"/pipelines/{pipeline['id']}/pause", data={"csrf_token": token})
    assert expired.status_code == 400 and "The CSRF token has expired" in expired.get_data(as_text=True)

    app.config["WTF_CSRF_TIME_LIMIT"] = None
    accepted = client.post(f"/pipelines/{pipeline['id']}/pause", data={"csrf_token": token})
    assert accepted.status_code == 303
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()["status"] == "PAUSED"
