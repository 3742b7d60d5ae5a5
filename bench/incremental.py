"""Incremental run after 1% of 1M films changed, against a full reload of the same target.

    python -P bench/incremental.py [--films 1000000] [--changed-percent 1] [--repeat 3] [--url URL]

Both go through the real runner path (bench/full_load.py's child process). Each repetition changes
films (new `modified`, new title) and then times one incremental run and one full reload.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _full_load_module():
    """bench/full_load.py, loaded by path (putting bench/ on sys.path would shadow stdlib names)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_full_load", os.path.join(os.path.dirname(__file__), "full_load.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_bench = _full_load_module()
prepare, run_runner = _bench.prepare, _bench.run_runner

INCREMENTAL_QUERY = "SELECT id AS film_id, title, rating, modified FROM content.film_work"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, default=1_000_000)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("ETL_BENCH_DATABASE_URL"))
    args = parser.parse_args()

    from etl_console.config import Config
    from etl_console.db.engine import Database, libpq_dsn
    from etl_console.services.pipelines import create_pipeline, find_pipeline
    from etl_console.services.errors import PipelineNotFound

    url = prepare(args.url, args.films, 10_000)
    dsn = libpq_dsn(url)
    config = Config.from_env(database_url=url)
    database = Database.connect(config)
    with database.sessions() as session:
        try:
            find_pipeline(session, "bench_film_dim_incremental")
        except PipelineNotFound:
            create_pipeline(session, config.allowed_target_tables, {
                "name": "bench_film_dim_incremental", "mode": "incremental", "incremental_key": "modified",
                "source_query": INCREMENTAL_QUERY, "target_table": "analytics.film_dim", "batch_size": 1000})
    database.dispose()

    changed = int(args.films * args.changed_percent / 100)
    run_runner(url, "bench_film_dim_1m")  # a full target to start from
    run_runner(url, "bench_film_dim_incremental")  # sets the watermark
    incremental, full = [], []
    for round_number in range(args.repeat):
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE content.film_work SET modified = clock_timestamp(), title = title || %s "
                "WHERE id IN (SELECT id FROM content.film_work ORDER BY md5(id::text || %s) LIMIT %s)",
                (f" r{round_number}", str(round_number), changed),
            )
        incremental.append(run_runner(url, "bench_film_dim_incremental"))
        full.append(run_runner(url, "bench_film_dim_1m"))

    inc_s = statistics.median(r["seconds"] for r in incremental)
    full_s = statistics.median(r["seconds"] for r in full)
    print(f"\n{changed:,} of {args.films:,} films changed ({args.changed_percent}%), medians of {args.repeat}")
    print(f"  incremental run: {inc_s:6.2f} s  ({incremental[-1]['rows']:,} rows written)   runs: "
          + ", ".join(f"{r['seconds']:.2f}" for r in incremental))
    print(f"  full reload:     {full_s:6.2f} s  ({full[-1]['rows']:,} rows)   runs: "
          + ", ".join(f"{r['seconds']:.2f}" for r in full))
    print(f"  incremental / full time: {inc_s / full_s:.3f}  ({full_s / inc_s:.1f}x faster)")


if __name__ == "__main__":
    main()
