"""Exactly one run per pipeline across processes: gunicorn workers and a standalone worker compete."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_for
from tests.runner.helpers import slow_film_query

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cluster(app, database_url):
    """gunicorn with 3 workers (each with a runner thread) plus one `etl-console worker` process."""
    port = free_port()
    env = dict(os.environ, ETL_DATABASE_URL=database_url, ETL_RUNNER="thread", ETL_POLL_S="0.2", ETL_HEARTBEAT_S="0.2")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "3", "--threads", "8", "-k", "gthread", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", "from etl_console.cli import main; main()", "worker"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/v1"

    def up():
        try:
            return requests.get(f"{base}/pipelines/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, interval=0.2, message="gunicorn to answer")
        yield base
    finally:
        for process in (web, worker):
            process.terminate()
        for process in (web, worker):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_fifty_concurrent_run_requests_make_exactly_one_run(cluster, create_pipeline, sql):
    pipeline = create_pipeline(source_query=slow_film_query(5000, 1000, 0.2), batch_size=1000)
    url = f"{cluster}/pipelines/{pipeline['id']}/run"
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda _: requests.post(url, timeout=30), range(50)))
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["status"] for r in responses} == {"RUNNING"}
    assert sql("SELECT count(*) FROM etl_pipeline_runs WHERE pipeline_id = %s", (pipeline["id"],)) == [(1,)]

    def finished():
        runs = requests.get(f"{cluster}/pipelines/{pipeline['id']}/runs", timeout=5).json()
        return runs if runs[0]["status"] != "RUNNING" else None

    runs = wait_for(finished, timeout=60, message="the run to finish")
    assert len(runs) == 1 and runs[0]["status"] == "SUCCESS" and runs[0]["rows_written"] == 5000


def test_queued_runs_are_each_executed_once_by_competing_runners(cluster, create_pipeline, sql):
    pipelines = [create_pipeline(source_query=slow_film_query(2000, 1000, 0.05)) for _ in range(2)]
    pipelines += [create_pipeline(target_table="analytics.film_rating_agg",
                                  source_query="SELECT film_id, round(avg(rating), 2) AS avg_rating, "
                                  "count(*) AS ratings_count FROM ugc.ratings GROUP BY film_id")]
    started = time.monotonic()
    for pipeline in pipelines:
        for _ in range(3):
            requests.post(f"{cluster}/pipelines/{pipeline['id']}/run", timeout=10)
    wait_for(lambda: sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING'") == [(0,)],
             timeout=60, message="all runs to finish")
    rows = sql("SELECT pipeline_id::text, status, count(DISTINCT worker_id) FROM etl_pipeline_runs GROUP BY 1, 2")
    # Each pipeline ran at most once per wave of requests, and never twice at the same time.
    assert all(status == "SUCCESS" for _, status, _ in rows), rows
    overlapping = sql(
        "SELECT count(*) FROM etl_pipeline_runs a JOIN etl_pipeline_runs b ON a.pipeline_id = b.pipeline_id "
        "AND a.id < b.id AND a.started_at < b.finished_at AND b.started_at < a.finished_at"
    )
    assert overlapping == [(0,)]
    assert time.monotonic() - started < 60
