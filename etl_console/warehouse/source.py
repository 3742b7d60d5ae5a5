"""The user's source query, opened the only way we run it: READ ONLY, with a statement timeout."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from .load import LoadError


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type_name: str  # as format_type() prints it, e.g. "timestamp with time zone"


def open_read_only(connection, statement_timeout_s: float, role: str | None = None):
    """Start the source transaction on an autocommit connection; return its cursor.

    With a role (ETL_SOURCE_ROLE) the user's SQL runs with that role's privileges only."""
    connection.autocommit = True
    cursor = connection.cursor()
    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    cursor.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(statement_timeout_s * 1000)}ms",))
    if role:
        try:
            cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        except psycopg2.Error as error:
            raise LoadError(f"cannot switch to ETL_SOURCE_ROLE '{role}': {_first_line(error)}") from None
    return cursor


def describe(cursor, query: str) -> list[SourceColumn]:
    """Columns of the query. Runs it with LIMIT 0, which also takes the transaction's snapshot, so a
    later set_config('transaction_read_only', 'off') inside the query is refused by the server."""
    try:
        cursor.execute(f"SELECT * FROM (\n{query}\n) AS etl_source LIMIT 0")
        columns = [(column.name, column.type_code) for column in cursor.description]
        cursor.execute("SELECT oid, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)", ([c[1] for c in columns],))
        type_names = dict(cursor.fetchall())
    except psycopg2.Error as error:
        raise source_error(error) from None
    return [SourceColumn(name, type_names.get(oid, "text")) for name, oid in columns]


def source_error(error: BaseException) -> LoadError:
    if isinstance(error, pg_errors.QueryCanceled):
        return LoadError(f"source query cancelled: {_first_line(error)} (ETL_STATEMENT_TIMEOUT_S)")
    if isinstance(error, pg_errors.InsufficientPrivilege):
        return LoadError(
            f"source query is not allowed to read that: {_first_line(error)} (user SQL runs as a "
            "least-privilege login: grant it SELECT, or add the schema to ETL_SOURCE_SCHEMAS)"
        )
    if isinstance(error, pg_errors.ReadOnlySqlTransaction):
        return LoadError(f"source query tried to write, which is not allowed: {_first_line(error)}")
    if isinstance(error, psycopg2.Error):
        return LoadError(f"source query failed: {_first_line(error)}")
    return LoadError(f"source query failed: {error}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
