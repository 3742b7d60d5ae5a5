"""Helpers for tests of named source connections: logins that really need their password."""
from __future__ import annotations

import contextlib
import os

import psycopg2
from sqlalchemy.engine import make_url


def connection_fields(url: str) -> dict:
    """A SQLAlchemy URL as a connection's fields (the embedded server's host is a socket directory)."""
    parsed = make_url(url)
    return {"host": parsed.host or parsed.query["host"], "port": parsed.port or 5432, "database": parsed.database,
            "user": parsed.username, "password": parsed.password or None}


@contextlib.contextmanager
def password_login(admin_dsn: str, login: str, password: str, grant_from: str = "etl_source"):
    """A login that must give its password (scram) on this server, with grant_from's privileges.

    The test servers trust local connections; one line for this login goes in front of pg_hba.conf
    for the test's length. Yields None when the server's files are not reachable from here."""
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute("SHOW hba_file")
    hba_path = cur.fetchone()[0]
    if not os.access(hba_path, os.W_OK):
        admin.close()
        yield None
        return
    with open(hba_path) as handle:
        original = handle.read()
    drop_login(cur, login)
    cur.execute(f'CREATE ROLE "{login}" LOGIN NOINHERIT PASSWORD %s', (password,))
    cur.execute(f'GRANT "{grant_from}" TO "{login}"')
    cur.execute(f'ALTER ROLE "{login}" INHERIT')
    rules = (f"local all {login} scram-sha-256\n"
             f"host all {login} 127.0.0.1/32 scram-sha-256\n"
             f"host all {login} ::1/128 scram-sha-256\n")
    try:
        with open(hba_path, "w") as handle:
            handle.write(rules + original)
        cur.execute("SELECT pg_reload_conf()")
        _wait_for_password_rule(admin_dsn, login)
        yield login
    finally:
        with open(hba_path, "w") as handle:
            handle.write(original)
        cur.execute("SELECT pg_reload_conf()")
        drop_login(cur, login)
        admin.close()


def _wait_for_password_rule(admin_dsn: str, login: str, timeout_s: float = 5.0) -> None:
    """pg_reload_conf only signals the server: wait until a wrong password is really refused."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            psycopg2.connect(admin_dsn, user=login, password="certainly-not-it").close()
        except psycopg2.OperationalError as error:
            if "password" in str(error):
                return
        time.sleep(0.05)
    raise AssertionError("the server did not take the password rule")


def drop_login(cursor, login: str) -> None:
    """Drop a test login with whatever privileges loads granted it (a shadow's schema, say)."""
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,))
    if cursor.fetchone():
        cursor.execute(f'DROP OWNED BY "{login}"')
        cursor.execute(f'DROP ROLE "{login}"')
