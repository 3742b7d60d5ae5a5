"""Reconciliation across two databases: a merge of two ordered key streams.

When the source query reads another server, no single statement sees both sides, so each side is
read as a stream of keys in one agreed order and the two streams are merged here, holding one batch
of each at a time: memory stays flat whatever the row count.

The order must be the same on both servers and in Python. Each key column is compared as text,
rendered by the target column's type (the source's value is cast to it first) with the "C"
collation: byte order of UTF-8, which is code point order, which is how Python compares str. Both
sessions use UTC and ISO dates, so timestamps render alike on both sides.
"""
from __future__ import annotations

from typing import Iterator

import psycopg2
from psycopg2 import sql

from .reconcile import SAMPLE_SIZE, Reconciliation
from .source import source_error
from .load import LoadError
from .target import primary_key_columns, table_identifier

FETCH_ROWS = 10_000


def reconcile_streams(
    source_dsn: str,
    target_dsn: str,
    query: str,
    target_table: str,
    statement_timeout_s: float,
    source_role: str | None = None,
) -> Reconciliation:
    """Compare the source query's keys (on source_dsn) with the target's (on target_dsn), read-only."""
    target = psycopg2.connect(target_dsn, application_name="etl-console reconcile target")
    source = psycopg2.connect(source_dsn, application_name="etl-console reconcile source")
    try:
        target_cursor = _open_read_only(target, statement_timeout_s)
        key = primary_key_columns(target_cursor, target_table)
        if not key:
            raise LoadError(f"target {target_table} has no primary key to reconcile on")
        types = _column_types(target_cursor, target_table, key)

        _open_read_only(source, statement_timeout_s, source_role)
        source_keys = sql.SQL(", ").join(
            sql.SQL('CAST(CAST({} AS {}) AS text) COLLATE "C"').format(sql.Identifier(name), sql.SQL(types[name]))
            for name in key
        )
        target_keys = sql.SQL(", ").join(
            sql.SQL('CAST({} AS text) COLLATE "C"').format(sql.Identifier(name)) for name in key
        )
        order = sql.SQL(", ").join(sql.SQL(str(position)) for position in range(1, len(key) + 1))
        source_statement = sql.SQL("SELECT {keys} FROM (\n{query}\n) AS etl_source ORDER BY {order}").format(
            keys=source_keys, query=sql.SQL(query), order=order)
        target_statement = sql.SQL("SELECT {keys} FROM {target} ORDER BY {order}").format(
            keys=target_keys, target=table_identifier(target_table), order=order)
        try:
            source_stream = _stream(source, source_statement, "etl_reconcile_source")
            result = _merge(source_stream, _stream(target, target_statement, "etl_reconcile_target"), key)
        except psycopg2.Error as error:
            raise source_error(error) from None
        return result
    finally:
        source.close()
        target.close()


def _open_read_only(connection, statement_timeout_s: float, role: str | None = None):
    """A READ ONLY snapshot transaction, as source.open_read_only opens one, but driver-managed:
    the key streams are server-side (named) cursors, which psycopg2 only opens inside its own
    transactions. Both sides render values alike (see the module's docstring)."""
    connection.set_session(isolation_level="REPEATABLE READ", readonly=True, autocommit=False)
    cursor = connection.cursor()
    cursor.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(statement_timeout_s * 1000)}ms",))
    if role:
        try:
            cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        except psycopg2.Error as error:
            raise LoadError(f"cannot switch to ETL_SOURCE_ROLE '{role}': {str(error).strip().splitlines()[0]}") from None
    cursor.execute("SET LOCAL TimeZone = 'UTC'")
    cursor.execute("SET LOCAL DateStyle = 'ISO, YMD'")
    cursor.execute("SET LOCAL IntervalStyle = 'postgres'")
    cursor.execute("SET LOCAL extra_float_digits = 1")
    return cursor


def _column_types(cursor, target_table: str, columns: list[str]) -> dict[str, str]:
    cursor.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attname = ANY(%s)",
        (str(table_identifier(target_table).as_string(cursor)), columns),
    )
    return dict(cursor.fetchall())


def _stream(connection, statement: sql.Composable, name: str) -> Iterator[tuple]:
    """The statement's rows through a server-side cursor, FETCH_ROWS at a time."""
    cursor = connection.cursor(name=name)
    cursor.itersize = FETCH_ROWS
    cursor.execute(statement)
    try:
        yield from cursor
    finally:
        cursor.close()


def _merge(source: Iterator[tuple], target: Iterator[tuple], key: list[str]) -> Reconciliation:
    """Walk both ordered streams once. Keys repeated on one side count once, as EXCEPT does."""
    source_rows = target_rows = missing = extra = 0
    missing_sample: list[dict] = []
    extra_sample: list[dict] = []

    def note(sample: list[dict], row: tuple) -> None:
        if len(sample) < SAMPLE_SIZE:
            sample.append(dict(zip(key, row)))

    done = object()
    s = next(source, done)
    t = next(target, done)
    last_s = last_t = None
    while s is not done or t is not done:
        if s is not done and any(value is None for value in s):  # a NULL key can never be in the target
            source_rows += 1
            if s != last_s:
                missing += 1
                note(missing_sample, s)
            last_s, s = s, next(source, done)
            continue
        if t is done or (s is not done and s < t):
            source_rows += 1
            if s != last_s:
                missing += 1
                note(missing_sample, s)
            last_s, s = s, next(source, done)
        elif s is done or t < s:
            target_rows += 1
            if t != last_t:
                extra += 1
                note(extra_sample, t)
            last_t, t = t, next(target, done)
        else:  # equal: present on both sides; consume every repeat of it on each side
            current = s
            while s is not done and s == current:
                source_rows += 1
                last_s, s = s, next(source, done)
            while t is not done and t == current:
                target_rows += 1
                last_t, t = t, next(target, done)
    return Reconciliation.of(key, source_rows, target_rows, missing, extra, missing_sample, extra_sample)
