"""Metrics recorded where things happen, and log records that name their request and run."""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid

import pytest
from prometheus_client import REGISTRY

from etl_console import logs, metrics
from tests.conftest import FILM_DIM_QUERY, wait_for


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_run_metrics_follow_outcomes(client, create_pipeline, run_to_end):
    metrics._metrics()
    before = {s: sample("etl_runs_finished_total", status=s) for s in ("SUCCESS", "FAILED")}
    durations = sample("etl_run_duration_seconds_count", status="SUCCESS")
    rows = sample("etl_run_rows_written_sum", status="SUCCESS")

    good = run_to_end(create_pipeline()["id"])
    bad = run_to_end(create_pipeline(source_query="SELECT 1/0 AS film_id, 'x' AS title, 1.0 AS rating")["id"])
    assert (good["status"], bad["status"]) == ("SUCCESS", "FAILED")

    # The runner counts just after it commits the outcome, so the API may show it a moment earlier.
    wait_for(lambda: sample("etl_runs_finished_total", status="SUCCESS") == before["SUCCESS"] + 1, timeout=10)
    wait_for(lambda: sample("etl_runs_finished_total", status="FAILED") == before["FAILED"] + 1, timeout=10)
    assert sample("etl_run_duration_seconds_count", status="SUCCESS") == durations + 1
    assert sample("etl_run_rows_written_sum", status="SUCCESS") == rows + good["rows_written"]


def test_reaped_runs_are_counted(client, etl, create_pipeline, sql):
    pipeline = create_pipeline()
    before = sample("etl_runs_reaped_total")
    sql(
        "INSERT INTO etl_pipeline_runs (id, pipeline_id, status, rows_read, rows_written, worker_id, heartbeat_at, trigger) "
        "VALUES (%s, %s, 'RUNNING', 0, 0, 'ghost:1:gone', now() - interval '1 hour', 'manual')",
        (str(uuid.uuid4()), pipeline["id"]),
    )
    etl.runner.reap()  # or its own loop does, whichever comes first
    wait_for(lambda: sample("etl_runs_reaped_total") == before + 1, timeout=10, message="the reaped run counted")
    assert sql("SELECT status FROM etl_pipeline_runs WHERE worker_id = 'ghost:1:gone'") == [("FAILED",)]


def test_http_latency_is_labelled_by_url_rule(client, create_pipeline):
    pipeline = create_pipeline()
    route = "/api/v1/pipelines/<pipeline_id>"
    before = sample("etl_http_request_duration_seconds_count", method="GET", route=route, status="200")
    for _ in range(3):
        client.get(f"/api/v1/pipelines/{pipeline['id']}")
    client.get("/no/such/page/at/all")
    after = sample("etl_http_request_duration_seconds_count", method="GET", route=route, status="200")
    assert after == before + 3
    assert sample("etl_http_request_duration_seconds_count", method="GET", route="<unmatched>", status="404") >= 1


def test_metrics_endpoint_reads_active_runs_from_the_database(client, create_pipeline, sql):
    pipeline = create_pipeline(source_query=FILM_DIM_QUERY + " WHERE pg_sleep(0.002) IS NOT NULL", batch_size=100)
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")

    def gauges() -> dict[str, float]:
        text = client.get("/metrics").get_data(as_text=True)
        assert "_created" not in text
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(etl_\w+) ([\d.e+-]+)$", text, re.M)}

    # The app's runner registers itself on its first tick, in its own thread: give it a moment.
    values = wait_for(lambda: (g := gauges()).get("etl_runners_alive", 0) >= 1 and g, timeout=10)
    assert values["etl_runs_active"] == 1
    assert values["etl_database_up"] == 1
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
    wait_for(lambda: sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING'")[0][0] == 0, message="the pause")


def test_multiprocess_dir_cleanup_keeps_live_processes(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max: never alive
    for name in (f"counter_{dead}.db", f"histogram_{os.getpid()}.db", "gauge_livesum_x.db", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert metrics.cleanup_multiprocess_dir(str(tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gauge_livesum_x.db", f"histogram_{os.getpid()}.db", "notes.txt"]


def test_request_id_is_taken_or_made_and_echoed(client):
    assert client.get("/api/v1/health/live", headers={"X-Request-ID": "lb-7f3a.01"}).headers["X-Request-ID"] == "lb-7f3a.01"
    for bad in ("has spaces", "x" * 200, "<script>"):
        echoed = client.get("/api/v1/health/live", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert echoed != bad and len(echoed) == 32


def test_json_records_carry_request_and_run_ids():
    formatter = logs.JsonFormatter()
    context = logs.ContextFilter()
    records = []

    def in_a_run():
        logs.bind_run_id("run-123")
        record = logging.LogRecord("etl", logging.INFO, __file__, 1, "batch %d", (7,), None)
        context.filter(record)
        records.append(record)

    token = logs.request_id_var.set("req-9")
    try:
        thread = threading.Thread(target=in_a_run)
        thread.start()
        thread.join(5)
        outside = logging.LogRecord("etl", logging.INFO, __file__, 1, "plain", (), None)
        context.filter(outside)
    finally:
        logs.request_id_var.reset(token)

    in_run = json.loads(formatter.format(records[0]))
    assert in_run["msg"] == "batch 7" and in_run["run_id"] == "run-123" and in_run["level"] == "INFO"
    assert "request_id" not in in_run  # a new thread starts with an empty context
    plain = json.loads(formatter.format(outside))
    assert plain["request_id"] == "req-9" and "run_id" not in plain
    assert outside.context == " [req=req-9]"


def test_configure_logging_is_idempotent():
    root = logging.getLogger()
    level = root.level
    try:
        logs.configure_logging("INFO", "json")
        logs.configure_logging("INFO", "json")
        ours = [h for h in root.handlers if getattr(h, "_etl_console_handler", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
        logs.configure_logging("INFO", "text")
    finally:
        root.setLevel(level)


@pytest.mark.parametrize("value", ["xml", ""])
def test_log_format_is_validated(value):
    from etl_console.config import Config

    with pytest.raises(ValueError, match="ETL_LOG_FORMAT"):
        Config.from_env({"ETL_LOG_FORMAT": value})


def test_worker_metrics_in_multiprocess_mode_without_a_prepared_dir(tmp_path):
    """`etl-console worker` in its own container: PROMETHEUS_MULTIPROC_DIR set (the image does), the
    directory not made by anyone, metrics served on ETL_METRICS_PORT."""
    import subprocess
    import sys

    from .stack import REPO, clean_environ, free_port

    port = free_port()
    script = f"""
import urllib.request, time
from etl_console import metrics
from etl_console.config import Config
metrics.serve_worker_metrics(Config.from_env({{"ETL_METRICS_PORT": "{port}"}}))
metrics.run_finished("SUCCESS", time.monotonic() - 2, 1234)
metrics.runs_reaped(2)
print(urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
"""
    env = clean_environ(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "not-yet-made"))
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'etl_runs_finished_total{status="SUCCESS"} 1.0' in done.stdout
    assert 'etl_run_rows_written_sum{status="SUCCESS"} 1234.0' in done.stdout
    assert "etl_runs_reaped_total 2.0" in done.stdout
