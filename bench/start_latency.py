"""Queue-to-claim latency: how long after POST /run an idle runner starts the run.

    python -P bench/start_latency.py [--runs 100] [--url URL]

For each case it requests `--runs` runs of a 10-row pipeline one after another (each waits for the
previous run to end, then the runner is idle for a random 0-200 ms, as a user's clicks would leave
it) and reads `claimed_at - started_at` from the run rows (both stamped by PostgreSQL). Cases:
- same process: the API's process runs the runner (ETL_RUNNER=thread); the request wakes it;
- separate worker: `etl-console worker` in its own process, woken by LISTEN/NOTIFY;
- separate worker, polling: the same with ETL_LISTEN=false, the baseline (it claims at its next
  poll, ETL_POLL_S=1).
Prints median, p99 and max per case, and each case's median against the polling baseline.
Without --url it uses the embedded server under ./.etl-bench (the project's default engine).
The figures are from a shared 2-core machine: read them as medians of noisy runs.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

TEN_ROWS = (
    "SELECT md5('latency' || i)::uuid AS film_id, 'film ' || i AS title, 1.0::float8 AS rating "
    "FROM generate_series(1, 10) AS i"
)


def database_url(url: str | None) -> str:
    from etl_console.db.engine import sqlalchemy_url

    if url is None:
        from etl_console.db.embedded import start_embedded

        url = start_embedded(os.path.abspath(".etl-bench"))
    return sqlalchemy_url(url)


def measure(app, pipeline_id: str, runs: int) -> list[float]:
    """Request runs one by one; return each one's queue-to-claim seconds."""
    from sqlalchemy import text

    client = app.test_client()
    engine = app.extensions["etl"].database.engine
    for _ in range(runs):
        time.sleep(random.uniform(0, 0.2))
        assert client.post(f"/api/v1/pipelines/{pipeline_id}/run").status_code == 200
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/pipelines/{pipeline_id}").get_json()["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise RuntimeError("a run did not finish within 30 s")
            time.sleep(0.005)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT extract(epoch FROM claimed_at - started_at) FROM etl_pipeline_runs "
                 "WHERE pipeline_id = :p AND claimed_at IS NOT NULL ORDER BY started_at DESC LIMIT :n"),
            {"p": pipeline_id, "n": runs},
        ).scalars().all()
    return [float(value) for value in rows]


def run_case(url: str, name: str, *, in_process: bool, listen: bool, runs: int) -> list[float]:
    from etl_console import create_app
    from etl_console.serving import start_runner_thread

    settings = dict(database_url=url, reconcile_after_run=False, poll_s=1.0, heartbeat_s=0.5, listen=listen)
    app = create_app(settings)
    if in_process:
        start_runner_thread(app)
    worker = None
    if not in_process:
        env = dict(os.environ, ETL_DATABASE_URL=url, ETL_RECONCILE_AFTER_RUN="false", ETL_POLL_S="1",
                   ETL_LISTEN="true" if listen else "false", ETL_LOG_LEVEL="WARNING")
        worker = subprocess.Popen([sys.executable, "-c", "from etl_console.cli import main; main(['worker'])"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)  # registered and listening
    try:
        client = app.test_client()
        created = client.post("/api/v1/pipelines/", json={
            "name": f"latency_{name}_{os.getpid()}_{random.randrange(1 << 30)}",
            "target_table": "analytics.film_dim", "source_query": TEN_ROWS}).get_json()
        return measure(app, created["id"], runs)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        runner = app.extensions["etl"].runner
        if runner is not None:
            runner.stop()
        app.extensions["etl"].database.dispose()


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return (f"median {statistics.median(ordered) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
            f"max {ordered[-1] * 1000:7.1f} ms  (n={len(ordered)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--url")
    args = parser.parse_args()
    url = database_url(args.url)
    from etl_console.config import Config
    from etl_console.db.engine import Database
    from etl_console.db.migrate import upgrade
    from etl_console.services.demo import ensure_demo

    config = Config.from_env(database_url=url)
    database = Database.connect(config)
    upgrade(database.engine)
    ensure_demo(database, config, None, None)
    database.dispose()

    cases = [
        ("same_process", dict(in_process=True, listen=True)),
        ("worker_listen", dict(in_process=False, listen=True)),
        ("worker_polling", dict(in_process=False, listen=False)),
    ]
    results = {name: run_case(url, name, runs=args.runs, **options) for name, options in cases}
    baseline = statistics.median(results["worker_polling"])
    print(f"queue-to-claim latency over {args.runs} runs each (claimed_at - started_at):")
    for name, values in results.items():
        ratio = statistics.median(values) / baseline if baseline else float("nan")
        print(f"  {name:<15} {summary(values)}  ratio vs polling worker {ratio:.3f}")


if __name__ == "__main__":
    main()
