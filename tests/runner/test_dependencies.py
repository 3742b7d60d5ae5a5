"""Pipelines that trigger each other: a chain runs in order, once per upstream success; a pipeline
with several upstreams runs after the last of them succeeds; with several runners, exactly once."""
from __future__ import annotations

from datetime import datetime

import pytest

from etl_console.runner.runner import Runner
from tests.conftest import finished_run, wait_for
from tests.runner.helpers import film_rows_query

BASE = "/api/v1/pipelines"


def _runs(client, pipeline: dict) -> list[dict]:
    return client.get(f"{BASE}/{pipeline['id']}/runs").get_json()


def _detail(client, pipeline: dict, run: dict) -> dict:
    return client.get(f"{BASE}/{pipeline['id']}/runs/{run['id']}").get_json()


def _upstreams(client, pipeline: dict, *names: str) -> None:
    response = client.put(f"{BASE}/{pipeline['id']}/upstreams", json={"upstreams": list(names)})
    assert response.status_code == 200, response.get_data(as_text=True)


def _settled(client, pipeline: dict, count: int) -> list[dict]:
    """Wait until the pipeline has `count` runs and none is queued or running."""
    return wait_for(lambda: (runs := _runs(client, pipeline)) and len(runs) == count
                    and all(run["status"] != "RUNNING" for run in runs) and runs,
                    timeout=60, message=f"{pipeline['name']} to have {count} finished runs")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _chain(client, create_pipeline):
    a, b, c = (create_pipeline(name=name, source_query=film_rows_query(50, name)) for name in ("a", "b", "c"))
    _upstreams(client, b, "a")
    _upstreams(client, c, "b")
    return a, b, c


def _run_chain_once(client, a, b, c, cycle: int) -> None:
    assert client.post(f"{BASE}/{a['id']}/run").status_code == 200
    for pipeline in (a, b, c):
        _settled(client, pipeline, cycle)


def test_a_chain_runs_in_order_once_per_upstream_success(client, create_pipeline):
    a, b, c = _chain(client, create_pipeline)
    for cycle in (1, 2):
        _run_chain_once(client, a, b, c, cycle)
    (a_run, *_), (b_run, *_), (c_run, *_) = (_runs(client, p) for p in (a, b, c))
    assert all(run["status"] == "SUCCESS" for p in (a, b, c) for run in _runs(client, p))
    b_detail, c_detail = _detail(client, b, b_run), _detail(client, c, c_run)
    assert b_detail["trigger"] == c_detail["trigger"] == "upstream"
    assert b_detail["triggered_by"] == [{"pipeline_id": a["id"], "pipeline": "a", "run_id": a_run["id"]}]
    # In order: b queued after a's success was recorded, c claimed after b's.
    assert _at(b_run["started_at"]) >= _at(a_run["finished_at"])
    assert _at(c_detail["claimed_at"]) >= _at(b_run["finished_at"])
    assert client.get(f"{BASE}/{c['id']}").get_json()["status"] == "IDLE"


def test_several_upstreams_run_the_downstream_after_the_last_of_them(client, create_pipeline):
    x, y, d = (create_pipeline(name=name, source_query=film_rows_query(50, name)) for name in ("x", "y", "d"))
    _upstreams(client, d, "x", "y")
    assert finished_run(client, x["id"]) if client.post(f"{BASE}/{x['id']}/run").status_code == 200 else None
    # The downstream would have been queued in the transaction that recorded x's success.
    assert _runs(client, d) == []
    client.post(f"{BASE}/{x['id']}/run")  # x again: still waiting for y
    _settled(client, x, 2)
    assert _runs(client, d) == []
    client.post(f"{BASE}/{y['id']}/run")
    _settled(client, y, 1)
    (run,) = _settled(client, d, 1)
    assert run["status"] == "SUCCESS"
    triggered_by = _detail(client, d, run)["triggered_by"]
    assert [(t["pipeline"], t["run_id"]) for t in triggered_by] == [
        ("x", _runs(client, x)[0]["id"]), ("y", _runs(client, y)[0]["id"])]  # x's latest success


def test_a_diamond_runs_its_bottom_once_per_top_success(client, create_pipeline):
    top, left, right, bottom = (create_pipeline(name=name, source_query=film_rows_query(50, name))
                                for name in ("top", "left", "right", "bottom"))
    _upstreams(client, left, "top")
    _upstreams(client, right, "top")
    _upstreams(client, bottom, "left", "right")
    client.post(f"{BASE}/{top['id']}/run")
    for pipeline in (top, left, right, bottom):
        _settled(client, pipeline, 1)
    (run,) = _runs(client, bottom)
    latest = {_runs(client, p)[0]["finished_at"] for p in (left, right)}
    assert _at(run["started_at"]) >= max(_at(t) for t in latest)  # after the last of them


def test_a_paused_downstream_is_not_queued(client, create_pipeline):
    a, b, c = _chain(client, create_pipeline)
    assert client.post(f"{BASE}/{b['id']}/pause").status_code == 200
    client.post(f"{BASE}/{a['id']}/run")
    _settled(client, a, 1)
    assert _runs(client, b) == [] and _runs(client, c) == []
    assert client.get(f"{BASE}/{b['id']}").get_json()["status"] == "PAUSED"


def test_a_failed_upstream_queues_nothing(client, create_pipeline):
    a, b, _ = _chain(client, create_pipeline)
    client.patch(f"{BASE}/{a['id']}", json={"source_query": "SELECT 1 AS nope"})
    client.post(f"{BASE}/{a['id']}/run")
    assert _settled(client, a, 1)[0]["status"] == "FAILED"
    assert _runs(client, b) == []


@pytest.fixture
def more_runners(etl):
    """Three more runners on the same database, as other processes or hosts would be."""
    runners = [Runner(etl.database, etl.config, name=f"extra{i}").start() for i in range(3)]
    yield runners
    for runner in runners:
        runner.stop(timeout=10)


def test_with_four_runners_each_downstream_runs_exactly_once_per_cycle(client, create_pipeline, more_runners):
    a, b, c = _chain(client, create_pipeline)
    x, y, d = (create_pipeline(name=name, source_query=film_rows_query(50, name)) for name in ("x", "y", "d"))
    _upstreams(client, d, "x", "y")
    for cycle in (1, 2, 3):
        # Both of d's upstreams at once: their successes are recorded by different runners.
        client.post(f"{BASE}/{x['id']}/run")
        client.post(f"{BASE}/{y['id']}/run")
        _run_chain_once(client, a, b, c, cycle)
        for pipeline in (x, y, d):
            _settled(client, pipeline, cycle)
    workers = {_detail(client, p, run)["worker_id"] for p in (a, b, c, x, y, d) for run in _runs(client, p)}
    assert len(workers) > 1  # the runs really were spread over several runners
