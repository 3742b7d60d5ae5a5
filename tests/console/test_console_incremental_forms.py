"""Create and edit forms with mode and incremental_key: the service's InvalidPipeline messages inline,
next to the field they name, exactly as the API words them."""
from __future__ import annotations

from tests.console.markup import parse
from tests.console.test_console_forms import api_message, field_errors, form_body

INCREMENTAL_QUERY = "SELECT id AS film_id, title, rating, modified FROM content.film_work"


def test_create_offers_both_modes_and_an_incremental_key(client):
    page = parse(client.get("/pipelines/new"))
    mode = page.one("select#mode")
    assert mode.attrs["name"] == "mode"
    assert [(option.attrs["value"], option.text, "selected" in option.attrs) for option in mode.select("option")] == [
        ("full", "full", True), ("incremental", "incremental", False)]
    key = page.one("input#incremental_key").attrs
    assert key["name"] == "incremental_key" and key["value"] == ""


def test_create_an_incremental_pipeline_through_the_form(client, token):
    response = client.post("/pipelines/new", data=form_body(
        token, name="inc_form", mode="incremental", incremental_key="  modified ", source_query=INCREMENTAL_QUERY))
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<dd>incremental on <code>modified</code></dd>" in page
    assert 'id="state"' in page and "Incremental state" in page


def test_edit_switches_to_incremental_and_back(client, token, create_pipeline):
    pipeline = create_pipeline(name="switching", source_query=INCREMENTAL_QUERY)
    url = f"/pipelines/{pipeline['id']}/edit"
    body = form_body(token, name="switching", source_query=INCREMENTAL_QUERY, mode="incremental", incremental_key="")
    refused = client.post(url, data=body)
    assert refused.status_code == 400
    expected = api_message(client, {"name": "x", "target_table": "analytics.film_dim", "source_query": INCREMENTAL_QUERY,
                                    "mode": "incremental"})
    assert field_errors(refused) == {"incremental_key": expected}
    assert '<option value="incremental" selected>' in refused.get_data(as_text=True)  # kept as chosen

    body["incremental_key"] = "modified"
    assert client.post(url, data=body).status_code == 303
    page = client.get(f"/pipelines/{pipeline['id']}").get_data(as_text=True)
    assert "incremental on <code>modified</code>" in page and 'id="state"' in page
    edit = client.get(url).get_data(as_text=True)
    assert 'value="modified"' in edit and '<option value="incremental" selected>' in edit

    body["mode"] = "full"
    assert client.post(url, data=body).status_code == 303
    assert 'id="state"' not in client.get(f"/pipelines/{pipeline['id']}").get_data(as_text=True)


def test_a_target_without_a_primary_key_is_reported_on_the_target_field(client, token, sql):
    sql("ALTER TABLE analytics.film_rating_agg DROP CONSTRAINT film_rating_agg_pkey")
    try:
        body = {"target_table": "analytics.film_rating_agg", "mode": "incremental", "incremental_key": "film_id",
                "source_query": "SELECT film_id, 1 AS ratings_count FROM ugc.ratings"}
        expected = api_message(client, {"name": "x", **body})
        response = client.post("/pipelines/new", data=form_body(token, **body))
        assert response.status_code == 400
        assert field_errors(response) == {"target_table": expected}
    finally:
        sql("ALTER TABLE analytics.film_rating_agg ADD PRIMARY KEY (film_id)")
