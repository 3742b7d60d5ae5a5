"""Wire format: FastAPI's bytes, exact key sets and order, UUID strings, UTC timestamps ending in Z."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import TypeAdapter

from .conftest import BASE, PIPELINE_KEYS, RUN_KEYS, assert_pipeline, body_of, get_runs


def test_pipeline_out_bytes_are_fastapis_compact_json(client, pipeline):
    raw = client.get(f"{BASE}/{pipeline['id']}").get_data()
    expected = (
        '{"id":"%s","name":"%s","description":null,"type":"SQL","mode":"full","enabled":true,'
        '"status":"IDLE","target_table":"analytics.film_dim","batch_size":1000}'
    ) % (pipeline["id"], pipeline["name"])
    assert raw == expected.encode()  # no spaces, no trailing newline, contract key order


def test_list_bytes_are_a_compact_array(client, create_pipeline):
    first, second = create_pipeline(), create_pipeline()
    raw = client.get(f"{BASE}/").get_data()
    assert raw.startswith(b'[{"id":"') and raw.endswith(b"}]") and b"},{" in raw
    assert b" " not in raw and b"\n" not in raw  # the generated names have no spaces either
    assert {p["id"] for p in body_of(client.get(f"{BASE}/"), 200)} == {first["id"], second["id"]}


def test_non_ascii_is_raw_utf8_not_escaped(client, create_pipeline):
    name = "Фильмы — ü 🎬"
    created = create_pipeline(name=name, description="описание")
    raw = client.get(f"{BASE}/{created['id']}").get_data()
    assert name.encode("utf-8") in raw and "описание".encode("utf-8") in raw
    assert b"\\u" not in raw


@pytest.mark.parametrize(
    "method, path_template, body, status",
    [
        ("get", "/", None, 200),
        ("post", "/", "create", 201),
        ("get", "/{id}", None, 200),
        ("patch", "/{id}", {"batch_size": 5}, 200),
        ("post", "/{id}/pause", None, 200),
        ("post", "/{id}/run", None, 200),
        ("get", "/{id}/runs", None, 200),
        ("get", "/{id}/runs?limit=0", None, 422),
        ("get", "/00000000-0000-4000-8000-000000000001", None, 404),
        ("post", "/", {}, 422),
        ("post", "/", {"name": "x", "target_table": "nope", "source_query": "SELECT 1"}, 400),
        ("delete", "/{id}", None, 405),
        ("get", "/{id}/nope", None, 404),
    ],
)
def test_every_response_is_exactly_application_json(client, pipeline, method, path_template, body, status):
    if body == "create":
        body = {"name": "another", "target_table": "analytics.film_dim", "source_query": "SELECT 1"}
    response = getattr(client, method)(BASE + path_template.format(id=pipeline["id"]), json=body)
    body_of(response, status)  # checks Content-Type == "application/json", no charset, and the bytes


def test_pipeline_out_has_exactly_the_contract_keys_everywhere(client, pipeline):
    pid = pipeline["id"]
    shapes = [
        pipeline,
        body_of(client.get(f"{BASE}/"), 200)[0],
        body_of(client.get(f"{BASE}/{pid}"), 200),
        body_of(client.patch(f"{BASE}/{pid}", json={}), 200),
        body_of(client.patch(f"{BASE}/{pid}", json={"description": "d"}), 200),
        body_of(client.post(f"{BASE}/{pid}/pause"), 200),
        body_of(client.post(f"{BASE}/{pid}/run"), 200),
    ]
    for shape in shapes:
        assert list(shape) == PIPELINE_KEYS  # nothing extra: no source_query, created_at, ...
        assert_pipeline(shape)


def test_pipeline_run_out_has_exactly_the_contract_keys(client, pipeline):
    body_of(client.post(f"{BASE}/{pipeline['id']}/run"), 200)
    (run,) = body_of(client.get(f"{BASE}/{pipeline['id']}/runs"), 200)
    assert list(run) == RUN_KEYS  # no pipeline_id, no runner bookkeeping
    assert run["status"] == "RUNNING" and run["finished_at"] is None
    assert run["rows_read"] == 0 and run["rows_written"] == 0 and run["error_message"] is None


@pytest.mark.parametrize(
    "stored, shown",
    [
        ("2025-12-10 08:01:06.674452+00", "2025-12-10T08:01:06.674452Z"),  # the contract's example
        ("2025-12-10 11:01:06.674452+03", "2025-12-10T08:01:06.674452Z"),  # other offset: still UTC
        ("2025-12-10 08:01:06+00", "2025-12-10T08:01:06Z"),  # whole second: no fraction
        ("2025-12-10 08:01:06.0005+00", "2025-12-10T08:01:06.000500Z"),  # fraction keeps 6 digits
    ],
)
def test_timestamps_are_utc_with_z_as_pydantic_renders_them(client, pipeline, sql, stored, shown):
    sql(
        "INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read,"
        " rows_written, trigger) VALUES (gen_random_uuid(), %s, 'SUCCESS', %s, %s, 1, 1, 'manual')",
        (pipeline["id"], stored, stored),
    )
    (run,) = get_runs(client, pipeline["id"])
    moment = sql("SELECT %s::timestamptz", (stored,))[0][0].astimezone(timezone.utc)
    assert TypeAdapter(datetime).dump_python(moment, mode="json") == shown  # the oracle agrees
    assert run["started_at"] == run["finished_at"] == shown
