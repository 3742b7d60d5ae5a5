"""The least-privilege login that runs user SQL (source queries, reconciliation).

A pipeline's source query is code written by whoever may edit pipelines. PostgreSQL cannot contain it
by `SET ROLE` under a privileged session (the session user can always set the role back) nor by a list
of function names (`ts_stat`, `query_to_xml` and others run SQL handed to them as a string). So it
runs on a connection whose *session user* is this login: no superuser, no role attributes, none of the
server-file, signal or read-everything roles, SELECT on the source schemas and the allowed targets only.

`provision_source_login` creates or repairs it, idempotently; `source_privilege_problems` tells what is
wrong with whatever login a deployment configured (ETL_SOURCE_URL).
"""
from __future__ import annotations

import threading
import time
from typing import Iterable

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

DEFAULT_LOGIN = "etl_source"
# Roles that read or write server files, run programs, signal backends or read every table.
DANGEROUS_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_monitor",
    "pg_read_all_settings",
    "pg_read_all_stats",
)
# In a database the service owns (the embedded one), these are also taken from PUBLIC: a source query
# could otherwise hold advisory locks, stop the other runs' source sessions (same login), notify
# listeners, or (on the in-database path, which runs READ WRITE) store large objects.
_FUNCTIONS_REVOKED_FROM_PUBLIC = (
    "pg_terminate_backend(integer, bigint)",
    "pg_cancel_backend(integer)",
    "pg_notify(text, text)",
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_from_bytea(oid, bytea)",
    "lo_put(oid, bigint, bytea)",
    "pg_advisory_lock(bigint)",
    "pg_advisory_lock(integer, integer)",
    "pg_advisory_lock_shared(bigint)",
    "pg_advisory_lock_shared(integer, integer)",
    "pg_advisory_xact_lock(bigint)",
    "pg_advisory_xact_lock(integer, integer)",
    "pg_advisory_xact_lock_shared(bigint)",
    "pg_advisory_xact_lock_shared(integer, integer)",
    "pg_try_advisory_lock(bigint)",
    "pg_try_advisory_lock(integer, integer)",
    "pg_try_advisory_lock_shared(bigint)",
    "pg_try_advisory_lock_shared(integer, integer)",
    "pg_try_advisory_xact_lock(bigint)",
    "pg_try_advisory_xact_lock(integer, integer)",
    "pg_try_advisory_xact_lock_shared(bigint)",
    "pg_try_advisory_xact_lock_shared(integer, integer)",
)
# Membership in such a role lets `SET ROLE` climb to it.
_POWERFUL_ROLE = "(r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls)"
_PROVISION_LOCK_KEY = 0x45544C53  # "ETLS": concurrent provisioning (serve, workers) waits its turn


def provision_source_login(
    admin_dsn: str,
    *,
    login: str,
    password: str,
    schemas: Iterable[str],
    tables: Iterable[str],
    revoke_public_functions: bool = False,
) -> None:
    """Create or repair `login` in admin_dsn's database and grant it read access to exactly this.

    Schemas and tables that do not exist yet are skipped: call again once they do (the demo does).
    Tables the service's own user creates later in those schemas become readable by default privileges.
    """
    connection = psycopg2.connect(admin_dsn, application_name="etl-console provision")
    try:
        with connection, connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PROVISION_LOCK_KEY,))
            role = sql.Identifier(login)
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(
                sql.SQL(
                    verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                    "NOINHERIT PASSWORD {}"
                ).format(role, sql.Literal(password))
            )
            # A narrower role granted for ETL_SOURCE_ROLE may stay; a way up to more privileges may not.
            cur.execute(
                "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = %s) "
                "AND (r.rolname = ANY(%s) OR " + _POWERFUL_ROLE + ")",
                (login, list(DANGEROUS_ROLES)),
            )
            for (granted_role,) in cur.fetchall():
                cur.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(granted_role), role))
            cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(_current_database(cur), role))
            for schema in schemas:
                if not _exists(cur, "SELECT to_regnamespace(%s)", schema):
                    continue
                name = sql.Identifier(schema)
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(name, role))
                cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(name, role))
                cur.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(name, role)
                )
            for table in tables:
                schema, _, relation = table.partition(".")
                if not _exists(cur, "SELECT to_regclass(%s)", str(sql.Identifier(schema, relation).as_string(cur))):
                    continue
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
                cur.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(sql.Identifier(schema, relation), role))
            if revoke_public_functions:
                for signature in _FUNCTIONS_REVOKED_FROM_PUBLIC:
                    cur.execute(f"REVOKE EXECUTE ON FUNCTION pg_catalog.{signature} FROM PUBLIC")
    finally:
        connection.close()


