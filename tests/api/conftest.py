"""Helpers for the v1 contract tests. Everything is checked as a client sees it over HTTP."""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

BASE = "/api/v1/pipelines"
UNKNOWN_ID = "6b1f0c1e-3c7a-4d7e-9a52-0d6f2f1e9b11"  # a valid UUID that no test creates

PIPELINE_KEYS = ["id", "name", "description", "type", "mode", "enabled", "status", "target_table", "batch_size"]
RUN_KEYS = ["id", "status", "started_at", "finished_at", "rows_read", "rows_written", "error_message"]
UTC_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


@pytest.fixture
def app_overrides() -> dict:
    # No runner unless a module asks for one: POST /run then leaves its run queued in RUNNING.
    return {"START_RUNNER": False}


def _not_json(constant: str):
    raise AssertionError(f"{constant} is not JSON")


def body_of(response, status: int) -> Any:
    """Assert the status, Content-Type and FastAPI's exact bytes; return the parsed JSON.

    FastAPI's JSONResponse writes json.dumps(..., ensure_ascii=False, separators=(",", ":")):
    compact, raw UTF-8, no trailing newline, keys in declared order. Re-encoding the parsed body
    (json keeps key order) must give back the very same bytes.
    """
    raw = response.get_data()
    assert response.status_code == status, raw
    assert response.headers["Content-Type"] == "application/json"
    data = json.loads(raw, parse_constant=_not_json)
    assert raw == json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return data


def detail_of(response, status: int) -> Any:
    data = body_of(response, status)
    assert list(data) == ["detail"], data
    return data["detail"]


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


def assert_pipeline(obj: dict) -> dict:
    """PipelineOut: exactly the contract's keys, in its order, with its types."""
    assert list(obj) == PIPELINE_KEYS
    assert is_uuid(obj["id"])
    assert isinstance(obj["name"], str)
    assert obj["description"] is None or isinstance(obj["description"], str)
    assert obj["type"] in ("SQL", "PYTHON") and obj["mode"] in ("full", "incremental")
    assert isinstance(obj["enabled"], bool)
    assert obj["status"] in ("IDLE", "RUNNING", "PAUSED", "FAILED")
    assert isinstance(obj["target_table"], str)
    assert isinstance(obj["batch_size"], int) and not isinstance(obj["batch_size"], bool)
    return obj


def assert_run(obj: dict) -> dict:
    """PipelineRunOut: exactly the contract's keys, in its order, with its types."""
    assert list(obj) == RUN_KEYS
    assert is_uuid(obj["id"])
    assert obj["status"] in ("RUNNING", "SUCCESS", "FAILED")
    assert UTC_TIMESTAMP.fullmatch(obj["started_at"]), obj["started_at"]
    assert obj["finished_at"] is None or UTC_TIMESTAMP.fullmatch(obj["finished_at"]), obj["finished_at"]
    for key in ("rows_read", "rows_written"):
        assert isinstance(obj[key], int) and not isinstance(obj[key], bool) and obj[key] >= 0
    assert obj["error_message"] is None or isinstance(obj["error_message"], str)
    return obj


def get_pipeline(client, pipeline_id: str) -> dict:
    return assert_pipeline(body_of(client.get(f"{BASE}/{pipeline_id}"), 200))


def get_runs(client, pipeline_id: str, query: str = "") -> list[dict]:
    return [assert_run(run) for run in body_of(client.get(f"{BASE}/{pipeline_id}/runs{query}"), 200)]


@pytest.fixture
def pipeline(create_pipeline) -> dict:
    """One enabled film_dim pipeline, as the create response returned it."""
    return create_pipeline()


@pytest.fixture
def insert_runs(sql):
    """Insert finished runs straight into etl_pipeline_runs: history without running anything.

    Run i (1-based) started i minutes before 2025-12-10 08:00 UTC, so run 1 is the newest.
    Returns the run ids, newest first.
    """

    def insert(pipeline_id: str, count: int) -> list[str]:
        rows = sql(
            "INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read,"
            " rows_written, error_message, trigger)"
            " SELECT gen_random_uuid(), %s, 'SUCCESS', ts, ts + interval '1.5 seconds', i, i, NULL, 'manual'"
            " FROM generate_series(1, %s) AS i,"
            " LATERAL (SELECT timestamptz '2025-12-10 08:00:00+00' - make_interval(mins => i)) AS t(ts)"
            " RETURNING id, started_at",
            (pipeline_id, count),
        )
        return [str(run_id) for run_id, _ in sorted(rows, key=lambda row: row[1], reverse=True)]

    return insert
