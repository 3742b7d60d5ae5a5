"""Full-load benchmark: the real runner against PostgreSQL's own best, side by side in one process run.

    python -P bench/full_load.py [--films 1000000] [--ratings 3000000] [--repeat 3] [--url URL]

Baseline `copy_pipe_truncate_reindex` (DESIGN.md §6): in one transaction drop the target's primary
key, TRUNCATE, COPY-pipe the source query into the target, re-add the key. Runner: a pipeline run
through the real code path (service request -> runner claim -> FullLoad: shadow, gates, publish ->
fenced commit), executed in a child process so its peak RSS is its own. Prints medians, the ratio
runner/baseline, and peak RSS at 100k and 1M rows.

Readers: while each 1M load runs, one reader asks `SELECT 1 FROM <table> LIMIT 1` every 10 ms (its
answer time is the lock wait plus well under a millisecond of work) and another counts the rows
every 100 ms (only the old or the new count may appear). Reported for the baseline, for the runner
on a plain target (rename exchange) and on a target a view depends on (row exchange, the reader
reading through the view), with the publish's lock time from the run's details.
Without --url it uses the embedded server under ./.etl-bench (the project's default engine).
The figures are from a shared 2-core machine: read them as medians of noisy runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

FILM_QUERY = "SELECT id as film_id, title, rating FROM content.film_work"
RATINGS_QUERY = (
    "SELECT film_id, round(avg(rating), 2) AS avg_rating, count(*) AS ratings_count "
    "FROM ugc.ratings GROUP BY film_id"
)


def baseline(dsn: str, query: str, table: str, pk_column: str) -> float:
    """Drop PK, TRUNCATE, COPY pipe, re-add PK, commit: the hand-written best case."""
    source = psycopg2.connect(dsn)
    target = psycopg2.connect(dsn)
    started = time.monotonic()
    cur = target.cursor()
    constraint = table.split(".")[1] + "_pkey"
    cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
    cur.execute(f"TRUNCATE {table}")
    read_fd, write_fd = os.pipe()

    def pump():
        with os.fdopen(write_fd, "wb", buffering=1 << 18) as writer:
            source.cursor().copy_expert(f"COPY ({query}) TO STDOUT", writer)

    thread = threading.Thread(target=pump)
    thread.start()
    with os.fdopen(read_fd, "rb", buffering=1 << 18) as reader:
        cur.copy_expert(f"COPY {table} FROM STDIN", reader, size=1 << 18)
    thread.join()
    cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} PRIMARY KEY ({pk_column})")
    target.commit()
    elapsed = time.monotonic() - started
    source.close()
    target.close()
    return elapsed


class Readers:
    """Reader threads measuring how long a reader of `table` waits while a load runs."""

    def __init__(self, dsn: str, table: str) -> None:
        self.dsn, self.table = dsn, table
        self.waits: list[float] = []
        self.counts: set[int] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._probe, daemon=True),
                         threading.Thread(target=self._count, daemon=True)]

    def __enter__(self) -> "Readers":
        for thread in self._threads:
            thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.1)
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _probe(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self._stop.is_set():
                started = time.monotonic()
                cur.execute(f"SELECT 1 FROM {self.table} LIMIT 1")
                cur.fetchall()
                self.waits.append(time.monotonic() - started)
                time.sleep(0.01)
        conn.close()

    def _count(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute(f"SELECT count(*) FROM {self.table}")
                self.counts.add(cur.fetchone()[0])
                time.sleep(0.1)
        conn.close()

    def figures(self) -> dict:
        waits = sorted(self.waits)
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else float("nan")
        return {"reader_max_ms": 1000 * max(waits, default=float("nan")), "reader_p99_ms": 1000 * p99,
                "reader_queries": len(waits), "counts": sorted(self.counts)}


def with_readers(dsn: str, table: str, load) -> dict:
    with Readers(dsn, table) as readers:
        result = load()
    if not isinstance(result, dict):
        result = {"seconds": result}
    return {**result, **readers.figures()}


def runner_child(database_url: str, pipeline_name: str) -> None:
    """In a fresh process: request a run and execute it with a real Runner; print JSON figures."""
    import resource

    from etl_console.config import Config
    from etl_console.db.engine import Database
    from etl_console.runner.runner import Runner
    from etl_console.services import pipelines, runs
    from etl_console.db.models import PipelineRun

    config = Config.from_env(database_url=database_url, heartbeat_s=0.5, poll_s=0.05)
    database = Database.connect(config)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = Runner(database, config, name="bench")
    with database.sessions() as session:
        pipeline = pipelines.find_pipeline(session, pipeline_name)
        started = time.monotonic()
        runs.request_run(session, pipeline.id)
        run_id = runs.active_run(session, pipeline.id).id
    runner.start()
    while True:
        with database.sessions() as session:
            run = session.get(PipelineRun, run_id)
            if run.status != "RUNNING":
                break
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    runner.stop()
    print(
        json.dumps(
            {
                "status": run.status,
                "error": run.error_message,
                "rows": run.rows_written,
                "seconds": elapsed,
                "run_seconds": (run.finished_at - run.started_at).total_seconds(),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "startup_rss_mb": rss_before / 1024,
                "publish": (run.details or {}).get("publish"),
                "path": ((run.details or {}).get("path") or {}).get("name"),
                "timings": (run.details or {}).get("timings"),
            }
        )
    )


def run_runner(database_url: str, pipeline_name: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-P", __file__, "--child", database_url, pipeline_name],  # -P: no bench/ on sys.path
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if result["status"] != "SUCCESS":
        raise SystemExit(f"runner run failed: {result['error']}")
    return result


def prepare(url: str | None, films: int, ratings: int) -> str:
    from etl_console.config import Config
    from etl_console.db.engine import Database, sqlalchemy_url
    from etl_console.db.migrate import upgrade
    from etl_console.services.demo import ensure_demo
    from etl_console.services.pipelines import create_pipeline
    from sqlalchemy import select
    from etl_console.db.models import Pipeline

    if url is None:
        from etl_console.db.embedded import start_embedded

        url = start_embedded(os.path.abspath(".etl-bench"))
    url = sqlalchemy_url(url)
    config = Config.from_env(database_url=url)
    database = Database.connect(config)
    upgrade(database.engine)
    started = time.monotonic()
    report = ensure_demo(database, config, films, ratings)
    print(f"demo data: {films:,} films, {ratings:,} ratings ready in {time.monotonic() - started:.1f} s "
          f"({'generated' if report.regenerated else 'reused'})")
    specs = {
        "bench_film_dim_1m": (FILM_QUERY, "analytics.film_dim", 1000),
        "bench_film_dim_100k": (FILM_QUERY + " LIMIT 100000", "analytics.film_dim", 1000),
        "bench_ratings_agg": (RATINGS_QUERY, "analytics.film_rating_agg", 1000),
    }
    with database.sessions() as session:
        existing = set(session.scalars(select(Pipeline.name)))
        for name, (query, target, batch) in specs.items():
            if name not in existing:
                create_pipeline(session, config.allowed_target_tables,
                                {"name": name, "source_query": query, "target_table": target, "batch_size": batch})
    database.dispose()
    return url


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        runner_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, default=1_000_000)
    parser.add_argument("--ratings", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("ETL_BENCH_DATABASE_URL"))
    args = parser.parse_args()

    from etl_console.db.engine import libpq_dsn

    url = prepare(args.url, args.films, args.ratings)
    dsn = libpq_dsn(url)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        print(f"server: PostgreSQL {cur.fetchone()[0]}; {os.cpu_count()} cores")

    # Throughput runs have no readers (a reader counting 1M rows every 100 ms takes CPU from a load
    # that lets it in, and none from one that locks it out); the reader runs come after, per repeat.
    base_times, runner_results, view_results = [], [], []
    base_readers, runner_readers, view_readers = [], [], []
    view = "analytics.bench_film_dim_view"

    def with_view(load):
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE VIEW {view} AS SELECT film_id, title, rating FROM analytics.film_dim")
        try:
            return load()
        finally:
            with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
                cur.execute(f"DROP VIEW {view}")

    for _ in range(args.repeat):  # interleaved, so machine noise hits all alike
        base_times.append(baseline(dsn, FILM_QUERY, "analytics.film_dim", "film_id"))
        runner_results.append(run_runner(url, "bench_film_dim_1m"))
        view_results.append(with_view(lambda: run_runner(url, "bench_film_dim_1m")))
        base_readers.append(with_readers(dsn, "analytics.film_dim",
                                         lambda: baseline(dsn, FILM_QUERY, "analytics.film_dim", "film_id")))
        runner_readers.append(with_readers(dsn, "analytics.film_dim", lambda: run_runner(url, "bench_film_dim_1m")))
        view_readers.append(with_view(lambda: with_readers(dsn, view, lambda: run_runner(url, "bench_film_dim_1m"))))
    small = [run_runner(url, "bench_film_dim_100k") for _ in range(args.repeat)]
    ratings_base = [baseline(dsn, RATINGS_QUERY, "analytics.film_rating_agg", "film_id") for _ in range(args.repeat)]
    ratings_runner = [run_runner(url, "bench_ratings_agg") for _ in range(args.repeat)]

    rows = args.films
    base_rate = rows / statistics.median(base_times)
    runner_rate = rows / statistics.median(r["seconds"] for r in runner_results)
    rss_1m = statistics.median(r["peak_rss_mb"] for r in runner_results)
    rss_100k = statistics.median(r["peak_rss_mb"] for r in small)
    agg_rows = runner_results and ratings_runner[0]["rows"]
    print(f"\nfull reload of {rows:,} films -> analytics.film_dim (medians of {args.repeat})")
    print(f"  baseline (drop PK, TRUNCATE, COPY pipe, add PK): {statistics.median(base_times):6.2f} s  "
          f"{base_rate:>10,.0f} rows/s   runs: {', '.join(f'{t:.2f}' for t in base_times)}")
    print(f"  etl-console runner (request -> SUCCESS):          "
          f"{statistics.median(r['seconds'] for r in runner_results):6.2f} s  {runner_rate:>10,.0f} rows/s   runs: "
          + ", ".join(f"{r['seconds']:.2f}" for r in runner_results))
    view_rate = rows / statistics.median(r["seconds"] for r in view_results)
    print(f"  runner, a view depends on the target:             "
          f"{statistics.median(r['seconds'] for r in view_results):6.2f} s  {view_rate:>10,.0f} rows/s   runs: "
          + ", ".join(f"{r['seconds']:.2f}" for r in view_results))
    print(f"  ratio runner/baseline: {runner_rate / base_rate:.2f}x (plain target), {view_rate / base_rate:.2f}x (with a view)")
    print(f"\nreaders during the 1M load, separate runs (median over runs of each run's max / p99 wait; "
          f"every run's max in brackets)")
    for label, results in (("baseline copy_pipe_truncate_reindex", base_readers),
                           ("runner, plain target", runner_readers), ("runner, dependent view", view_readers)):
        methods = {(r.get("publish") or {}).get("method") for r in results} - {None}
        publish = [r["publish"]["locked_ms"] for r in results if r.get("publish")]
        each_max = ", ".join(f"{r['reader_max_ms']:.0f}" for r in results)
        print(f"  {label:<36} max {statistics.median(r['reader_max_ms'] for r in results):8.1f} ms   "
              f"p99 {statistics.median(r['reader_p99_ms'] for r in results):7.1f} ms   "
              f"[{each_max}]"
              + (f"   exchange {'/'.join(sorted(methods))}, lock held median {statistics.median(publish):.1f} ms "
                 f"[{', '.join(f'{ms:.1f}' for ms in publish)}]" if publish else ""))
        print(f"  {'':<36} counts seen: {sorted({c for r in results for c in r['counts']})}")
    print(f"  runner peak RSS: {rss_100k:.1f} MB at 100k rows, {rss_1m:.1f} MB at 1M rows "
          f"(ratio {rss_1m / rss_100k:.2f}x)")
    agg_base = statistics.median(ratings_base)
    agg_runner = statistics.median(r["seconds"] for r in ratings_runner)
    print(f"\nfilm_rating_agg over {args.ratings:,} ratings ({agg_rows:,} aggregate rows, medians of {args.repeat})")
    print(f"  baseline: {agg_base:6.2f} s   runner: {agg_runner:6.2f} s   ratio (baseline/runner time): "
          f"{agg_base / agg_runner:.2f}x")


if __name__ == "__main__":
    main()
