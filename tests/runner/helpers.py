"""Source queries and checks shared by the runner tests."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import wait_for


def slow_film_query(rows: int, sleep_every: int, sleep_s: float) -> str:
    """A film_dim-shaped source that sleeps sleep_s every sleep_every rows (server side)."""
    return (
        "SELECT md5('slow' || i)::uuid AS film_id, 'film ' || i AS title, (i % 10)::float8 AS rating "
        f"FROM generate_series(1, {rows}) AS i "
        f"WHERE CASE WHEN i % {sleep_every} = 0 THEN pg_sleep({sleep_s}) IS NOT NULL ELSE true END"
    )


def film_rows_query(rows: int, tag: str = "new") -> str:
    return (
        f"SELECT md5('{tag}' || i)::uuid AS film_id, '{tag} ' || i AS title, 1.0::float8 AS rating "
        f"FROM generate_series(1, {rows}) AS i"
    )


def target_count(sql, table: str = "analytics.film_dim") -> int:
    return sql(f"SELECT count(*) FROM {table}")[0][0]


def start_worker(database_url: str, **settings: str) -> subprocess.Popen:
    """`etl-console worker` in its own process, with ETL_* settings given without the prefix."""
    env = dict(os.environ, ETL_DATABASE_URL=database_url)
    env.update({f"ETL_{name.upper()}": value for name, value in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-c", "from etl_console.cli import main; main()", "worker"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def reap_lost_runs(etl, timeout: float) -> int:
    """Run a reaper (as any runner would, on the test app's EtlExtension `etl`) until it reaps
    something; return how many it reaped."""
    from etl_console.runner.runner import Runner

    reaper = Runner(etl.database, etl.config)
    try:
        return wait_for(lambda: reaper.reap(), timeout=timeout, interval=0.2, message="the reaper")
    finally:
        reaper.engine.dispose()
