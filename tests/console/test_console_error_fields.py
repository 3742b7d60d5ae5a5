"""A domain error names the field it concerns (error.field: a class attribute, or given where it is
raised), and the console's forms show its message next to that field. They used to guess the field
from the words of the message; these are errors that guess used to place."""
from __future__ import annotations

import pytest

from etl_console.console import forms
from etl_console.services import errors
from tests.console.markup import parse
from tests.console.test_console_forms import field_errors, form_body

INCREMENTAL_QUERY = "SELECT id AS film_id, title, rating, modified FROM content.film_work"


def test_incremental_mode_without_a_key_lands_on_the_key_field(client, token):
    response = client.post("/pipelines/new", data=form_body(token, mode="incremental", incremental_key="",
                                                           source_query=INCREMENTAL_QUERY))
    assert response.status_code == 400
    assert field_errors(response) == {
        "incremental_key": "incremental mode needs an incremental_key: the source column that grows with new rows"}


def test_a_target_without_a_primary_key_lands_on_the_target_field(client, token, sql):
    sql("ALTER TABLE analytics.film_rating_agg DROP CONSTRAINT film_rating_agg_pkey")
    try:
        response = client.post("/pipelines/new", data=form_body(
            token, target_table="analytics.film_rating_agg", mode="incremental", incremental_key="film_id",
            source_query="SELECT film_id, 1 AS ratings_count FROM ugc.ratings"))
        assert response.status_code == 400
        assert field_errors(response) == {"target_table": "target_table 'analytics.film_rating_agg' has no primary "
                                                          "key; incremental mode upserts on it"}
    finally:
        sql("ALTER TABLE analytics.film_rating_agg ADD PRIMARY KEY (film_id)")


@pytest.mark.parametrize(
    ("data", "creating", "field"),
    [({"host": "", "database": "d", "user": "u"}, False, "host"),
     ({"host": "h", "database": "d", "user": "", "port": 5432}, False, "user"),
     ({"host": "h"}, True, "database")],
)
def test_connection_settings_name_their_field_and_the_form_shows_it_there(data, creating, field):
    # The console's schemas refuse most of these first; the service's own refusal names its field too.
    from etl_console.console import connections as connection_pages
    from etl_console.services import connections as connection_service

    with pytest.raises(errors.InvalidConnection) as refused:
        connection_service._settings_from(data, creating=creating)
    assert refused.value.field == field and field in str(refused.value)
    assert connection_pages._field_of(refused.value) == field


def test_a_taken_channel_name_lands_on_the_name_field(client, token):
    channel = {"csrf_token": token, "name": "ops", "kind": "webhook", "url": "https://hooks.example.org/etl",
               "secret": "s" * 20}
    assert client.post("/alerts/channels", data=channel).status_code == 303
    response = client.post("/alerts/channels", data=channel)
    assert response.status_code == 400
    name_field = parse(response).one('label[for="ch-name"]').closest("div.field")
    assert "Alert channel with this name already exists" in name_field.text


@pytest.mark.parametrize(
    ("error", "shown_on"),
    [
        # The message names other fields; the error's own field decides.
        (errors.InvalidPipeline("source_query and target_table disagree on batch_size", field="incremental_key"),
         "incremental_key"),
        (errors.InvalidPipeline("target_table 'x' is not what batch_size wants"), forms.FORM_ERROR),
        (errors.TargetNotAllowed("source_query"), "target_table"),
        (errors.SourceUnreachable("source_query cannot run: target_table"), forms.SOURCE_FIELD),
        (errors.InvalidPipeline("a field this form has not", field="schedule"), forms.FORM_ERROR),
    ],
)
def test_the_error_s_field_decides_not_its_words(error, shown_on):
    def refuse():
        raise error

    form = forms.PipelineForm.blank()
    assert forms._call(form, refuse) is None
    assert form.errors == {shown_on: str(error)}
