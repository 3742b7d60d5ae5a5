"""Atomic full reload of a target table from a user's source query.

One target transaction: lock the target, set its indexes aside, TRUNCATE, COPY-pipe the source in,
rebuild the indexes, commit. Readers see the old rows until the commit and the new rows after it,
never an empty or partial table; a failure, a pause or a killed process rolls everything back,
indexes included. Views, grants, triggers and constraints stay because the table itself stays.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from .. import failpoints
from .copy_pipe import SourceFailed, copy_pipe
from .source import describe, open_read_only, source_error
from .target import (
    check_columns,
    drop_indexes,
    droppable_indexes,
    restore_indexes,
    table_identifier,
    target_columns,
)


class LoadCancelled(Exception):
    """Raised by a hook at a batch boundary to stop the load; the message is the run's error."""


class LoadHooks(Protocol):
    def bind_interrupt(self, interrupt: Callable[[], None]) -> None:
        """Receives a callable that cancels the source query from another thread, for a cancel
        that cannot wait for the next batch boundary (a source that produces no rows for long)."""

    def on_batch(self, rows_read: int, rows_written: int) -> None:
        """Called at every batch boundary; may raise LoadCancelled."""

    def commit(self, commit_target: Callable[[], None], timings: dict[str, float]) -> None:
        """Commit the target through commit_target, or raise to veto (lost lease, late pause).

        The hook holds whatever fence it needs (the run's row lock) around the call."""


@dataclass
class LoadResult:
    rows_read: int
    rows_written: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    """What every load shares: a read-only source connection and a target transaction."""

    source_dsn: str
    target_dsn: str
    query: str
    target_table: str
    batch_size: int
    statement_timeout_s: float
    lock_timeout_s: float = field(default=60.0, kw_only=True)
    source_role: str | None = field(default=None, kw_only=True)

    def run(self, hooks: LoadHooks) -> LoadResult:
        source = psycopg2.connect(self.source_dsn, application_name="etl-console source")
        target = psycopg2.connect(self.target_dsn, application_name="etl-console load")
        hooks.bind_interrupt(source.cancel)
        try:
            return self._run(source, target, hooks)
        finally:
            target.close()  # closing without commit rolls the load back
            source.close()

    def _run(self, source, target, hooks: LoadHooks) -> LoadResult:
        raise NotImplementedError

    def _target_cursor(self, target):
        cursor = target.cursor()
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(self.lock_timeout_s * 1000)}ms",))
        return cursor


@dataclass(frozen=True)
class FullLoad(Load):
    def _run(self, source, target, hooks: LoadHooks) -> LoadResult:
        timings: dict[str, float] = {}
        started = time.monotonic()
        source_cursor = open_read_only(source, self.statement_timeout_s, self.source_role)
        source_columns = [column.name for column in describe(source_cursor, self.query)]

        cursor = self._target_cursor(target)
        check_columns(self.target_table, source_columns, target_columns(cursor, self.target_table))
        table = table_identifier(self.target_table)
        cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        indexes = droppable_indexes(cursor, self.target_table)
        drop_indexes(cursor, self.target_table, indexes)
        self._empty_target(cursor, table)
        timings["prepare_s"] = time.monotonic() - started

        copy_started = time.monotonic()
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in source_columns)
        copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns).as_string(target)
        copy_out = f"COPY (\n{self.query}\n) TO STDOUT"
        try:
            rows = copy_pipe(
                source_cursor,
                copy_out,
                cursor,
                copy_in,
                self.batch_size,
                on_boundary=lambda boundary: hooks.on_batch(boundary, boundary),
                cancel_source=source.cancel,
            )
        except SourceFailed as failure:
            raise source_error(failure.error) from None
        timings["copy_s"] = time.monotonic() - copy_started
        hooks.on_batch(rows, rows)

        index_started = time.monotonic()
        restore_indexes(cursor, self.target_table, indexes)
        timings["index_s"] = time.monotonic() - index_started
        failpoints.hit("full.before_commit")
        source_cursor.execute("COMMIT")
        timings["total_s"] = time.monotonic() - started
        hooks.commit(target.commit, timings)
        return LoadResult(rows, rows, timings)

    @staticmethod
    def _empty_target(cursor, table: sql.Composable) -> None:
        cursor.execute("SAVEPOINT etl_truncate")
        try:
            cursor.execute(sql.SQL("TRUNCATE {}").format(table))
        except pg_errors.FeatureNotSupported:
            # Referenced by a foreign key elsewhere: DELETE keeps that key checked.
            cursor.execute("ROLLBACK TO SAVEPOINT etl_truncate")
            cursor.execute(sql.SQL("DELETE FROM {}").format(table))
