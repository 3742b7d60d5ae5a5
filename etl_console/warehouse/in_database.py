"""Fill a shadow inside PostgreSQL: `INSERT INTO <shadow> SELECT … FROM (<query>)`, no round trip.

Used when the source query reads the warehouse itself (the default, and the demo): the rows never
leave the server, which is about twice as fast as piping them out and back in through COPY.

The statement runs on the source connection, whose *session user* is the least-privilege login,
in a READ WRITE transaction (an INSERT needs one) with the statement timeout. That login is granted
INSERT on this one shadow for the statement's length and nothing else, so the user's SQL still
reaches nothing it could not read before, and can write only into its own load.

Progress: rows inserted by a statement in flight are invisible to every other session, but the
shadow's file grows. A watcher thread turns its size into an approximate row count (size / bytes per
row, from the target's statistics or, lacking them, from the width of the shadow's first rows as
the planner estimates it) every ETL_HEARTBEAT_S or so; the exact count comes at the end.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import psycopg2
from psycopg2 import sql

from .shadow import SHADOW_SCHEMA, Shadow
from .target import table_identifier

log = logging.getLogger(__name__)

PROGRESS_PERIOD_S = 0.5
FALLBACK_BYTES_PER_ROW = 100.0  # when neither the target nor the planner knows better


def whole_batches(approx: int, batch_size: int) -> int:
    """An estimate is shown in whole batches, as the COPY stream counts them: progress, and the count
    a pause reports, move batch by batch on either path."""
    return approx - approx % max(1, batch_size)


def same_database(source_cursor, shadow: Shadow) -> bool:
    """Whether the source session sees the (committed) shadow under its OID: then both sides are one
    database. regclass output reads the catalog cache (fresh, unlike the session's snapshot) and needs
    no privilege on the shadow's schema; a name with the run's id cannot be there by chance."""
    source_cursor.execute("SELECT %s::oid::regclass::text", (shadow.oid,))
    return source_cursor.fetchone()[0] == f"{SHADOW_SCHEMA}.{shadow.name}"


def select_as_copy_would(cursor, shadow: Shadow, described, query: str, where: sql.Composable = sql.SQL("")):
    """The user's query as the COPY stream would load it. COPY hands every value over as text and
    the target column's type parses it, so a text '2024-01-01' fills a date column; INSERT … SELECT
    would refuse that. A column whose type differs from the shadow's is therefore cast through text
    to the shadow's type (without its typmod: the insert's own assignment then rounds numerics and
    refuses over-long strings, as COPY does). Columns of the same type pass as they are."""
    cursor.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
        (shadow.oid,),
    )
    shadow_types = dict(cursor.fetchall())
    items, casts = [], []
    for column in described:
        value = sql.SQL("etl_source.{}").format(sql.Identifier(column.name))
        wanted = shadow_types.get(column.name)
        if wanted is not None and wanted != column.type_name:
            value = sql.SQL("{}::text::{}").format(value, sql.SQL(wanted))
            casts.append(Cast(column.name, column.type_name, wanted))
        items.append(value)
    select = sql.SQL("SELECT {} FROM (\n{}\n) AS etl_source{}").format(sql.SQL(", ").join(items), sql.SQL(query), where)
    return select, casts


@dataclass(frozen=True)
class Cast:
    column: str
    source_type: str
    target_type: str


def value_error(error: psycopg2.Error, casts: list[Cast]) -> str | None:
    """A value that does not fit its column (SQLSTATE class 22), named as COPY would name it."""
    if not (error.pgcode or "").startswith("22"):
        return None
    message = (error.diag.message_primary or str(error)).strip()
    suspects = [cast for cast in casts if f"type {cast.target_type}" in message] or casts
    if not suspects:
        return message
    named = ", ".join(f"{c.column} ({c.source_type} into {c.target_type})" for c in suspects)
    return f"{message}; column {named}"


def writable_relations(source_cursor, shadow: Shadow, limit: int = 3) -> list[str]:
    """Relations the source login could change besides the shadow. On the in-database path its SQL
    runs READ WRITE, so only a login that can write nothing else may take it."""
    source_cursor.execute(
        """
        SELECT c.oid::regclass::text FROM pg_class c
        WHERE c.oid <> %s AND c.relkind IN ('r', 'p', 'v', 'f', 'm', 'S')
          AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
          AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE, UPDATE')
                   ELSE has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') END
        ORDER BY 1 LIMIT %s
        """,
        (shadow.oid, limit),
    )
    return [name for (name,) in source_cursor.fetchall()]


def bytes_per_row(cursor, target_table: str) -> float:
    """Heap bytes per row of the target as its statistics know it; a fallback when they do not."""
    cursor.execute(
        "SELECT pg_relation_size(c.oid)::float8 / NULLIF(c.reltuples, 0) FROM pg_class c WHERE c.oid = %s::regclass",
        (table_identifier(target_table).as_string(cursor),),
    )
    row = cursor.fetchone()
    value = row[0] if row else None
    return float(value) if value and value > 0 else FALLBACK_BYTES_PER_ROW


class ShadowGrowthWatcher:
    """Reports approximate progress from the shadow's size while the INSERT runs."""

    def __init__(self, dsn: str, shadow: Shadow, row_bytes: float, on_progress: Callable[[int], None]) -> None:
        self._dsn, self._shadow, self._row_bytes, self._on_progress = dsn, shadow, row_bytes, on_progress
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="etl-shadow-growth", daemon=True)

    def __enter__(self) -> "ShadowGrowthWatcher":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._done.set()
        self._thread.join(5)

    def _watch(self) -> None:
        try:
            connection = psycopg2.connect(self._dsn, application_name="etl-console progress")
        except psycopg2.Error:
            log.debug("no progress for %s: cannot connect", self._shadow.name, exc_info=True)
            return
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                while not self._done.wait(PROGRESS_PERIOD_S):
                    cursor.execute("SELECT pg_relation_size(%s)", (self._shadow.oid,))
                    size = cursor.fetchone()[0] or 0
                    self._on_progress(int(size / self._row_bytes))
        except psycopg2.Error:
            log.debug("progress watcher of %s stopped", self._shadow.name, exc_info=True)
        finally:
            connection.close()


