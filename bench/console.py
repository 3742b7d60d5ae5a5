"""Console benchmark: the list page with 500 pipelines and the page of a pipeline with 100,000 runs,
timed against the JSON list endpoint GET /api/v1/pipelines/ on the same data.

    python bench/console.py [--pipelines 500] [--runs 100000] [--repeat 9] [--url URL] [--keep]

The server is --url, else ETL_BENCH_DATABASE_URL, else the embedded one under ./.etl-bench (the
project's default engine). A fresh database `etl_console_bench` is created on it and dropped at the
end (unless --keep). Requests go through the WSGI app in process (Flask's test client: no sockets,
the same for every endpoint), the runner is off, every figure is the median of --repeat requests
after two warm-ups, and each endpoint's SQL statement count is taken from the engine's
before_cursor_execute event. Results are printed and written to bench/results/console-<time>.json.
"""
from __future__ import annotations

import os
import sys

# Run as a script, bench/ is sys.path[0]: a module there could shadow one of the standard
# library's. Put the checkout's root there instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import psycopg2  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

BENCH_DATABASE = "etl_console_bench"


def server_url(args) -> str:
    url = args.url or os.environ.get("ETL_BENCH_DATABASE_URL")
    if url:
        return url
    from etl_console.db.embedded import start_embedded

    return start_embedded(os.path.join(os.path.dirname(__file__), "..", ".etl-bench"))


def fresh_database(url: str) -> str:
    from etl_console.db.engine import libpq_dsn, sqlalchemy_url

    admin = psycopg2.connect(libpq_dsn(sqlalchemy_url(url)))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    admin.close()
    return make_url(sqlalchemy_url(url)).set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from etl_console.db.engine import libpq_dsn

    admin = psycopg2.connect(libpq_dsn(make_url(url).set(database="postgres").render_as_string(hide_password=False)))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
    admin.close()


