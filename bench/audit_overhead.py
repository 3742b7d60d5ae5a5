"""The cost of the audit log: requests/s of PATCH /api/v1/pipelines/{id} with and without it, same
process, same data, interleaved.

    python bench/audit_overhead.py [--requests 400] [--rounds 3] [--threads 1] [--url URL] [--keep]

The server is --url, else ETL_BENCH_DATABASE_URL, else the embedded one under ./.etl-bench. A fresh
database `etl_console_bench_audit` is created on it (dropped at the end unless --keep). The app has
a named operator token (auth on, so the actor is resolved as in production) and the runner off.
Requests go through the WSGI app in process (Flask's test client), --threads clients at once, each
PATCH changing batch_size (so every request is a real change that the audit log records with its
before and after). "without" switches the hook off in process (services.audit.enabled = False: the
bench's switch, no setting); each round measures both, in alternating order. Prints each round, the
medians of --rounds, the ratio, and the SQL statements one PATCH sends either way; writes
bench/results/audit-<time>.json.
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
import threading  # noqa: E402
import time  # noqa: E402

import psycopg2  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

BENCH_DATABASE = "etl_console_bench_audit"
TOKEN = "bench-audit-operator-token-0123456789"
QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"


def server_url(args) -> str:
    url = args.url or os.environ.get("ETL_BENCH_DATABASE_URL")
    if url:
        return url
    from etl_console.db.embedded import start_embedded

    return start_embedded(os.path.join(os.path.dirname(__file__), "..", ".etl-bench"))


def admin_connection(url: str):
    from etl_console.db.engine import libpq_dsn

    admin = psycopg2.connect(libpq_dsn(make_url(url).set(database="postgres").render_as_string(hide_password=False)))
    admin.autocommit = True
    return admin


def fresh_database(url: str) -> str:
    from etl_console.db.engine import sqlalchemy_url

    url = sqlalchemy_url(url)
    admin = admin_connection(url)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    admin.close()
    return make_url(url).set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    admin = admin_connection(url)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
    admin.close()


def patch_rate(app, pipeline_ids: list[str], requests: int, threads: int) -> float:
    """requests/s of `requests` PATCHes spread over `threads` clients, each on its own pipeline
    (one pipeline per client: row locks would otherwise serialise them)."""
    per_thread = requests // threads
    headers = {"Authorization": f"Bearer {TOKEN}"}
    failures: list[str] = []
    barrier = threading.Barrier(threads + 1)

    def work(pipeline_id: str) -> None:
        client = app.test_client()
        barrier.wait()
        for number in range(per_thread):
            response = client.patch(f"/api/v1/pipelines/{pipeline_id}", json={"batch_size": 1000 + number % 2},
                                    headers=headers)
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.get_data(as_text=True)[:200]}")
                return

    workers = [threading.Thread(target=work, args=(pipeline_ids[i],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"a PATCH failed: {failures[0]}")
    return per_thread * threads / elapsed


def statements_per_patch(app, pipeline_id: str, batch_size: int) -> int:
    engine = app.extensions["etl"].database.engine
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)
        if os.environ.get("BENCH_SHOW_SQL"):
            print("SQL:", statement.split(chr(10))[0][:150])

    event.listen(engine, "before_cursor_execute", count)
    try:
        app.test_client().patch(f"/api/v1/pipelines/{pipeline_id}", json={"batch_size": batch_size},
                                headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="PATCHes per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="clients at once")
    parser.add_argument("--url", help="a PostgreSQL server URL (default: ETL_BENCH_DATABASE_URL or embedded)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    import logging

    from etl_console import create_app
    from etl_console.services import audit

    url = fresh_database(server_url(args))
    app = create_app({"database_url": url, "runner": "off", "secret_key": "bench", "log_level": "WARNING",
                      "api_tokens": f"bench={TOKEN}:operator"})
    from etl_console.db.migrate import upgrade

    upgrade(app.extensions["etl"].database.engine)
    logging.getLogger().setLevel(logging.WARNING)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rounds: list[dict] = []
    try:
        client = app.test_client()
        pipeline_ids = []
        for number in range(max(1, args.threads)):
            response = client.post("/api/v1/pipelines/", headers=headers, json={
                "name": f"bench_audit_{number}", "target_table": "analytics.film_dim", "source_query": QUERY})
            assert response.status_code == 201, response.get_data(as_text=True)
            pipeline_ids.append(response.get_json()["id"])
        with_sql = statements_per_patch(app, pipeline_ids[0], 7)
        audit.enabled = False
        without_sql = statements_per_patch(app, pipeline_ids[0], 8)
        audit.enabled = True
        patch_rate(app, pipeline_ids, min(50, args.requests), args.threads)  # warm-up: pools, caches
        for number in range(args.rounds):
            figures = {}
            for enabled in ((True, False) if number % 2 == 0 else (False, True)):
                audit.enabled = enabled
                figures["with" if enabled else "without"] = patch_rate(app, pipeline_ids, args.requests, args.threads)
            audit.enabled = True
            rounds.append(figures)
            print(f"round {number + 1}: with audit {figures['with']:8.1f} req/s   "
                  f"without {figures['without']:8.1f} req/s   ratio {figures['with'] / figures['without']:.3f}")
        from etl_console.db.engine import libpq_dsn

        with psycopg2.connect(libpq_dsn(url)) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM etl_audit_log")
            audit_rows = cur.fetchone()[0]
    finally:
        audit.enabled = True
        app.extensions["etl"].database.dispose()
        if not args.keep:
            drop_database(url)

    with_median = statistics.median(r["with"] for r in rounds)
    without_median = statistics.median(r["without"] for r in rounds)
    print(f"\nPostgreSQL {version}; {args.requests} PATCHes per measurement, {args.threads} client(s), "
          f"in process (test client), medians of {args.rounds} rounds")
    print(f"PATCH with the audit log    {with_median:8.1f} req/s  ({1000 / with_median:.2f} ms of wall time a request, "
          f"{with_sql} SQL statements)")
    print(f"PATCH without the audit log {without_median:8.1f} req/s  ({1000 / without_median:.2f} ms of wall time a request, "
          f"{without_sql} SQL statements)")
    print(f"ratio with/without {with_median / without_median:.3f}   "
          f"({(1000 / with_median - 1000 / without_median):+.2f} ms per PATCH; {audit_rows} audit rows written)")
    results_dir = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, time.strftime("audit-%Y%m%d-%H%M%S.json"))
    with open(path, "w") as handle:
        json.dump({"postgresql": version, "requests": args.requests, "threads": args.threads, "rounds": rounds,
                   "median_with": with_median, "median_without": without_median,
                   "statements_with": with_sql, "statements_without": without_sql}, handle, indent=2)
    print(f"written to {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
