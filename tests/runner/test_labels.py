"""Runner labels: a run whose source connection or pipeline requires a label waits, visibly, for a
runner with that label, and only such a runner takes it."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from etl_console.runner.runner import Runner
from tests.api.conftest import body_of
from tests.connection_helpers import connection_fields
from tests.conftest import finished_run, wait_for

QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"


@pytest.fixture
def app_overrides():
    return {"runner_threads": 2}


def _queued_detail(client, pipeline_id):
    run_id = client.get(f"/api/v1/pipelines/{pipeline_id}/runs").get_json()[0]["id"]
    return body_of(client.get(f"/api/v1/pipelines/{pipeline_id}/runs/{run_id}"), 200)


def test_a_connection_requiring_a_label_waits_for_a_runner_with_it(etl, client, source_url):
    body_of(client.post("/api/v1/connections/", json={"name": "eu-only", **connection_fields(source_url),
                                                     "required_label": "eu"}), 201)
    pipeline = body_of(client.post("/api/v1/pipelines/", json={
        "name": "eu_films", "target_table": "analytics.film_dim", "source_query": QUERY,
        "source_connection": "eu-only"}), 201)
    assert client.post(f"/api/v1/pipelines/{pipeline['id']}/run").status_code == 200
    detail = wait_for(lambda: (d := _queued_detail(client, pipeline["id"]))["queue"] and d, timeout=10,
                      message="the queue to say what the run waits for")
    assert detail["queue"]["waiting_for"] == "a runner labelled 'eu'"
    assert detail["queue"]["runners_with_label"] == {"eu": 0}
    assert detail["worker_id"] is None  # the app's own runner has no label: it left the run alone
    page = client.get(f"/pipelines/{pipeline['id']}/runs/{detail['id']}").get_data(as_text=True)
    assert "waiting for a runner labelled &#39;eu&#39;" in page

    eu_runner = Runner(etl.database, replace(etl.config, runner_labels=("eu",)), name="eu-runner").start()
    try:
        run = finished_run(client, pipeline["id"], timeout=30)
    finally:
        eu_runner.stop(timeout=10)
    assert run["status"] == "SUCCESS", run
    assert ":eu-runner:" in body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}"), 200)["worker_id"]


def test_a_pipeline_requiring_a_label_runs_on_a_worker_started_with_it(client, database_url, sql):
    pipeline = body_of(client.post("/api/v1/pipelines/", json={
        "name": "us_films", "target_table": "analytics.film_dim", "source_query": QUERY, "required_label": "us"}), 201)
    settings = body_of(client.get(f"/api/v1/pipelines/{pipeline['id']}/settings"), 200)
    assert settings["required_label"] == "us"
    assert client.post(f"/api/v1/pipelines/{pipeline['id']}/run").status_code == 200
    wait_for(lambda: _queued_detail(client, pipeline["id"])["queue"], timeout=10, message="a visible wait")
    worker = subprocess.Popen(
        [sys.executable, "-c", "from etl_console.cli import main; main()", "worker", "--label", "us"],
        env=dict(os.environ, ETL_DATABASE_URL=database_url, ETL_POLL_S="0.2", ETL_SECRET_KEY="test-secret"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        run = finished_run(client, pipeline["id"], timeout=60)
        assert run["status"] == "SUCCESS", run
        labels = sql("SELECT labels FROM etl_runners WHERE labels IS NOT NULL")
        assert labels == [("us",)]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_labels_are_checked(client):
    response = client.post("/api/v1/pipelines/", json={"name": "bad_label", "target_table": "analytics.film_dim",
                                                       "source_query": QUERY, "required_label": "eu,us"})
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body", "required_label"]
