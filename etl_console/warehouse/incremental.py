"""Incremental load: rows whose key is at or beyond the watermark, upserted on the target's primary key.

The data and the new watermark commit in one transaction of the target database (which must also
hold the metadata tables), so a crash at any step leaves both as they were, and a re-run converges
on what one clean run gives. Reading `key >= watermark` (not `>`) re-reads the boundary rows, which
the upsert makes harmless, and so never misses rows that share the watermark's value.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql

from .. import failpoints
from .copy_pipe import SourceFailed, copy_pipe
from .gates import GateFailed, gate_incremental_batch
from .in_database import (fill_shadow, same_database, select_as_copy_would, value_error, whole_batches,
                          writable_relations)
from .publish import wait_for_lock
from .shadow import Shadow, create_shadow, drop_shadow
from .source import describe, open_read_only, source_error
from .load import Load, LoadError, LoadHooks, LoadResult, report
from .target import check_columns, primary_key_columns, table_identifier, target_columns

log = logging.getLogger(__name__)


class _Staging:
    """The in-database path's staging shadow, on a connection of its own that holds its lock."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.shadow: Shadow | None = None
        self.rows = 0

    def discard(self) -> None:
        try:
            self.connection.rollback()
            if self.shadow is not None:
                cursor = self.connection.cursor()
                cursor.execute("SET lock_timeout = '10s'")  # never hang a run on its own clean-up
                drop_shadow(cursor, self.shadow)
                self.connection.commit()
        except psycopg2.Error:  # the connection is gone: its lock went with it, the next load sweeps it
            log.warning("could not drop staging table %s; the next load will", self.shadow and self.shadow.name)
        finally:
            self.connection.close()


