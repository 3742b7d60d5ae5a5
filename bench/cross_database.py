"""Cross-database full loads: a pipeline reading a named source connection against the same load
from the warehouse itself, interleaved in one process run, through the real code path (API ->
runner claim -> FullLoad -> publish). Also times a cross-database reconciliation (the merge of two
key streams) at the same size.

    python -P bench/cross_database.py [--films 1000000] [--repeat 3] [--other-server URL]

Variants, each a 1M-row `content.film_work` -> `analytics.film_dim` reload:
  same-db        no connection: the warehouse's own content schema (ETL_LOAD_PATH as configured;
                 with the default "auto" that is INSERT ... SELECT inside PostgreSQL)
  same-db-copy   the same, forced through the COPY stream (ETL_LOAD_PATH=copy)
  other-db       a source connection to another database on the same server (COPY stream)
  other-server   a source connection to another PostgreSQL server (--other-server; skipped when it
                 does not answer)
Uses an embedded server under $TMPDIR/etl-bench-xdb (--data-dir). Figures are medians on a shared, noisy machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

FILM_QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"
LOGIN, PASSWORD = "etl_bench_reader", "bench-reader-password"


def _fields(url: str) -> dict:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {"host": parsed.host or parsed.query["host"], "port": parsed.port or 5432, "database": parsed.database,
            "user": LOGIN, "password": PASSWORD}


def _source_database(admin_url: str, name: str, films: int) -> str:
    from sqlalchemy.engine import make_url

    from etl_console.db.engine import libpq_dsn
    from etl_console.db.source_login import provision_source_login
    from etl_console.warehouse.demo import load_demo_data

    admin = psycopg2.connect(libpq_dsn(admin_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    load_demo_data(libpq_dsn(url), films, films)
    provision_source_login(libpq_dsn(url), login=LOGIN, password=PASSWORD, schemas=("content",), tables=())
    return url


def _run(client, pipeline_id: str) -> tuple[float, int]:
    """Seconds from claim to finish, and rows written, of one run."""
    assert client.post(f"/api/v1/pipelines/{pipeline_id}/run").status_code == 200
    while True:
        runs = client.get(f"/api/v1/pipelines/{pipeline_id}/runs?limit=1").get_json()
        if runs and runs[0]["status"] != "RUNNING":
            break
        time.sleep(0.05)
    run = runs[0]
    if run["status"] != "SUCCESS":
        raise SystemExit(f"run failed: {run['error_message']}")
    detail = client.get(f"/api/v1/pipelines/{pipeline_id}/runs/{run['id']}").get_json()
    from datetime import datetime

    claimed = datetime.fromisoformat(detail["claimed_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(detail["finished_at"].replace("Z", "+00:00"))
    return (finished - claimed).total_seconds(), run["rows_written"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--other-server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "etl-bench-xdb"))
    args = parser.parse_args()

    from etl_console import create_app
    from etl_console.db.embedded import start_embedded
    from etl_console.db.engine import libpq_dsn
    from etl_console.warehouse.demo import load_demo_data
    from etl_console.db.migrate import upgrade
    from etl_console.serving import start_runner_thread
    from etl_console.warehouse.reconcile_streams import reconcile_streams

    url = start_embedded(args.data_dir)
    load_demo_data(libpq_dsn(url), args.films, args.films)
    other_db = _source_database(url, "etl_bench_production", args.films)
    variants = {"same-db": None, "same-db-copy": None, "other-db": other_db}
    try:
        psycopg2.connect(libpq_dsn(args.other_server), connect_timeout=2).close()
        variants["other-server"] = _source_database(args.other_server, "etl_bench_production", args.films)
    except psycopg2.Error:
        print(f"other server {args.other_server} does not answer: skipped")

    apps = {}
    for load_path in ("auto", "copy"):
        apps[load_path] = create_app({
            "database_url": url, "runner": "thread", "load_path": load_path, "poll_s": 0.1, "heartbeat_s": 0.2,
            "reconcile_after_run": False, "data_dir": args.data_dir, "secret_key": "bench",
        })
    upgrade(apps["auto"].extensions["etl"].database.engine)
    start_runner_thread(apps["auto"])
    client = apps["auto"].test_client()
    pipelines = {}
    for name, source_url in variants.items():
        body = {"name": f"xdb_{name}_{uuid.uuid4().hex[:6]}", "target_table": "analytics.film_dim",
                "source_query": FILM_QUERY}
        if source_url:
            connection = client.post("/api/v1/connections/", json={"name": body["name"], **_fields(source_url)})
            assert connection.status_code == 201, connection.get_data(as_text=True)
            body["source_connection"] = body["name"]
        response = client.post("/api/v1/pipelines/", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        pipelines[name] = response.get_json()["id"]

    from etl_console.runner.runner import Runner

    state = apps["copy"].extensions["etl"]
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(args.repeat):
        for name in variants:
            if name == "same-db-copy":
                # Only the copy-path runner may take this one: stop the auto runner meanwhile.
                apps["auto"].extensions["etl"].runner.stop()
                copy_runner = Runner(state.database, state.config, name="copy").start()
                seconds, rows = _run(client, pipelines[name])
                copy_runner.stop()
                apps["auto"].extensions["etl"].runner = Runner(
                    apps["auto"].extensions["etl"].database, apps["auto"].extensions["etl"].config).start()
            else:
                seconds, rows = _run(client, pipelines[name])
            times[name].append(seconds)
            print(f"round {round_number + 1} {name:13} {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s",
                  flush=True)

    print("\nmedians")
    rates = {name: args.films / statistics.median(values) for name, values in times.items()}
    for name, rate in rates.items():
        print(f"  {name:13} {statistics.median(times[name]):6.2f} s  {rate:>10,.0f} rows/s  "
              f"{rate / rates['same-db']:.2f}x same-db  {rate / rates['same-db-copy']:.2f}x same-db-copy")

    # Reconciliation across databases at the same size: both sides streamed, merged in Python.
    warehouse_source = apps["auto"].extensions["etl"].database.source_dsn
    from psycopg2.extensions import make_dsn

    for name in ("other-db", "other-server"):
        if name not in variants:
            continue
        # The target holds the last load's rows: reconcile it against a source with the same keys.
        _run(client, pipelines[name])
        started = time.monotonic()
        fields = _fields(variants[name])
        source_dsn = make_dsn(host=fields["host"], port=fields["port"], dbname=fields["database"], user=LOGIN,
                              password=PASSWORD)
        result = reconcile_streams(source_dsn, warehouse_source, FILM_QUERY, "analytics.film_dim", 600)
        print(f"reconcile {name}: {result.source_rows:,} vs {result.target_rows:,} keys, match={result.match}, "
              f"{time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    tempfile.tempdir = None
    main()
