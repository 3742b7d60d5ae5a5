"""A form field that failed names its help text and its error message in ONE aria-describedby: the
browser keeps only the first of two such attributes, and a screen reader then never reads the error."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.console.test_console_forms import form_body

HELP_IDS = {
    "target_table": "target-help",
    "batch_size": "batch-help",
    "source_connection": "connection-help",
    "incremental_key": "key-help",
    "source_query": "query-help",
}


class FormFields(HTMLParser):
    """Every element with an id, and the raw attribute list (duplicates kept) of each form field."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.fields: dict[str, list[tuple[str, str | None]]] = {}

    def handle_starttag(self, tag, attrs):
        named = dict(attrs)
        if named.get("id"):
            self.ids.add(named["id"])
        if tag in ("input", "select", "textarea") and named.get("name") and named.get("type") != "hidden":
            self.fields[named["name"]] = attrs


def parse(response) -> FormFields:
    parser = FormFields()
    parser.feed(response.get_data(as_text=True))
    return parser


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"target_table": "public.not_allowed"}, "target_table"),
        ({"batch_size": "0"}, "batch_size"),
        ({"source_query": "DELETE FROM analytics.film_dim"}, "source_query"),
        ({"mode": "incremental", "incremental_key": ""}, "incremental_key"),
        ({"name": ""}, "name"),
    ],
)
def test_an_errored_field_names_its_help_and_its_error_once(client, token, changes, failed):
    response = client.post("/pipelines/new", data=form_body(token, **changes))
    assert response.status_code in (400, 422)
    page = parse(response)
    errored = {name for name, attrs in page.fields.items() if ("aria-invalid", "true") in attrs}
    assert failed in errored
    for name in errored:
        described = [value for attribute, value in page.fields[name] if attribute == "aria-describedby"]
        assert len(described) == 1, f"{name} has {len(described)} aria-describedby attributes"
        expected = [HELP_IDS[name], f"{name}-error"] if name in HELP_IDS else [f"{name}-error"]
        assert described[0].split() == expected
        assert set(expected) <= page.ids, f"{name} names an id the page does not have"


def test_fields_without_errors_keep_their_help_alone(client):
    page = parse(client.get("/pipelines/new"))
    for name, help_id in HELP_IDS.items():
        described = [value for attribute, value in page.fields[name] if attribute == "aria-describedby"]
        assert described == [help_id]
        assert ("aria-invalid", "true") not in page.fields[name]
    assert not [a for a, _ in page.fields["name"] if a == "aria-describedby"]


def test_the_alert_channel_form_describes_its_failed_field(client, token):
    client.post("/alerts/channels", data={"csrf_token": token, "name": "ops", "kind": "webhook",
                                          "url": "http://127.0.0.1:9/hook", "secret": "s" * 20})
    response = client.post("/alerts/channels", data={"csrf_token": token, "name": "ops", "kind": "webhook",
                                                     "url": "http://127.0.0.1:9/other", "secret": "s" * 20})
    assert response.status_code == 400
    page = parse(response)
    assert ("aria-invalid", "true") in page.fields["name"]
    assert [value for attribute, value in page.fields["name"] if attribute == "aria-describedby"] == ["name-error"]
    assert "name-error" in page.ids
    assert ("aria-invalid", "true") not in page.fields["url"]
