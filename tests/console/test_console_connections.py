"""Console: the connections page, its forms (the password never echoes), the htmx Test button, and
the pipeline form's source connection picker."""
from __future__ import annotations

import pytest

from tests.api.conftest import body_of
from tests.connection_helpers import connection_fields, password_login
from tests.console.conftest import csrf_token
from tests.console.markup import parse

PASSWORD = "console-secret-Pw-never-rendered"
HX = {"HX-Request": "true"}


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


@pytest.fixture
def token(client):
    return csrf_token(client, "/connections/new")


def _form(token: str, **fields) -> dict:
    base = {"csrf_token": token, "name": "", "description": "", "host": "", "port": "", "database": "", "user": "",
            "password": "", "sslmode": "", "options": "", "statement_timeout_s": "", "max_concurrent_runs": ""}
    base.update(fields)
    return base


def test_create_list_edit_without_ever_rendering_the_password(client, token, source_url):
    fields = connection_fields(source_url)
    response = client.post("/connections/new", data=_form(
        token, name="prod", host=fields["host"], port=str(fields["port"]), database=fields["database"],
        user=fields["user"], password=PASSWORD, max_concurrent_runs="2"))
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get("/connections").get_data(as_text=True)
    assert "prod" in page and "Never tested" in page and PASSWORD not in page
    connection = client.get("/api/v1/connections/").get_json()[0]
    assert connection["password_set"] is True and connection["max_concurrent_runs"] == 2
    edit = client.get(f"/connections/{connection['id']}/edit").get_data(as_text=True)
    password = parse(edit).one("input#password").attrs
    assert (password["name"], password["type"], password["value"]) == ("password", "password", "")
    assert "set; leave empty to keep it" in edit and PASSWORD not in edit
    # Saving with an empty password box keeps the password; a bad value re-renders without echoing it.
    saved = client.post(f"/connections/{connection['id']}/edit", data=_form(
        token, name="prod", host=fields["host"], port="5432", database=fields["database"], user=fields["user"],
        max_concurrent_runs="3"))
    assert saved.status_code == 303
    assert client.get(f"/api/v1/connections/{connection['id']}").get_json()["password_set"] is True
    refused = client.post(f"/connections/{connection['id']}/edit", data=_form(
        token, name="prod", host=fields["host"], port="not-a-port", database=fields["database"],
        user=fields["user"], password=PASSWORD))
    assert refused.status_code == 400
    body = refused.get_data(as_text=True)
    assert PASSWORD not in body and 'id="port-error"' in body
    removed = client.post(f"/connections/{connection['id']}/edit", data=_form(
        token, name="prod", host=fields["host"], database=fields["database"], user=fields["user"], remove_password="1"))
    assert removed.status_code == 303
    assert client.get(f"/api/v1/connections/{connection['id']}").get_json()["password_set"] is False


def test_name_taken_is_shown_on_its_field(client, token):
    for expected in (303, 400):
        response = client.post("/connections/new", data=_form(token, name="twice", host="h", database="d", user="u"))
        assert response.status_code == expected
    assert "Connection with this name already exists" in response.get_data(as_text=True)


def test_the_test_button_swaps_the_result_in(client, token, dsn, source_url):
    with password_login(dsn, "etl_console_test_login", PASSWORD) as login:
        if login is None:
            pytest.skip("the test server's pg_hba.conf is not writable from here")
        fields = {**connection_fields(source_url), "user": login, "password": PASSWORD}
        good = body_of(client.post("/api/v1/connections/", json={"name": "good", **fields}), 201)
        bad = body_of(client.post("/api/v1/connections/", json={"name": "bad", **{**fields, "password": "wrong"}}), 201)
        ok = client.post(f"/connections/{good['id']}/test", data={"csrf_token": token}, headers=HX)
        assert ok.status_code == 200
        fragment = ok.get_data(as_text=True)
        assert fragment.lstrip().startswith(f'<td class="last-test" id="test-{good["id"]}"')
        assert 'data-test="ok"' in fragment and "PostgreSQL" in fragment
        failed = client.post(f"/connections/{bad['id']}/test", data={"csrf_token": token}, headers=HX).get_data(as_text=True)
        assert 'data-test="failed"' in failed and "password authentication failed" in failed
        assert PASSWORD not in fragment + failed
        page = client.get("/connections").get_data(as_text=True)  # the last results stay on the list
        assert 'data-test="ok"' in page and 'data-test="failed"' in page and PASSWORD not in page


def test_delete_refused_while_used_names_the_pipelines(client, token, source_url):
    fields = connection_fields(source_url)
    connection = body_of(client.post("/api/v1/connections/", json={"name": "used", **fields}), 201)
    body_of(client.post("/api/v1/pipelines/", json={
        "name": "reads_used", "target_table": "analytics.film_dim", "source_connection": "used",
        "source_query": "SELECT id AS film_id, title, rating FROM content.film_work"}), 201)
    refused = client.post(f"/connections/{connection['id']}/delete", data={"csrf_token": token})
    assert refused.status_code == 409 and "Connection is used by pipelines: reads_used" in refused.get_data(as_text=True)


def test_the_pipeline_form_picks_a_source_connection(client, token, source_url):
    fields = connection_fields(source_url)
    body_of(client.post("/api/v1/connections/", json={"name": "picked", **fields}), 201)
    page = client.get("/pipelines/new").get_data(as_text=True)
    assert '<select id="source_connection" name="source_connection"' in page and '<option value="picked"' in page
    form = {"csrf_token": token, "name": "with_source", "description": "", "target_table": "analytics.film_dim",
            "batch_size": "1000", "mode": "full", "type": "SQL", "enabled": "true", "incremental_key": "",
            "source_query": "SELECT id AS film_id, title, rating FROM content.film_work", "source_connection": "picked"}
    created = client.post("/pipelines/new", data=form)
    assert created.status_code == 303, created.get_data(as_text=True)
    pipeline_id = created.headers["Location"].rstrip("/").split("/")[-1]
    assert client.get(f"/api/v1/pipelines/{pipeline_id}/settings").get_json()["source_connection"]["name"] == "picked"
    edit = client.get(f"/pipelines/{pipeline_id}/edit").get_data(as_text=True)
    assert '<option value="picked" selected>' in edit
    # Back to the default source, from the edit form.
    saved = client.post(f"/pipelines/{pipeline_id}/edit", data={**form, "source_connection": ""})
    assert saved.status_code == 303
    assert client.get(f"/api/v1/pipelines/{pipeline_id}/settings").get_json()["source_connection"] is None
    unknown = client.post("/pipelines/new", data={**form, "name": "other", "source_connection": "ghost"})
    assert unknown.status_code == 400
    assert 'id="source_connection-error">source_connection &#39;ghost&#39; does not exist' in unknown.get_data(as_text=True)
