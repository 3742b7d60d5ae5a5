"""Routing-level errors in FastAPI's JSON shape, path-id validation, and the OpenAPI document."""
from __future__ import annotations

import json
import uuid

import pytest
from pydantic import TypeAdapter, ValidationError

from .conftest import BASE, UNKNOWN_ID, detail_of

# Every pipeline endpoint: (method, path under BASE with {id}, body).
ENDPOINTS = [
    ("get", "/{id}", None),
    ("patch", "/{id}", {"batch_size": 5}),
    ("post", "/{id}/run", None),
    ("post", "/{id}/pause", None),
    ("get", "/{id}/runs", None),
]


def oracle_path_errors(value: str) -> list[dict] | None:
    """FastAPI's `pipeline_id: UUID` path parameter, validated by Pydantic."""
    try:
        TypeAdapter(uuid.UUID).validate_python(value)
    except ValidationError as error:
        errors = [{**e, "loc": ["path", "pipeline_id"]} for e in error.errors(include_url=False)]
        return json.loads(json.dumps(errors))
    return None


@pytest.mark.parametrize("method, path, body", ENDPOINTS)
def test_unknown_pipeline_is_404_on_every_endpoint(client, method, path, body):
    response = getattr(client, method)(BASE + path.format(id=UNKNOWN_ID), json=body)
    assert detail_of(response, 404) == "Pipeline not found"


@pytest.mark.parametrize("method, path, body", ENDPOINTS)
def test_non_uuid_path_id_is_422_on_every_endpoint(client, method, path, body):
    response = getattr(client, method)(BASE + path.format(id="not-a-uuid"), json=body)
    assert detail_of(response, 422) == oracle_path_errors("not-a-uuid")


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "123",
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        "00000000-0000-0000-0000-00000000000g",
        "0" * 31,
        "0" * 33,
        "00000000-0000-0000-0000-0000000000000",
        "0000000-00000-0000-0000-000000000000",  # Python's uuid.UUID would accept this one
        "{00000000-0000-0000-0000-000000000000",
        "00000000-0000-0000-0000-00000000000é",
        "urn:uuid:zz",
        "x" * 40,
    ],
)
def test_path_id_errors_match_pydantic(client, bad_id):
    expected = oracle_path_errors(bad_id)
    assert expected is not None
    assert detail_of(client.get(f"{BASE}/{bad_id}"), 422) == expected


def test_path_and_body_errors_are_reported_together(client):
    # FastAPI validates path, query and body, then reports every error: path first, then body.
    response = client.patch(f"{BASE}/not-a-uuid", json={"batch_size": "x"})
    assert [error["loc"] for error in detail_of(response, 422)] == [["path", "pipeline_id"], ["body", "batch_size"]]


def test_path_and_query_errors_are_reported_together(client):
    response = client.get(f"{BASE}/not-a-uuid/runs?limit=0")
    assert [error["loc"] for error in detail_of(response, 422)] == [["path", "pipeline_id"], ["query", "limit"]]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nope", "/api/v1/pipelines/{id}/nope", "/api/v1/pipelines/{id}/run/extra", "/api/v2/pipelines/", "/api/v1/"],
)
def test_unknown_path_is_json_404_not_found(client, pipeline, path):
    assert detail_of(client.get(path.format(id=pipeline["id"])), 404) == "Not Found"


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("delete", "/", {"GET", "POST"}),
        ("put", "/", {"GET", "POST"}),
        ("delete", "/{id}", {"GET", "PATCH"}),
        ("put", "/{id}", {"GET", "PATCH"}),
        ("post", "/{id}", {"GET", "PATCH"}),
        ("get", "/{id}/run", {"POST"}),
        ("get", "/{id}/pause", {"POST"}),
        ("post", "/{id}/runs", {"GET"}),
    ],
)
def test_wrong_method_is_json_405(client, pipeline, method, path, allowed):
    response = getattr(client, method)(BASE + path.format(id=pipeline["id"]))
    assert detail_of(response, 405) == "Method Not Allowed"
    # RFC 9110 (and Starlette) send Allow with a 405.
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def openapi(client) -> dict:
    # Pretty-printed by flask-smorest, unlike FastAPI's compact one: layout is not a contract point.
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    return json.loads(response.get_data())


def test_openapi_lists_every_path_and_method(client):
    document = openapi(client)
    operations = {
        path: {method for method in item if method in {"get", "post", "patch", "put", "delete"}}
        for path, item in document["paths"].items()
    }
    assert operations["/api/v1/pipelines/"] == {"get", "post"}
    assert operations["/api/v1/pipelines/{pipeline_id}"] == {"get", "patch"}
    assert operations["/api/v1/pipelines/{pipeline_id}/run"] == {"post"}
    assert operations["/api/v1/pipelines/{pipeline_id}/pause"] == {"post"}
    assert operations["/api/v1/pipelines/{pipeline_id}/runs"] == {"get"}


def test_openapi_documents_the_contract_shapes(client):
    document = openapi(client)
    schemas = document["components"]["schemas"]
    assert list(schemas["PipelineOut"]["properties"]) == [
        "id", "name", "description", "type", "mode", "enabled", "status", "target_table", "batch_size"
    ]
    assert list(schemas["PipelineRunOut"]["properties"]) == [
        "id", "status", "started_at", "finished_at", "rows_read", "rows_written", "error_message"
    ]
    runs = document["paths"]["/api/v1/pipelines/{pipeline_id}/runs"]["get"]
    (limit,) = [p for p in runs["parameters"] if p["name"] == "limit"]
    assert (limit["in"], limit["schema"]["default"], limit["schema"]["minimum"], limit["schema"]["maximum"]) == (
        "query", 50, 1, 500
    )
    assert "201" in document["paths"]["/api/v1/pipelines/"]["post"]["responses"]