def seed(dsn: str, pipelines: int, runs: int) -> tuple[str, float]:
    """pipelines - 1 pipelines with 20 runs each, plus one with `runs` runs; returns that one's id."""
    started = time.monotonic()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO etl_pipelines (id, name, description, type, mode, enabled, status, target_table,
                                       batch_size, source_query)
            SELECT gen_random_uuid(), 'pipeline_' || lpad(i::text, 4, '0'), 'Bench pipeline ' || i, 'SQL', 'full',
                   i %% 9 <> 0, (ARRAY['IDLE', 'IDLE', 'FAILED', 'PAUSED'])[1 + i %% 4], 'analytics.film_dim',
                   1000, 'SELECT id AS film_id, title, rating FROM content.film_work'
            FROM generate_series(1, %(n)s) AS i
            """,
            {"n": pipelines - 1},
        )
        cur.execute(
            """
            INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read,
                                           rows_written, error_message, worker_id, trigger)
            SELECT gen_random_uuid(), p.id, CASE WHEN r % 5 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
                   now() - make_interval(hours => r), now() - make_interval(hours => r) + interval '7 seconds',
                   1000000, CASE WHEN r % 5 = 0 THEN 0 ELSE 1000000 END,
                   CASE WHEN r % 5 = 0 THEN 'relation "content.film_work" does not exist' END, 'bench', 'manual'
            FROM etl_pipelines p, generate_series(1, 20) AS r
            """
        )
        cur.execute(
            """
            INSERT INTO etl_pipelines (id, name, type, mode, enabled, status, target_table, batch_size, source_query)
            VALUES (gen_random_uuid(), 'hundred_k_runs', 'SQL', 'full', true, 'IDLE', 'analytics.film_dim', 10000,
                    'SELECT id AS film_id, title, rating FROM content.film_work')
            RETURNING id
            """
        )
        big = str(cur.fetchone()[0])
        cur.execute(
            """
            INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read,
                                           rows_written, error_message, worker_id, trigger)
            SELECT gen_random_uuid(), %(pid)s, CASE WHEN i %% 11 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
                   now() - make_interval(mins => i), now() - make_interval(mins => i) + make_interval(secs => 3 + i %% 7),
                   1000000 + i %% 1000, CASE WHEN i %% 11 = 0 THEN 0 ELSE 1000000 + i %% 1000 END,
                   CASE WHEN i %% 11 = 0 THEN 'duplicate key value violates unique constraint "film_dim_pkey"' END,
                   'bench', 'manual'
            FROM generate_series(1, %(runs)s) AS i
            """,
            {"pid": big, "runs": runs},
        )
        cur.execute("VACUUM ANALYZE etl_pipelines")
        cur.execute("VACUUM ANALYZE etl_pipeline_runs")
        cur.execute("SELECT count(*) FROM etl_pipelines")
        assert cur.fetchone()[0] == pipelines
    conn.close()
    return big, time.monotonic() - started


def deep_cursor(dsn: str, pipeline_id: str, offset: int) -> str:
    from etl_console.console.format import encode_cursor

    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT started_at, id FROM etl_pipeline_runs WHERE pipeline_id = %s "
            "ORDER BY started_at DESC, id DESC OFFSET %s LIMIT 1",
            (pipeline_id, offset),
        )
        started_at, run_id = cur.fetchone()
    conn.close()
    return encode_cursor((started_at, run_id))


def measure(app, client, path: str, repeat: int, headers: dict | None = None) -> dict:
    engine = app.extensions["etl"].database.engine
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    for _ in range(2):  # warm-up: pools, template cache
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
    times = []
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(repeat):
            statements.clear()
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
            queries = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return {
        "path": path,
        "median_ms": statistics.median(times) * 1000,
        "min_ms": min(times) * 1000,
        "max_ms": max(times) * 1000,
        "queries": queries,
        "bytes": len(response.get_data()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=500)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--url", help="a PostgreSQL server URL (default: ETL_BENCH_DATABASE_URL or embedded)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    import logging

    from etl_console import create_app
    from etl_console.db.engine import libpq_dsn
    from etl_console.db.migrate import upgrade

    url = fresh_database(server_url(args))
    dsn = libpq_dsn(url)
    app = create_app({"database_url": url, "runner": "off", "secret_key": "bench", "log_level": "WARNING"})
    upgrade(app.extensions["etl"].database.engine)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        big, seed_s = seed(dsn, args.pipelines, args.runs)
        print(f"seeded {args.pipelines} pipelines and {args.runs:,} runs of one of them in {seed_s:.1f} s")
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        client = app.test_client()
        deep = deep_cursor(dsn, big, args.runs // 2)
        rows = {
            "json_list": measure(app, client, "/api/v1/pipelines/", args.repeat),
            "list_page": measure(app, client, "/", args.repeat),
            "list_filtered": measure(app, client, "/?status=FAILED&q=pipeline_0",
                                     args.repeat, {"HX-Request": "true", "HX-Target": "pipeline-table"}),
            "pipeline_page": measure(app, client, f"/pipelines/{big}", args.repeat),
            "pipeline_page_deep": measure(app, client, f"/pipelines/{big}?before={deep}", args.repeat),
            "live_poll": measure(app, client, f"/pipelines/{big}/live", args.repeat, {"HX-Request": "true"}),
            "json_runs_50": measure(app, client, f"/api/v1/pipelines/{big}/runs?limit=50", args.repeat),
        }
    finally:
        app.extensions["etl"].database.dispose()
        if not args.keep:
            drop_database(url)

    base = rows["json_list"]["median_ms"]
    labels = {
        "json_list": f"GET /api/v1/pipelines/ ({args.pipelines} pipelines, JSON)",
        "list_page": f"console list page ({args.pipelines} pipelines + last runs)",
        "list_filtered": "console list, htmx filter fragment",
        "pipeline_page": f"pipeline page, {args.runs:,} runs, newest 50",
        "pipeline_page_deep": f"pipeline page, {args.runs:,} runs, {args.runs // 2:,} deep",
        "live_poll": "pipeline live-progress poll fragment",
        "json_runs_50": "GET /api/v1/pipelines/{id}/runs?limit=50",
    }
    print(f"PostgreSQL {version}; median of {args.repeat} requests after 2 warm-ups, in process (test client)\n")
    print(f"{'endpoint':<52} {'median':>9} {'min':>9} {'max':>9} {'SQL':>4} {'KiB':>7} {'÷ JSON list':>11}")
    for key, row in rows.items():
        print(
            f"{labels[key]:<52} {row['median_ms']:>7.1f}ms {row['min_ms']:>7.1f}ms {row['max_ms']:>7.1f}ms "
            f"{row['queries']:>4} {row['bytes'] / 1024:>7.1f} {row['median_ms'] / base:>10.2f}x"
        )
    results_dir = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, time.strftime("console-%Y%m%d-%H%M%S.json"))
    with open(path, "w") as handle:
        json.dump({"postgresql": version, "pipelines": args.pipelines, "runs": args.runs, "repeat": args.repeat,
                   "results": rows}, handle, indent=2)
    print(f"\nwritten to {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
