"""Same-database full loads: the runner's in-database path against PostgreSQL doing it by itself.

    python -P bench/same_database.py [--films 1000000] [--repeat 3] [--url URL]

Side by side in one process run, interleaved, on the 1M-film reload content.film_work ->
analytics.film_dim, each measured from a run request to SUCCESS for the runner:
- baseline in-database: one transaction: drop the PK, TRUNCATE, INSERT … SELECT, add the PK;
- baseline COPY stream (bench/full_load.py's copy_pipe_truncate_reindex);
- runner, in-database path (ETL_LOAD_PATH=auto; the source is the warehouse itself);
- runner, COPY stream (ETL_LOAD_PATH=copy).
Runner runs have the after-run reconciliation off (it re-reads source and target after SUCCESS and
slows whatever runs next); its own cost is timed once at the end. Readers' waits are measured in
separate runs, as in bench/full_load.py. Without --url it uses the embedded server under
./.etl-bench. The figures are from a shared 2-core machine: read them as medians of noisy runs.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import psycopg2

_spec = importlib.util.spec_from_file_location("full_load_bench", os.path.join(os.path.dirname(__file__), "full_load.py"))
full_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(full_load)

TABLE, KEY = "analytics.film_dim", "film_id"


def baseline_in_database(dsn: str, query: str = full_load.FILM_QUERY) -> float:
    """What PostgreSQL does by itself: drop PK, TRUNCATE, INSERT … SELECT, add PK, one transaction."""
    connection = psycopg2.connect(dsn)
    started = time.monotonic()
    with connection.cursor() as cur:
        cur.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT film_dim_pkey")
        cur.execute(f"TRUNCATE {TABLE}")
        cur.execute(f"INSERT INTO {TABLE} (film_id, title, rating) SELECT * FROM ({query}) AS source")
        cur.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT film_dim_pkey PRIMARY KEY ({KEY})")
    connection.commit()
    elapsed = time.monotonic() - started
    connection.close()
    return elapsed


def runner(url: str, path: str) -> dict:
    os.environ["ETL_LOAD_PATH"] = path  # the child process reads its settings from the environment
    os.environ["ETL_RECONCILE_AFTER_RUN"] = "false"
    result = full_load.run_runner(url, "bench_film_dim_1m")
    expected = "in-database" if path == "auto" else "copy"
    if result.get("path") != expected:
        raise SystemExit(f"the runner took the {result.get('path')} path, not {expected}")
    return result


def reconcile_seconds(url: str) -> float:
    from etl_console.config import Config
    from etl_console.db.engine import Database
    from etl_console.warehouse.reconcile import reconcile

    config = Config.from_env(database_url=url)
    database = Database.connect(config)
    started = time.monotonic()
    result = reconcile(database.source_dsn, full_load.FILM_QUERY, TABLE, 300)
    elapsed = time.monotonic() - started
    database.dispose()
    assert result.match, result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("ETL_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    from etl_console.db.engine import libpq_dsn

    url = full_load.prepare(args.url, args.films, 5000)
    dsn = libpq_dsn(url)
    # User SQL runs as the least-privilege login, as in every deployment (the in-database path needs it).
    from etl_console.db.source_login import DEFAULT_LOGIN, login_url, provision_source_login
    from etl_console.local_secrets import local_secret

    password = local_secret(os.path.abspath(".etl-bench"), "source_login_password")
    provision_source_login(dsn, login=DEFAULT_LOGIN, password=password, schemas=("content", "ugc"),
                           tables=(TABLE,), revoke_public_functions=args.url is None)
    os.environ["ETL_SOURCE_URL"] = login_url(url, DEFAULT_LOGIN, password)
    cases = {
        "baseline in-database (INSERT … SELECT)": lambda: {"seconds": baseline_in_database(dsn)},
        "baseline COPY stream": lambda: {"seconds": full_load.baseline(dsn, full_load.FILM_QUERY, TABLE, KEY)},
        "runner, in-database path": lambda: runner(url, "auto"),
        "runner, COPY stream": lambda: runner(url, "copy"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    readers: dict[str, list[dict]] = {name: [] for name in cases}
    for _ in range(args.repeat):  # interleaved: the machine's noise hits every case alike
        for name, load in cases.items():
            times[name].append(load()["seconds"])
        for name, load in cases.items():
            readers[name].append(full_load.with_readers(dsn, TABLE, load))

    rows = args.films
    limit = rows / statistics.median(times["baseline in-database (INSERT … SELECT)"])
    print(f"\nfull reload of {rows:,} films -> {TABLE}, same database (medians of {args.repeat}; "
          "runner: request -> SUCCESS, reconciliation off)")
    for name, values in times.items():
        rate = rows / statistics.median(values)
        print(f"  {name:<40} {statistics.median(values):6.2f} s {rate:>11,.0f} rows/s  "
              f"{rate / limit:5.2f}x the in-database baseline   runs: {', '.join(f'{v:.2f}' for v in values)}")
    print("\nreaders during the load, separate runs (median of each run's max wait; every run's max in brackets)")
    for name, results in readers.items():
        each = ", ".join(f"{r['reader_max_ms']:.0f}" for r in results)
        print(f"  {name:<40} max {statistics.median(r['reader_max_ms'] for r in results):8.1f} ms  "
              f"p99 {statistics.median(r['reader_p99_ms'] for r in results):7.1f} ms  [{each}]")
    print(f"\nafter-run reconciliation of the 1M target (off above): {reconcile_seconds(url):.2f} s")


if __name__ == "__main__":
    main()
