"""PYTHON pipelines against SQL pipelines on the same data, side by side in one process run.

    python -P bench/python_pipeline.py [--films 1000000] [--repeat 3] [--batch-size 10000] [--url URL]

Every figure is a real run (service request -> runner claim -> FullLoad -> shadow, indexes, gates,
publish -> fenced commit) in a child process, so its peak RSS is its own:
  sql in-database  the SQL pipeline as it runs by default here (source and target are one database:
                   INSERT … SELECT inside PostgreSQL, no rows through the runner)
  sql copy         the same SQL pipeline with ETL_LOAD_PATH=copy: COPY out piped into COPY in, the
                   path a PYTHON pipeline is comparable to (its rows must leave PostgreSQL)
  python (a)       a PYTHON pipeline with no tasks: COPY CSV -> Arrow batches -> CSV -> COPY
  python (b)       trim (normalize_text) + rename + keyed hash (HMAC-SHA256) of the title
  python (c)       (b) as one row function (@row_transform): every row a dict and back
Runs are interleaved (noise hits all alike); medians of --repeat. (a)/(b)/(c) also run on the
first 100k films for peak RSS at 100k vs 1M. Without --url: the embedded server under ./.etl-bench,
demo data from `etl-console demo --films N` (bench/full_load.py's prepare).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

HASH_ENV = "ETL_BENCH_HASH_KEY"
ROW_KIND = "bench_row_trim_rename_hash"
SQL_QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"
RAW_QUERY = "SELECT id AS film_id, title AS film_title, rating FROM content.film_work"
TASKS_B = [
    {"kind": "normalize_text", "config": {"columns": ["film_title"], "trim": True}},
    {"kind": "rename", "config": {"columns": {"film_title": "title"}}},
    {"kind": "hash", "config": {"columns": ["title"], "secret_env": HASH_ENV}},
]


def register_row_function() -> None:
    """(c): the same work as (b), written as the row-function convenience (this process only)."""
    from etl_console.transforms import register_transform, row_transform

    def renamed(columns):
        return ["title" if name == "film_title" else name for name in columns]

    @row_transform(output_columns=renamed)
    def trim_rename_hash(row):
        key = os.environ[HASH_ENV].encode()
        title = row.pop("film_title")
        row["title"] = None if title is None else hmac.new(key, title.strip().encode(), hashlib.sha256).hexdigest()
        return row

    register_transform(ROW_KIND, trim_rename_hash)


PIPELINES = {  # name: (type, query, tasks)
    "bench_py_sql": ("SQL", SQL_QUERY, None),
    "bench_py_a": ("PYTHON", SQL_QUERY, []),
    "bench_py_b": ("PYTHON", RAW_QUERY, TASKS_B),
    "bench_py_c": ("PYTHON", RAW_QUERY, [{"kind": ROW_KIND, "config": {}}]),
    "bench_py_a_100k": ("PYTHON", SQL_QUERY + " LIMIT 100000", []),
    "bench_py_b_100k": ("PYTHON", RAW_QUERY + " LIMIT 100000", TASKS_B),
    "bench_py_c_100k": ("PYTHON", RAW_QUERY + " LIMIT 100000", [{"kind": ROW_KIND, "config": {}}]),
}


def prepare_pipelines(url: str, batch_size: int) -> None:
    from sqlalchemy import select

    from etl_console.config import Config
    from etl_console.db.engine import Database
    from etl_console.db.models import Pipeline
    from etl_console.services import pipelines, tasks

    register_row_function()
    config = Config.from_env(database_url=url)  # reads ETL_SOURCE_URL: the save check runs as the source login
    database = Database.connect(config)
    with database.sessions() as session:
        existing = {p.name: p for p in session.scalars(select(Pipeline))}
        for name, (kind, query, task_list) in PIPELINES.items():
            fields = {"type": kind, "source_query": query, "batch_size": batch_size}
            if name in existing:
                pipeline = pipelines.update_pipeline(session, config.allowed_target_tables, existing[name].id, fields)
            else:
                pipeline = pipelines.create_pipeline(session, config.allowed_target_tables,
                                                     {"name": name, "target_table": "analytics.film_dim", **fields})
            if task_list is not None:
                tasks.replace_tasks(session, pipeline.id, task_list, default_source_dsn=database.source_dsn)
    database.dispose()


def child(url: str, name: str, load_path: str) -> None:
    os.environ["ETL_LOAD_PATH"] = load_path
    register_row_function()
    import full_load  # noqa: E402 - bench/full_load.py's runner_child: one real run, JSON figures

    full_load.runner_child(url, name)


def run(url: str, name: str, load_path: str = "auto") -> dict:
    output = subprocess.run([sys.executable, "-P", __file__, "--child", url, name, load_path],
                            check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if result["status"] != "SUCCESS":
        raise SystemExit(f"{name} failed: {result['error']}")
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--url", default=os.environ.get("ETL_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    os.environ.setdefault(HASH_ENV, "bench-hash-key")

    import full_load

    url = full_load.prepare(args.url, args.films, 1000)
    # User SQL runs as a least-privilege login, as in a deployment: with it a same-database SQL
    # pipeline takes the in-database path (the service's own login would force the COPY stream).
    from etl_console.db.engine import libpq_dsn
    from etl_console.db.source_login import DEFAULT_LOGIN, login_url, provision_source_login

    provision_source_login(libpq_dsn(url), login=DEFAULT_LOGIN, password="bench-source-password",
                           schemas=("content", "ugc"), tables=("analytics.film_dim", "analytics.film_rating_agg"),
                           revoke_public_functions=True)
    os.environ["ETL_SOURCE_URL"] = login_url(url, DEFAULT_LOGIN, "bench-source-password")
    os.environ["ETL_RECONCILE_AFTER_RUN"] = "false"  # its re-read of source and target is not the load
    prepare_pipelines(url, args.batch_size)
    cases = [("sql in-database", "bench_py_sql", "auto"), ("sql copy (ETL_LOAD_PATH=copy)", "bench_py_sql", "copy"),
             ("python (a) no tasks", "bench_py_a", "auto"), ("python (b) trim+rename+hash", "bench_py_b", "auto"),
             ("python (c) (b) as a row function", "bench_py_c", "auto")]
    results: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    for _ in range(args.repeat):
        for label, name, load_path in cases:
            results[label].append(run(url, name, load_path))
            print(f"  {label:<34} {results[label][-1]['seconds']:6.2f} s  path {results[label][-1]['path']}",
                  flush=True)
    small = {label: [run(url, f"{name}_100k") for _ in range(args.repeat)]
             for label, name, _ in cases if name != "bench_py_sql"}

    def rate(label: str) -> float:
        return args.films / statistics.median(r["seconds"] for r in results[label])

    sql_copy, sql_in_db = rate("sql copy (ETL_LOAD_PATH=copy)"), rate("sql in-database")
    print(f"\n{args.films:,} films -> analytics.film_dim, batch_size {args.batch_size:,}, "
          f"medians of {args.repeat} (request -> SUCCESS)")
    print(f"  {'':<34} {'seconds':>8} {'rows/s':>10} {'vs sql copy':>12} {'vs sql in-db':>13} "
          f"{'RSS 100k':>9} {'RSS 1M':>8} {'1M/100k':>8}")
    for label, _, _ in cases:
        seconds = statistics.median(r["seconds"] for r in results[label])
        rss_1m = statistics.median(r["peak_rss_mb"] for r in results[label])
        line = (f"  {label:<34} {seconds:8.2f} {rate(label):>10,.0f} {rate(label) / sql_copy:>11.2f}x "
                f"{rate(label) / sql_in_db:>12.2f}x")
        if label in small:
            rss_100k = statistics.median(r["peak_rss_mb"] for r in small[label])
            line += f" {rss_100k:>7.0f}MB {rss_1m:>6.0f}MB {rss_1m / rss_100k:>7.2f}x"
        else:
            line += f" {'':>9} {rss_1m:>6.0f}MB"
        print(line)
        each = ", ".join(f"{r['seconds']:.2f}" for r in results[label])
        print(f"  {'':<34} runs: {each}")


if __name__ == "__main__":
    main()
