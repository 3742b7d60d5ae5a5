"""max_concurrent_runs of a source connection holds across runners, keeps the queue's order, and a
waiting run says what it waits for."""
from __future__ import annotations

import threading
import time
import uuid

import psycopg2
import pytest

from etl_console.runner.runner import Runner
from tests.api.conftest import body_of
from tests.connection_helpers import connection_fields, drop_login
from tests.conftest import wait_for
from tests.runner.helpers import slow_film_query

LIMITED_LOGIN = "etl_limited_reader"
RUNS = 10


@pytest.fixture
def app_overrides():
    return {"runner_threads": 4}


@pytest.fixture
def limited_login(dsn):
    """A login of its own (with the source login's grants), so its sessions can be told apart."""
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    cursor = admin.cursor()
    drop_login(cursor, LIMITED_LOGIN)
    cursor.execute(f"CREATE ROLE {LIMITED_LOGIN} LOGIN IN ROLE etl_source")
    yield LIMITED_LOGIN
    drop_login(cursor, LIMITED_LOGIN)
    admin.close()


class SourceSessionSampler(threading.Thread):
    """Counts, every few milliseconds, the login's source sessions that are doing something."""

    def __init__(self, dsn: str, login: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.login = dsn, login
        self.peak = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        with connection.cursor() as cursor:
            while not self.stop.is_set():
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                    "AND application_name = 'etl-console source' AND state <> 'idle'",
                    (self.login,),
                )
                self.peak = max(self.peak, cursor.fetchone()[0])
                self.samples += 1
                time.sleep(0.005)
        connection.close()


def test_ten_concurrent_run_requests_never_read_a_limited_source_twice_at_once(app, etl, client, source_url, dsn,
                                                                                limited_login, sql):
    fields = {**connection_fields(source_url), "user": limited_login, "password": None}
    connection = body_of(client.post("/api/v1/connections/", json={"name": "limited", **fields,
                                                                     "max_concurrent_runs": 1}), 201)
    query = slow_film_query(rows=300, sleep_every=100, sleep_s=0.05)  # about 0.15 s of reading each
    pipelines = [
        body_of(client.post("/api/v1/pipelines/", json={"name": f"lim_{i}_{uuid.uuid4().hex[:4]}",
                                                         "target_table": "analytics.film_dim",
                                                         "source_query": query, "source_connection": "limited"}), 201)
        for i in range(RUNS)
    ]
    second = Runner(etl.database, etl.config, name="second").start()  # two runners compete for slots
    sampler = SourceSessionSampler(dsn, limited_login)
    sampler.start()
    try:
        barrier = threading.Barrier(RUNS)

        def request_run(pipeline_id: str) -> None:
            own = app.test_client()
            barrier.wait()
            assert own.post(f"/api/v1/pipelines/{pipeline_id}/run").status_code == 200

        threads = [threading.Thread(target=request_run, args=(p["id"],)) for p in pipelines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        all_queued_at = sql("SELECT clock_timestamp()")[0][0]

        def a_visible_wait():
            for pipeline in pipelines:
                runs = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()
                detail = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{runs[0]['id']}").get_json()
                if detail["queue"]:
                    return detail["queue"]
            return None

        queue = wait_for(a_visible_wait, timeout=20, message="a queued run showing what it waits for")
        assert queue["waiting_for"] == "source connection 'limited' (max_concurrent_runs 1)"
        # Read between one run's end and the next claim, no run holds the slot for a moment: 0 or 1.
        assert queue["running"] <= 1 and queue["running"] + queue["queued_ahead"] >= 1, queue

        def all_finished():
            return sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING'")[0][0] == 0

        wait_for(all_finished, timeout=120, message="all ten runs to finish")
    finally:
        sampler.stop.set()
        sampler.join()
        second.stop(timeout=10)

    runs = sql("SELECT status, error_message, started_at, claimed_at, finished_at "
               "FROM etl_pipeline_runs ORDER BY claimed_at")
    assert [status for status, *_ in runs] == ["SUCCESS"] * RUNS, runs
    for previous, following in zip(runs, runs[1:]):
        assert following[3] >= previous[4], "a run was claimed before the previous one finished"
    # A claim made while concurrent requests were still committing sees only the runs already
    # committed; once every run is queued, the slot goes to the oldest one each time.
    settled = [run[2] for run in runs if run[3] > all_queued_at]
    assert len(settled) >= RUNS - 2 and settled == sorted(settled), "runs did not start in queue order"
    assert sampler.samples > 50 and sampler.peak == 1, (sampler.samples, sampler.peak)
    assert body_of(client.get(f"/api/v1/connections/{connection['id']}"), 200)["max_concurrent_runs"] == 1


def test_without_a_limit_runs_of_one_connection_overlap(client, source_url, limited_login, sql):
    fields = {**connection_fields(source_url), "user": limited_login, "password": None}
    body_of(client.post("/api/v1/connections/", json={"name": "unlimited", **fields}), 201)
    query = slow_film_query(rows=300, sleep_every=100, sleep_s=0.2)
    ids = [body_of(client.post("/api/v1/pipelines/", json={"name": f"free_{i}", "target_table": "analytics.film_dim",
                                                           "source_query": query, "source_connection": "unlimited"}),
                   201)["id"] for i in range(3)]
    for pipeline_id in ids:
        client.post(f"/api/v1/pipelines/{pipeline_id}/run")
    wait_for(lambda: sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING' AND worker_id IS NOT NULL")[0][0] >= 2,
             timeout=20, message="two runs of one unlimited connection at once")
    wait_for(lambda: sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING'")[0][0] == 0, timeout=60,
             message="the runs to end")
