"""GET /api/v1/audit?since=: the OpenAPI document calls valid what the server accepts, the empty value
(no filter, as for the cursor) included. It said only `format: date-time`, which "" is not, and
schemathesis' negative_data_rejection found the server (rightly) answering `?since=` with 200."""
from __future__ import annotations

import pytest

from tests.api.conftest import body_of, detail_of
from tests.api.test_audit import AUDIT, VIEWER, app_overrides, as_, create  # noqa: F401 (fixture)


def since_schema(client) -> dict:
    document = client.get("/api/v1/openapi.json").get_json()
    (parameter,) = [p for p in document["paths"][AUDIT]["get"]["parameters"] if p["name"] == "since"]
    return parameter["schema"]


def is_valid(schema: dict, value: str) -> bool:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # schemathesis' validator (a test requirement)
    return jsonschema_rs.Draft4Validator(schema, validate_formats=True).is_valid(value)


def test_empty_since_is_documented_and_accepted_as_no_filter(client):
    create(client)
    assert is_valid(since_schema(client), "")
    assert len(body_of(client.get(f"{AUDIT}?since=", headers=as_(VIEWER)), 200)) == 1


@pytest.mark.parametrize("value", ["2026-11-29T10:00:00Z", "2026-11-29T10:00:00.5+02:00"])
def test_a_date_time_is_documented_valid(client, value):
    assert is_valid(since_schema(client), value)


@pytest.mark.parametrize("value", ["nonsense", " ", "2026-13-45T10:00:00Z", "\x00"])
def test_what_the_server_refuses_is_documented_invalid(client, value):
    assert not is_valid(since_schema(client), value)
    assert detail_of(client.get(AUDIT, query_string={"since": value}, headers=as_(VIEWER)), 422)[0]["loc"] == [
        "query", "since"]
