"""Create and edit forms: the API's schemas and services behind them, so the messages are the API's."""
from __future__ import annotations

import html
import re

import pytest

from tests.console.markup import parse

FILM_QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"


def field_errors(response) -> dict[str, str]:
    """Inline messages by field; a message about no single field is under "__form__"."""
    page = parse(response)
    found = {error.attrs["id"].removesuffix("-error"): error.text
             for error in page.select("p.field-error[id]") if error.attrs["id"].endswith("-error")}
    found.update({"__form__": error.text for error in page.select("p.form-error")})
    return found


def api_message(client, body: dict) -> str:
    """What the API answers for the same values: the 400 detail or the first 422 msg."""
    response = client.post("/api/v1/pipelines/", json=body)
    assert response.status_code in (400, 422), response.get_data(as_text=True)
    detail = response.get_json()["detail"]
    return detail if isinstance(detail, str) else detail[0]["msg"]


def form_body(token: str, **fields) -> dict:
    body = {
        "csrf_token": token,
        "name": "from_form",
        "description": "",
        "type": "SQL",
        "mode": "full",
        "enabled": "true",
        "target_table": "analytics.film_dim",
        "batch_size": "1000",
        "source_query": FILM_QUERY,
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


def test_create_redirects_to_the_new_pipeline(client, token):
    response = client.post(
        "/pipelines/new",
        data=form_body(token, name="  films_from_form ", description="line one\r\nline two",
                       batch_size="250", source_query="SELECT id AS film_id, title, rating\r\nFROM content.film_work"),
    )
    assert response.status_code == 303
    pipeline_id = re.fullmatch(r"/pipelines/([0-9a-f-]{36})", response.headers["Location"]).group(1)
    created = client.get(f"/api/v1/pipelines/{pipeline_id}").get_json()
    assert created["name"] == "films_from_form"
    assert created["description"] == "line one\nline two"
    assert created["batch_size"] == 250 and created["status"] == "IDLE" and created["enabled"] is True
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "SELECT id AS film_id, title, rating\nFROM content.film_work" in page


def test_create_with_the_box_unticked_makes_a_paused_pipeline(client, token):
    response = client.post("/pipelines/new", data=form_body(token, enabled=None, description=None, batch_size=""))
    assert response.status_code == 303
    pipeline = client.get("/api/v1/pipelines/").get_json()[0]
    assert pipeline["enabled"] is False and pipeline["status"] == "PAUSED"
    assert pipeline["batch_size"] == 1000 and pipeline["description"] is None  # the API's defaults


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", "abc"),
        ("batch_size", "0"),
        ("batch_size", "1.5"),
        ("batch_size", "2000000"),
        ("name", ""),
        ("name", "x" * 256),
        ("target_table", "analytics.secret"),
        ("source_query", "DELETE FROM analytics.film_dim"),
        ("source_query", "SELECT 1; SELECT 2"),
        ("source_query", "SELEC oops"),
        ("mode", "sometimes"),
    ],
)
def test_inline_errors_carry_the_apis_messages(client, token, field, value):
    body = {"name": "from_api", "target_table": "analytics.film_dim", "source_query": FILM_QUERY, field: value}
    expected = api_message(client, body)
    response = client.post("/pipelines/new", data=form_body(token, **{field: value}))
    assert response.status_code == 400
    assert field_errors(response) == {field: expected}
    page = response.get_data(as_text=True)
    assert f'id="{field}"' in page and 'aria-invalid="true"' in page
    # What the operator typed is shown back for correction.
    if field in ("source_query",):
        assert html.escape(value, quote=False) in page
    assert client.get("/api/v1/pipelines/").get_json() == []


def test_name_taken_is_reported_on_the_name_field(client, token, create_pipeline):
    create_pipeline(name="taken")
    response = client.post("/pipelines/new", data=form_body(token, name="taken"))
    assert response.status_code == 400
    assert field_errors(response) == {"name": "Pipeline with this name already exists"}


def test_edit_applies_only_what_changed(client, token, create_pipeline):
    pipeline = create_pipeline(name="editable", batch_size=100)
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")  # paused by an operator, still enabled
    page = client.get(f"/pipelines/{pipeline['id']}/edit").get_data(as_text=True)
    assert 'value="editable"' in page and 'value="100"' in page and "Save changes" in page
    assert "Cannot update pipeline while it is RUNNING" not in page

    response = client.post(
        f"/pipelines/{pipeline['id']}/edit",
        data=form_body(token, name="editable", batch_size="100", description="now described"),
    )
    assert response.status_code == 303 and response.headers["Location"] == f"/pipelines/{pipeline['id']}"
    after = client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()
    assert after["description"] == "now described"
    # The form also carried enabled=true, unchanged: the pause stands (a PATCH of only the description).
    assert after["status"] == "PAUSED"

    client.post(f"/pipelines/{pipeline['id']}/edit", data=form_body(token, name="editable", enabled=None, batch_size="7"))
    after = client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()
    assert after["enabled"] is False and after["batch_size"] == 7


def test_edit_errors_are_inline_and_change_nothing(client, token, create_pipeline):
    create_pipeline(name="other")
    pipeline = create_pipeline(name="mine")
    response = client.post(f"/pipelines/{pipeline['id']}/edit", data=form_body(token, name="other", batch_size="-1"))
    assert response.status_code == 400
    assert field_errors(response) == {"batch_size": "Input should be greater than or equal to 1"}
    response = client.post(f"/pipelines/{pipeline['id']}/edit", data=form_body(token, name="other"))
    assert field_errors(response) == {"name": "Pipeline with this name already exists"}
    assert 'value="other"' in response.get_data(as_text=True)
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()["name"] == "mine"


def test_edit_is_refused_while_running_with_the_contracts_message(client, token, create_pipeline, sql):
    pipeline = create_pipeline(name="busy")
    sql("UPDATE etl_pipelines SET status = 'RUNNING' WHERE id = %s", (pipeline["id"],))
    page = client.get(f"/pipelines/{pipeline['id']}/edit").get_data(as_text=True)
    assert "Cannot update pipeline while it is RUNNING" in page
    response = client.post(f"/pipelines/{pipeline['id']}/edit", data=form_body(token, name="busy", batch_size="5"))
    assert response.status_code == 400
    assert "Cannot update pipeline while it is RUNNING" in parse(response).texts("p.form-error")
    api = client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"batch_size": 5})
    assert api.status_code == 409 and api.get_json()["detail"] == "Cannot update pipeline while it is RUNNING"
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()["batch_size"] == 1000


def test_incremental_mode_without_a_key_is_refused_as_the_api_refuses_it(client, token):
    from etl_console.api.schemas import PIPELINE_MODES

    if "incremental" not in PIPELINE_MODES:
        pytest.skip("this build has no incremental mode")
    expected = api_message(
        client, {"name": "inc", "target_table": "analytics.film_dim", "source_query": FILM_QUERY, "mode": "incremental"}
    )
    response = client.post("/pipelines/new", data=form_body(token, mode="incremental", incremental_key=""))
    assert response.status_code == 400
    assert expected in field_errors(response).values()
    response = client.post("/pipelines/new", data=form_body(token, mode="incremental", incremental_key="modified",
                                                           source_query="SELECT id AS film_id, title, rating, modified FROM content.film_work"))
    assert response.status_code == 303
