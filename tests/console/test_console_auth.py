"""With console users configured (etl_console.auth), a viewer reads the console but gets no buttons."""
from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from tests.console.markup import csrf_token_of

PASSWORD = "correct horse battery staple"


@pytest.fixture
def app_overrides():
    digest = generate_password_hash(PASSWORD)
    return {"console_users": f"olga={digest},victor:viewer={digest}", "api_tokens": "x" * 20 + ":operator"}


def login(client, name: str) -> None:
    token = csrf_token_of(client.get("/auth/login"))
    response = client.post("/auth/login", data={"csrf_token": token, "username": name, "password": PASSWORD, "next": "/"})
    assert response.status_code == 302, response.get_data(as_text=True)


def test_viewer_reads_without_buttons_and_operator_gets_them(client, app):
    headers = {"Authorization": "Bearer " + "x" * 20}
    created = client.post(
        "/api/v1/pipelines/",
        json={"name": "guarded", "target_table": "analytics.film_dim", "source_query": "SELECT 1"},
        headers=headers,
    )
    assert created.status_code == 201
    pipeline_id = created.get_json()["id"]

    login(client, "victor")
    listing = client.get("/").get_data(as_text=True)
    assert ">guarded</a>" in listing and "victor (viewer)" in listing and "Sign out" in listing
    assert "Run guarded" not in listing and "New pipeline</a>" not in listing
    page = client.get(f"/pipelines/{pipeline_id}").get_data(as_text=True)
    assert "Run guarded" not in page and ">Edit<" not in page

    client.post("/auth/logout", data={"csrf_token": csrf_token_of(page)})
    login(client, "olga")
    page = client.get(f"/pipelines/{pipeline_id}").get_data(as_text=True)
    assert "Run guarded" in page and ">Edit<" in page and "olga" in page


def test_bulk_actions_are_for_operators_and_their_message_survives_a_signed_in_session(client, app):
    headers = {"Authorization": "Bearer " + "x" * 20}
    created = client.post(
        "/api/v1/pipelines/",
        json={"name": "bulk_guarded", "target_table": "analytics.film_dim", "source_query": "SELECT 1"},
        headers=headers,
    )
    pipeline_id = created.get_json()["id"]

    login(client, "victor")
    listing = client.get("/").get_data(as_text=True)
    assert "Pause selected" not in listing and 'class="row-select"' not in listing
    token = csrf_token_of(listing)
    refused = client.post("/pipelines/bulk/pause", data={"csrf_token": token, "ids": [pipeline_id]})
    assert refused.status_code == 403
    assert client.get(f"/api/v1/pipelines/{pipeline_id}", headers=headers).get_json()["status"] == "IDLE"

    client.post("/auth/logout", data={"csrf_token": token})
    login(client, "olga")
    listing = client.get("/").get_data(as_text=True)
    assert "Pause selected" in listing and 'aria-label="Select bulk_guarded"' in listing
    token = csrf_token_of(listing)
    done = client.post("/pipelines/bulk/pause", data={"csrf_token": token, "ids": [pipeline_id]}, follow_redirects=True)
    assert "Pause selected: 1 paused." in done.get_data(as_text=True)
    assert client.get(f"/api/v1/pipelines/{pipeline_id}", headers=headers).get_json()["status"] == "PAUSED"
