"""Incremental load: rows whose key is at or beyond the watermark, upserted on the target's primary key.

The data and the new watermark commit in one transaction of the target database (which must also
hold the metadata tables), so a crash at any step leaves both as they were, and a re-run converges
on what one clean run gives. Reading `key >= watermark` (not `>`) re-reads the boundary rows, which
the upsert makes harmless, and so never misses rows that share the watermark's value.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from psycopg2 import sql

from .. import failpoints
from .copy_pipe import SourceFailed, copy_pipe
from .full_load import Load, LoadHooks, LoadResult, report
from .gates import GateFailed, gate_incremental_batch
from .publish import wait_for_lock
from .source import describe, open_read_only, source_error
from .target import LoadError, check_columns, primary_key_columns, table_identifier, target_columns


@dataclass(frozen=True)
class IncrementalLoad(Load):
    incremental_key: str
    pipeline_id: uuid.UUID
    run_id: uuid.UUID

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

        cursor.execute(
            sql.SQL("CREATE TEMP TABLE etl_incoming ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                sql.SQL(", ").join(map(sql.Identifier, loaded)), table_identifier(self.target_table)
            )
        )
        if not key_in_target:
            cursor.execute(
                sql.SQL("ALTER TABLE etl_incoming ADD COLUMN {} " + key.type_name).format(sql.Identifier(key.name))
            )
        # Composed, not mogrified: the query and the key may contain '%', which a template would misread.
        since = sql.SQL("")
        if old_watermark is not None:
            since = sql.SQL(" WHERE {} >= {}::{}").format(
                sql.Identifier(self.incremental_key), sql.Literal(old_watermark), sql.SQL(key.type_name)
            )
        copy_out = sql.SQL("COPY (SELECT * FROM (\n{}\n) AS etl_source{}) TO STDOUT").format(
            sql.SQL(self.query), since
        ).as_string(source_cursor)
        copy_in = sql.SQL("COPY etl_incoming ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, names))
        ).as_string(target)
        copy_started = time.monotonic()
        try:
            rows_read = copy_pipe(
                source_cursor, copy_out, cursor, copy_in, self.batch_size,
                on_boundary=lambda boundary: hooks.on_batch(boundary, 0),
                cancel_source=source.cancel,
            )
        except SourceFailed as failure:
            raise source_error(failure.error) from None
        source_cursor.execute("COMMIT")
        timings["copy_s"] = time.monotonic() - copy_started
        failpoints.hit("incremental.after_copy")
        try:
            gates = gate_incremental_batch(cursor, self.checks, rows_read, loaded, primary_key, self.incremental_key)
        except GateFailed as failed:
            report(hooks, {"gates": [result.as_dict() for result in failed.results]})
            raise
        report(hooks, {"gates": [result.as_dict() for result in gates]})

        upsert_started = time.monotonic()
        rows_written = self._upsert(cursor, loaded, primary_key)
        timings["upsert_s"] = time.monotonic() - upsert_started
        hooks.on_batch(rows_read, rows_written)
        failpoints.hit("incremental.after_upsert")

        cursor.execute(sql.SQL("SELECT max({})::text FROM etl_incoming").format(sql.Identifier(self.incremental_key)))
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

    def _upsert(self, cursor, names: list[str], primary_key: list[str]) -> int:
        """Insert new keys, update changed rows; identical rows are left alone (no dead tuples)."""
        others = [name for name in names if name not in primary_key]
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        keys = sql.SQL(", ").join(map(sql.Identifier, primary_key))
        statement = sql.SQL(
            "INSERT INTO {target} AS t ({columns}) "
            "SELECT DISTINCT ON ({keys}) {columns} FROM etl_incoming ORDER BY {keys}, {key} DESC "
            "ON CONFLICT ({keys}) DO "
        ).format(
            target=table_identifier(self.target_table), columns=columns, keys=keys,
            key=sql.Identifier(self.incremental_key),
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