@dataclass(frozen=True)
class IncrementalLoad(Load):
    incremental_key: str
    pipeline_id: uuid.UUID
    run_id: uuid.UUID
    load_path: str = field(default="auto", kw_only=True)  # "auto" (in-database when one database) | "copy"

    def _run(self, source, target, hooks: LoadHooks) -> LoadResult:
        started = time.monotonic()
        timings: dict[str, float] = {}
        source_cursor = open_read_only(source, self.statement_timeout_s, self.source_role)
        columns = describe(source_cursor, self.query)
        names = [column.name for column in columns]
        key = next((column for column in columns if column.name == self.incremental_key), None)
        if key is None:
            raise LoadError(
                f"incremental_key '{self.incremental_key}' is not a column of the source query "
                f"(columns: {', '.join(names)})"
            )

        self._lock_target(target, hooks)
        cursor = self._target_cursor(target)
        target_cols = target_columns(cursor, self.target_table)
        # The key may be a source-only column (e.g. `modified`): it filters and sets the watermark.
        key_in_target = any(column.name == key.name for column in target_cols)
        loaded = [name for name in names if name != key.name or key_in_target]
        check_columns(self.target_table, loaded, target_cols)
        primary_key = primary_key_columns(cursor, self.target_table)
        if not primary_key:
            raise LoadError(f"target {self.target_table} has no primary key; incremental mode upserts on it")
        missing_key = [column for column in primary_key if column not in loaded]
        if missing_key:
            raise LoadError(f"the source query must return the target's primary key columns: {', '.join(missing_key)}")
        old_watermark = self._lock_state(cursor)

        # Composed, not mogrified: the query and the key may contain '%', which a template would misread.
        since = sql.SQL("")
        if old_watermark is not None:
            since = sql.SQL(" WHERE {} >= {}::{}").format(
                sql.Identifier(self.incremental_key), sql.Literal(old_watermark), sql.SQL(key.type_name)
            )
        select = sql.SQL("SELECT * FROM (\n{}\n) AS etl_source{}").format(sql.SQL(self.query), since)
        copy_started = time.monotonic()
        staging = self._stage_in_database(source, source_cursor, hooks, columns, since, names, key, key_in_target)
        try:
            if staging is not None:
                rows_read, staging_table = staging.rows, staging.shadow.identifier
            else:
                rows_read = self._stage_by_copy(source, source_cursor, target, cursor, hooks, select, names, loaded,
                                                key, key_in_target)
                staging_table = sql.Identifier("etl_incoming")
            return self._merge(target, cursor, hooks, staging_table, rows_read, loaded, primary_key, old_watermark,
                               timings, started, copy_started)
        finally:
            if staging is not None:
                target.rollback()  # after a failure the merge's transaction still reads the staging table
                staging.discard()

    def _stage_in_database(self, source, source_cursor, hooks, described, since, names, key,
                           key_in_target) -> "_Staging | None":
        """The changed rows into a staging shadow by INSERT … SELECT inside PostgreSQL, when the source
        is the warehouse itself; None (and the path reported) when the COPY stream must do it."""
        if self.load_path != "auto":
            report(hooks, {"path": {"name": "copy", "why": "ETL_LOAD_PATH=copy forces the COPY stream"}}, persist=True)
            return None
        source_cursor.execute("SELECT current_user")
        source_user = source_cursor.fetchone()[0]
        # Its own connection: the staging table must be committed for the source login to see it, while
        # this load's transaction keeps the watermark row and the target locked.
        staging = _Staging(psycopg2.connect(self.target_dsn, application_name="etl-console staging"))
        try:
            cursor = staging.connection.cursor()
            staging.shadow = create_shadow(cursor, self.target_table, self.run_id)
            if not key_in_target:
                cursor.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} " + key.type_name).format(
                    staging.shadow.identifier, sql.Identifier(key.name)))
            staging.connection.commit()
            why = None
            if not same_database(source_cursor, staging.shadow):
                why = "the source is another database: COPY out of it into a temporary table"
            elif writable := writable_relations(source_cursor, staging.shadow):
                why = f"the source login may write to {', '.join(writable)}, so its SQL runs only in READ ONLY transactions"
            if why:
                report(hooks, {"path": {"name": "copy", "why": why}}, persist=True)
                staging.discard()
                return None
            report(hooks, {"path": {"name": "in-database", "why": "the source query reads the warehouse itself: "
                                    "INSERT … SELECT of the changed rows inside PostgreSQL, then the merge"},
                           "progress": "approximate while the statement runs (from the staging table's size), "
                                       "exact at the end"}, persist=True)
            select, casts = select_as_copy_would(cursor, staging.shadow, described, self.query, since)
            staging.connection.rollback()
            source_cursor.execute("ROLLBACK")  # the read-only describe transaction
            hooks.bind_interrupt(source.cancel, grace_s=0.0)  # no batch boundary will come
            on_progress = getattr(hooks, "on_progress", None)
            try:
                staging.rows = fill_shadow(
                    source, staging.connection, staging.shadow, source_user, select, names, self.statement_timeout_s,
                    self.source_role,
                    lambda approx: on_progress(whole_batches(approx, self.batch_size), 0) if on_progress else None,
                    self.target_dsn, self.target_table,
                )
            except psycopg2.Error as error:
                if misfit := value_error(error, casts):
                    raise LoadError(misfit) from None
                raise source_error(error) from None
            report(hooks, {"progress": "exact"}, persist=True)
            hooks.on_batch(staging.rows, 0)
            return staging
        except BaseException:
            staging.discard()
            raise

    def _stage_by_copy(self, source, source_cursor, target, cursor, hooks, select, names, loaded, key,
                       key_in_target) -> int:
        cursor.execute(
            sql.SQL("CREATE TEMP TABLE etl_incoming ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                sql.SQL(", ").join(map(sql.Identifier, loaded)), table_identifier(self.target_table)
            )
        )
        if not key_in_target:
            cursor.execute(
                sql.SQL("ALTER TABLE etl_incoming ADD COLUMN {} " + key.type_name).format(sql.Identifier(key.name))
            )
        copy_out = sql.SQL("COPY ({}) TO STDOUT").format(select).as_string(source_cursor)
        copy_in = sql.SQL("COPY etl_incoming ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, names))
        ).as_string(target)
        try:
            rows_read = copy_pipe(
                source_cursor, copy_out, cursor, copy_in, self.batch_size,
                on_boundary=lambda boundary: hooks.on_batch(boundary, 0),
                cancel_source=source.cancel,
            )
        except SourceFailed as failure:
            raise source_error(failure.error) from None
        source_cursor.execute("COMMIT")
        return rows_read

    def _merge(self, target, cursor, hooks, staging_table, rows_read, loaded, primary_key, old_watermark, timings,
               started, copy_started) -> LoadResult:
        timings["copy_s"] = time.monotonic() - copy_started
        failpoints.hit("incremental.after_copy")
        try:
            gates = gate_incremental_batch(cursor, self.checks, rows_read, loaded, primary_key, self.incremental_key,
                                           staging_table)
        except GateFailed as failed:
            report(hooks, {"gates": [result.as_dict() for result in failed.results]})
            raise
        report(hooks, {"gates": [result.as_dict() for result in gates]})

        upsert_started = time.monotonic()
        rows_written = self._upsert(cursor, loaded, primary_key, staging_table)
        timings["upsert_s"] = time.monotonic() - upsert_started
        hooks.on_batch(rows_read, rows_written)
        failpoints.hit("incremental.after_upsert")

        cursor.execute(sql.SQL("SELECT max({})::text FROM {}").format(sql.Identifier(self.incremental_key), staging_table))
        new_watermark = cursor.fetchone()[0]
        if new_watermark is not None and new_watermark != old_watermark:
            self._advance(cursor, old_watermark, new_watermark)
        failpoints.hit("incremental.before_commit")
        timings["total_s"] = time.monotonic() - started
        hooks.commit(target.commit, timings)
        return LoadResult(rows_read, rows_written, timings)

    def _lock_target(self, target, hooks: LoadHooks) -> None:
        """ROW EXCLUSIVE on the target for the whole merge (readers never wait for it). A session
        holding a stronger lock (an index build, another load's publish) is waited for in short
        attempts, visibly on the run, and for at most lock_timeout_s; a pause stops the wait."""
        lock = f"ROW EXCLUSIVE on {self.target_table}"

        def waiting(attempts: int, waited: float, holders: list[str]) -> None:
            report(hooks, {"lock_wait": {"lock": lock, "state": "waiting", "attempts": attempts,
                                         "waited_s": round(waited, 1), "holders": holders}}, persist=True)
            hooks.on_batch(0, 0)  # a pause while we wait stops the run here

        attempts, waited = wait_for_lock(target, self.target_table, "ROW EXCLUSIVE", 0.05, self.lock_timeout_s,
                                         waiting, purpose="merge")
        if attempts:
            report(hooks, {"lock_wait": {"lock": lock, "state": "acquired", "attempts": attempts,
                                         "waited_s": round(waited, 1)}}, persist=True)

    def _lock_state(self, cursor) -> str | None:
        """Lock this pipeline's watermark row for the whole load; a changed key starts from scratch."""
        cursor.execute(
            "INSERT INTO etl_state (pipeline_id, incremental_key) VALUES (%s, %s) ON CONFLICT (pipeline_id) DO NOTHING",
            (str(self.pipeline_id), self.incremental_key),
        )
        cursor.execute(
            "SELECT watermark, incremental_key FROM etl_state WHERE pipeline_id = %s FOR UPDATE",
            (str(self.pipeline_id),),
        )
        watermark, stored_key = cursor.fetchone()
        return watermark if stored_key in (None, self.incremental_key) else None

    def _upsert(self, cursor, names: list[str], primary_key: list[str], staging: sql.Composable) -> int:
        """Insert new keys, update changed rows; identical rows are left alone (no dead tuples)."""
        others = [name for name in names if name not in primary_key]
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        keys = sql.SQL(", ").join(map(sql.Identifier, primary_key))
        statement = sql.SQL(
            "INSERT INTO {target} AS t ({columns}) "
            "SELECT DISTINCT ON ({keys}) {columns} FROM {staging} ORDER BY {keys}, {key} DESC "
            "ON CONFLICT ({keys}) DO "
        ).format(
            target=table_identifier(self.target_table), columns=columns, keys=keys,
            key=sql.Identifier(self.incremental_key), staging=staging,
        )
        if others:
            assignments = sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in others
            )
            current = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(name)) for name in others)
            incoming = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(name)) for name in others)
            statement += sql.SQL("UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(assignments, current, incoming)
        else:
            statement += sql.SQL("NOTHING")
        cursor.execute(statement)
        return cursor.rowcount

    def _advance(self, cursor, old: str | None, new: str) -> None:
        cursor.execute(
            "UPDATE etl_state SET watermark = %s, incremental_key = %s, updated_at = now() WHERE pipeline_id = %s",
            (new, self.incremental_key, str(self.pipeline_id)),
        )
        cursor.execute(
            "INSERT INTO etl_state_changes (pipeline_id, old_watermark, new_watermark, changed_by, run_id) "
            "VALUES (%s, %s, %s, 'run', %s)",
            (str(self.pipeline_id), old, new, str(self.run_id)),
        )