def fill_shadow(
    source,
    target,
    shadow: Shadow,
    source_user: str,
    select: sql.Composable,
    columns: list[str],
    statement_timeout_s: float,
    source_role: str | None,
    on_progress: Callable[[int], None],
    target_dsn: str,
    target_table: str,
) -> int:
    """Run `select` (the user's query, maybe filtered) into the shadow inside PostgreSQL; return the
    exact row count. `target` is a connection of the warehouse's service login that may commit."""
    cursor = target.cursor()
    role = sql.Identifier(source_user)
    # Concurrent GRANTs on one schema fail with "tuple concurrently updated": grant once, under a lock.
    cursor.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')", (source_user, SHADOW_SCHEMA))
    if not cursor.fetchone()[0]:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('etl_console shadow schema grant'))")
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SHADOW_SCHEMA), role))
    cursor.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(shadow.identifier, role))
    row_bytes = bytes_per_row(cursor, target_table)
    target.commit()
    try:
        source.autocommit = True
        source_cursor = source.cursor()
        source_cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ WRITE")
        source_cursor.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(statement_timeout_s * 1000)}ms",))
        # If the runner dies mid-statement, the server notices within a second and stops, instead of
        # computing on to the statement timeout for nobody (PostgreSQL 14+; older servers ignore it).
        source_cursor.execute("SELECT set_config('client_connection_check_interval', '1s', true) "
                              "WHERE current_setting('server_version_num')::int >= 140000")
        if source_role:
            source_cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(source_role)))
        statement = sql.SQL("INSERT INTO {} ({}) {}").format(
            shadow.identifier, sql.SQL(", ").join(map(sql.Identifier, columns)), select
        )
        with ShadowGrowthWatcher(target_dsn, shadow, row_bytes, on_progress):
            source_cursor.execute(statement)
        rows = source_cursor.rowcount
        source_cursor.execute("COMMIT")
        return rows
    finally:
        try:
            cursor.execute(sql.SQL("REVOKE INSERT ON {} FROM {}").format(shadow.identifier, role))
            target.commit()
        except psycopg2.Error:
            target.rollback()  # the shadow is dropped on the way out anyway
