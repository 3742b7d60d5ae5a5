"""Console list benchmark: the pipeline list page at 10,000 pipelines, paged (keyset by name), against
the unpaged list it replaced (every pipeline on one page).

    python bench/console_list.py [--pipelines 10000] [--runs-each 20] [--repeat 9] [--url URL] [--keep]

Measured, each the median of --repeat requests after two warm-ups, in process through Flask's test
client (bench/console.py's method and helpers, in a scratch database of its own):
  - the first page (default page size, 50), a filtered page (status + target + last run failed, as
    the htmx fragment the filter form asks for), a page halfway down and the last page (by cursor);
  - the unpaged baseline: the same page template rendered with every pipeline (page size = all),
    built through the same service in a request context, since the view caps a page at 500.
Prints bytes, median/min/max ms, SQL statements, and each page's time as a fraction of the baseline;
writes bench/results/console-list-<time>.json.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from urllib.parse import quote  # noqa: E402

import psycopg2  # noqa: E402

from bench import console as console_bench  # noqa: E402 - server, scratch database, measure()

console_bench.BENCH_DATABASE = "etl_console_list_bench"  # apart from bench/console.py's, which may run too


def seed(dsn: str, pipelines: int, runs_each: int) -> float:
    """Pipelines list_00001.. with statuses and targets mixed, each with runs_each finished runs
    (every 5th failed; every 7th pipeline's newest run failed)."""
    started = time.monotonic()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO etl_pipelines (id, name, description, type, mode, enabled, status, target_table,
                                       batch_size, source_query)
            SELECT gen_random_uuid(), 'list_' || lpad(i::text, 5, '0'), 'Bench pipeline ' || i, 'SQL', 'full',
                   i %% 9 <> 0, (ARRAY['IDLE', 'IDLE', 'FAILED', 'PAUSED'])[1 + i %% 4],
                   (ARRAY['analytics.film_dim', 'analytics.film_rating_agg'])[1 + i %% 2], 1000,
                   'SELECT id AS film_id, title, rating FROM content.film_work'
            FROM generate_series(1, %(n)s) AS i
            """,
            {"n": pipelines},
        )
        cur.execute(
            """
            INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read,
                                           rows_written, error_message, worker_id, trigger)
            SELECT gen_random_uuid(), p.id,
                   CASE WHEN r %% 5 = 0 OR (r = 1 AND right(p.name, 5)::int %% 7 = 0) THEN 'FAILED' ELSE 'SUCCESS' END,
                   now() - make_interval(hours => r), now() - make_interval(hours => r) + interval '7 seconds',
                   1000000, 1000000, NULL, 'bench', 'manual'
            FROM etl_pipelines p, generate_series(1, %(runs)s) AS r
            """,
            {"runs": runs_each},
        )
        cur.execute("UPDATE etl_pipeline_runs SET rows_written = 0, error_message = "
                    "'relation \"content.film_work\" does not exist' WHERE status = 'FAILED'")
        cur.execute("VACUUM ANALYZE etl_pipelines")
        cur.execute("VACUUM ANALYZE etl_pipeline_runs")
        cur.execute("SELECT count(*) FROM etl_pipelines")
        assert cur.fetchone()[0] == pipelines
    conn.close()
    return time.monotonic() - started


def name_at(dsn: str, offset: int) -> str:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM etl_pipelines ORDER BY name OFFSET %s LIMIT 1", (offset,))
        return cur.fetchone()[0]


def measure_unpaged(app, repeat: int) -> dict:
    """Every pipeline on one page: what GET / rendered before it paged (the same template and rows)."""
    import flask

    from etl_console.api.context import db_session
    from etl_console.services import pipeline_list

    def render() -> bytes:
        with app.test_request_context("/"):
            app.preprocess_request()
            session = db_session()
            filters = pipeline_list.ListFilters()
            page = pipeline_list.list_page(session, filters, limit=10_000_000)
            counts = pipeline_list.status_counts(session, filters)
            body = flask.render_template(
                "console/pipelines.html", pipelines=page.pipelines, page=page, counts=counts, filters=filters,
                status="", q="", limit=len(page.pipelines), default_limit=pipeline_list.DEFAULT_PAGE_SIZE,
                statuses=pipeline_list.STATUSES, targets=(),
                status_url=lambda status: "/", stale_url="/", next_url=None, previous_url=None, first_url=None, list_url="/",
            )
            app.do_teardown_request()
            return body.encode()

    for _ in range(2):
        render()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        body = render()
        times.append(time.perf_counter() - started)
    return {"path": "(every pipeline on one page)", "median_ms": statistics.median(times) * 1000,
            "min_ms": min(times) * 1000, "max_ms": max(times) * 1000, "queries": 2, "bytes": len(body)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=10_000)
    parser.add_argument("--runs-each", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--url", help="a PostgreSQL server URL (default: ETL_BENCH_DATABASE_URL or embedded)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    import logging

    from etl_console import create_app
    from etl_console.db.engine import libpq_dsn
    from etl_console.db.migrate import upgrade

    url = console_bench.fresh_database(console_bench.server_url(args))
    dsn = libpq_dsn(url)
    app = create_app({"database_url": url, "runner": "off", "secret_key": "bench", "log_level": "WARNING"})
    upgrade(app.extensions["etl"].database.engine)  # idempotent: whether or not create_app migrated
    logging.getLogger().setLevel(logging.WARNING)
    try:
        seed_s = seed(dsn, args.pipelines, args.runs_each)
        print(f"seeded {args.pipelines:,} pipelines with {args.runs_each} runs each in {seed_s:.1f} s")
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        client = app.test_client()
        middle = quote(name_at(dsn, args.pipelines // 2))
        last = quote(name_at(dsn, max(0, args.pipelines - 26)))
        fragment = {"HX-Request": "true", "HX-Target": "pipeline-table"}
        rows = {
            "first_page": console_bench.measure(app, client, "/", args.repeat),
            "filtered": console_bench.measure(
                app, client, "/?status=FAILED&target=analytics.film_dim&failing=1", args.repeat, fragment),
            "deep_middle": console_bench.measure(app, client, f"/?after={middle}", args.repeat),
            "deep_last": console_bench.measure(app, client, f"/?after={last}", args.repeat),
            "page_500": console_bench.measure(app, client, "/?limit=500", args.repeat),
            "unpaged": measure_unpaged(app, args.repeat),
        }
    finally:
        app.extensions["etl"].database.dispose()
        if not args.keep:
            console_bench.drop_database(url)

    base = rows["unpaged"]["median_ms"]
    labels = {
        "first_page": "first page (50)",
        "filtered": "filtered: FAILED + target + last run failed (htmx)",
        "deep_middle": f"page after the {args.pipelines // 2:,}th name (50)",
        "deep_last": "last page (25)",
        "page_500": "largest page (500)",
        "unpaged": f"unpaged baseline: all {args.pipelines:,} on one page",
    }
    print(f"PostgreSQL {version}; median of {args.repeat} after 2 warm-ups, in process (test client)\n")
    print(f"{'page':<52} {'median':>9} {'min':>9} {'max':>9} {'SQL':>4} {'KiB':>8} {'÷ unpaged':>10}")
    for key, row in rows.items():
        print(
            f"{labels[key]:<52} {row['median_ms']:>7.1f}ms {row['min_ms']:>7.1f}ms {row['max_ms']:>7.1f}ms "
            f"{row['queries']:>4} {row['bytes'] / 1024:>8.1f} {row['median_ms'] / base:>9.3f}x"
        )
    results_dir = os.path.join(_HERE, "results")
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, time.strftime("console-list-%Y%m%d-%H%M%S.json"))
    with open(path, "w") as handle:
        json.dump({"postgresql": version, "pipelines": args.pipelines, "runs_each": args.runs_each,
                   "repeat": args.repeat, "results": rows}, handle, indent=2)
    print(f"\nwritten to {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
