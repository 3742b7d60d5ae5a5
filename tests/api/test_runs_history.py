"""GET /api/v1/pipelines/{pipeline_id}/runs?limit= (contract §2.4, §5.1)."""
from __future__ import annotations

import json
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from .conftest import BASE, UNKNOWN_ID, body_of, detail_of, get_runs


class RunsQuery(BaseModel):
    """The FastAPI original's `limit: int = Query(50, ge=1, le=500)`, as an oracle."""

    limit: Annotated[int, Field(ge=1, le=500)] = 50


def oracle_query_errors(value: str) -> list[dict] | None:
    try:
        RunsQuery.model_validate({"limit": value})
    except ValidationError as error:
        errors = [{**e, "loc": ["query", *e["loc"]]} for e in error.errors(include_url=False)]
        return json.loads(json.dumps(errors))
    return None


def test_no_runs_is_an_empty_array(client, pipeline):
    assert client.get(f"{BASE}/{pipeline['id']}/runs").get_data() == b"[]"


def test_runs_are_newest_first(client, pipeline, insert_runs):
    ids = insert_runs(pipeline["id"], 5)
    runs = get_runs(client, pipeline["id"])
    assert [run["id"] for run in runs] == ids
    assert [run["started_at"] for run in runs] == sorted((run["started_at"] for run in runs), reverse=True)


def test_run_fields_come_from_the_stored_run(client, pipeline, sql):
    sql(
        "INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read, rows_written,"
        " error_message, trigger) VALUES ('8db9cb6a-7507-4b57-bda4-30e925605ffa', %s, 'FAILED',"
        " '2025-12-10 08:01:06.674452+00', '2025-12-10 08:01:06.699992+00', 10, 7, 'boom', 'manual')",
        (pipeline["id"],),
    )
    assert get_runs(client, pipeline["id"]) == [
        {
            "id": "8db9cb6a-7507-4b57-bda4-30e925605ffa",
            "status": "FAILED",
            "started_at": "2025-12-10T08:01:06.674452Z",
            "finished_at": "2025-12-10T08:01:06.699992Z",
            "rows_read": 10,
            "rows_written": 7,
            "error_message": "boom",
        }
    ]


def test_default_limit_is_50(client, pipeline, insert_runs):
    ids = insert_runs(pipeline["id"], 60)
    assert [run["id"] for run in get_runs(client, pipeline["id"])] == ids[:50]


@pytest.mark.parametrize("limit, shown", [(1, 1), (2, 2), (50, 50), (59, 59), (60, 60), (500, 60)])
def test_limit_within_bounds(client, pipeline, insert_runs, limit, shown):
    ids = insert_runs(pipeline["id"], 60)
    assert [run["id"] for run in get_runs(client, pipeline["id"], f"?limit={limit}")] == ids[:shown]


def test_limit_500_returns_500_of_more(client, pipeline, insert_runs):
    ids = insert_runs(pipeline["id"], 501)
    assert [run["id"] for run in get_runs(client, pipeline["id"], "?limit=500")] == ids[:500]


def test_runs_are_per_pipeline(client, create_pipeline, insert_runs):
    first, second = create_pipeline(), create_pipeline()
    first_ids = insert_runs(first["id"], 3)
    insert_runs(second["id"], 2)
    assert [run["id"] for run in get_runs(client, first["id"])] == first_ids


@pytest.mark.parametrize(
    "value",
    ["0", "501", "abc", "-1", "", "1.5", "1e2", "10000000000000000000000", "٣", "0x10"],
)
def test_limit_out_of_range_or_not_an_integer_is_422_as_fastapi(client, pipeline, value):
    expected = oracle_query_errors(value)
    assert expected is not None and expected[0]["loc"] == ["query", "limit"]
    assert detail_of(client.get(f"{BASE}/{pipeline['id']}/runs", query_string={"limit": value}), 422) == expected


@pytest.mark.parametrize("value, shown", [(" 2 ", 2), ("2.0", 2), ("+3", 3), ("1_0", 10), ("007", 7)])
def test_limit_accepts_what_pydantic_accepts(client, pipeline, insert_runs, value, shown):
    assert oracle_query_errors(value) is None
    insert_runs(pipeline["id"], 12)
    assert len(get_runs(client, pipeline["id"], f"?limit={value}")) == shown


def test_limit_exact_422_bodies(client, pipeline):
    url = f"{BASE}/{pipeline['id']}/runs"
    assert detail_of(client.get(f"{url}?limit=0"), 422) == [
        {"type": "greater_than_equal", "loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1",
         "input": "0", "ctx": {"ge": 1}}
    ]
    assert detail_of(client.get(f"{url}?limit=501"), 422) == [
        {"type": "less_than_equal", "loc": ["query", "limit"], "msg": "Input should be less than or equal to 500",
         "input": "501", "ctx": {"le": 500}}
    ]
    assert detail_of(client.get(f"{url}?limit=abc"), 422) == [
        {"type": "int_parsing", "loc": ["query", "limit"],
         "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "abc"}
    ]


def test_repeated_limit_uses_the_last_value_as_starlette_does(client, pipeline, insert_runs):
    insert_runs(pipeline["id"], 5)
    assert len(get_runs(client, pipeline["id"], "?limit=1&limit=3")) == 3


def test_unknown_query_parameters_are_ignored(client, pipeline, insert_runs):
    insert_runs(pipeline["id"], 2)
    assert len(get_runs(client, pipeline["id"], "?offset=1&status=FAILED")) == 2


@pytest.mark.parametrize("query", ["", "?limit=10"])
def test_runs_of_unknown_pipeline_is_404(client, query):
    assert detail_of(client.get(f"{BASE}/{UNKNOWN_ID}/runs{query}"), 404) == "Pipeline not found"


def test_bad_limit_on_unknown_pipeline_is_422(client):
    # Parameters are validated before the endpoint looks the pipeline up.
    assert detail_of(client.get(f"{BASE}/{UNKNOWN_ID}/runs?limit=0"), 422)[0]["loc"] == ["query", "limit"]


def test_body_of_runs_is_exactly_application_json(client, pipeline, insert_runs):
    insert_runs(pipeline["id"], 2)
    assert len(body_of(client.get(f"{BASE}/{pipeline['id']}/runs"), 200)) == 2