def source_privilege_problems(source_dsn: str, timeout_s: float = 2.0) -> list[str]:
    """What makes this login unfit to run untrusted SQL; empty when it is least-privilege."""
    try:
        connection = psycopg2.connect(
            source_dsn, application_name="etl-console privilege check", connect_timeout=max(1, int(timeout_s))
        )
    except psycopg2.Error as error:
        return [f"cannot connect as the source login: {str(error).strip().splitlines()[0]}"]
    try:
        with connection.cursor() as cur:
            cur.execute("SET statement_timeout = %s", (f"{int(timeout_s * 1000)}ms",))
            cur.execute(
                "SELECT session_user, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = session_user"
            )
            user, superuser, createrole, createdb, replication, bypassrls = cur.fetchone()
            problems = [
                f"{user} {what}"
                for flag, what in (
                    (superuser, "is a superuser"),
                    (createrole, "has CREATEROLE"),
                    (createdb, "has CREATEDB"),
                    (replication, "has REPLICATION"),
                    (bypassrls, "has BYPASSRLS"),
                )
                if flag
            ]
            if not superuser:
                cur.execute(
                    "SELECT rolname FROM pg_roles r WHERE (rolname = ANY(%s) OR " + _POWERFUL_ROLE + ") "
                    "AND rolname <> session_user AND pg_has_role(session_user, oid, 'MEMBER') ORDER BY rolname",
                    (list(DANGEROUS_ROLES),),
                )
                problems += [f"{user} is a member of {role}" for (role,) in cur.fetchall()]
                cur.execute(
                    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
                    "AND c.relname LIKE 'etl\\_%%' AND c.relkind = 'r' "
                    "AND has_table_privilege(session_user, c.oid, 'SELECT') ORDER BY 1"
                )
                readable = [name for (name,) in cur.fetchall()]
                if readable:
                    problems.append(f"{user} can read the metadata tables ({', '.join(readable)})")
            return problems
    finally:
        connection.close()


class SourcePrivilegeCheck:
    """source_privilege_problems for one Database, cached: health and every console page ask, and the
    answer only changes when an administrator changes the login."""

    def __init__(self, database, ttl_s: float = 60.0) -> None:
        self._database = database
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._problems: list[str] = []

    def problems(self) -> list[str]:
        with self._lock:
            if time.monotonic() - self._checked_at > self._ttl_s:
                self._problems = source_privilege_problems(self._database.source_dsn)
                if self._database.source_url is None and self._problems:
                    self._problems.append("set ETL_SOURCE_URL to a least-privilege login (etl-console db provision-source-role)")
                self._checked_at = time.monotonic()
            return list(self._problems)


def login_url(url: str, login: str, password: str) -> str:
    """The same server and database, as `login`."""
    return make_url(url).set(username=login, password=password).render_as_string(hide_password=False)


def local_password(data_dir: str, name: str = "source_login_password") -> str:
    """A generated password kept under ETL_DATA_DIR; every process reads the one that won the race."""
    from ..local_secrets import local_secret

    return local_secret(data_dir, name)


def _current_database(cur) -> sql.Identifier:
    cur.execute("SELECT current_database()")
    return sql.Identifier(cur.fetchone()[0])


def _exists(cur, query: str, value: str) -> bool:
    cur.execute(query, (value,))
    return cur.fetchone()[0] is not None
