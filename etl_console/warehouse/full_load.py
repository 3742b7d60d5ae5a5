"""Full reload of a target table from a user's source query: build a shadow, gate it, publish it.

1. Build: in one target transaction, create the shadow (the target's columns, defaults, NOT NULL
   and CHECK constraints; no indexes), COPY-pipe the source into it, build the target's indexes on
   it (a duplicate key fails here), and commit. Readers and writers of the target are untouched.
2. Gates: the pipeline's quality gates run over the shadow (warehouse.gates).
3. Publish, inside the run's commit fence (hooks.commit): the rename exchange when nothing is bound
   to the target's OID, else the row exchange (warehouse.publish). Its lock is taken with a short
   lock_timeout and retried with backoff, so readers never queue behind a waiting publish.
A pause, a failure or a lost lease before the publish leaves the target as it was; the shadow is
dropped on the way out, or, if the process was killed, by the next load's sweep.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from .. import failpoints
from .copy_pipe import SourceFailed, copy_pipe
from .in_database import (fill_shadow, same_database, select_as_copy_would, value_error, whole_batches,
                          writable_relations)
from .gates import GateFailed, builtin_gates, run_assertions
from .publish import ROWS, RENAME, ExchangeRefused, PublishReport, exchange_by_rename, exchange_rows, oid_dependents, wait_for_lock
from .shadow import Shadow, build_indexes, create_shadow, drop_shadow, grant_read, revoke_read, sweep_orphans, target_indexes
from .source import describe, open_read_only, source_error
from .load import Load, LoadError, LoadHooks, LoadResult, report
from .target import check_columns, table_identifier, target_columns

log = logging.getLogger(__name__)

IN_DATABASE = "in-database"
COPY_STREAM = "copy"
# A PYTHON pipeline's tasks over Arrow batches (warehouse.columnar). That module is imported only when
# used: pyarrow adds ~65 MB of RSS that a runner of SQL pipelines never needs.
PYTHON_PATH = "python"


def _progress(hooks, written: bool):
    """The copy pipe's between-boundaries progress callback for these hooks (if they take it)."""
    on_progress = getattr(hooks, "on_progress", None)
    if on_progress is None:
        return None
    return (lambda read, copied: on_progress(read, copied)) if written else (lambda read, copied: on_progress(read, 0))


class SourceRowCounter:
    """How many rows the source's COPY has produced, from its backend's pg_stat_progress_copy.

    Asked only when the stream is quiet (copy_pipe.PROBE_AFTER_S); connects on first use as the
    source login, which may see its own backends' progress."""

    def __init__(self, source_dsn: str, source_pid: int) -> None:
        self._dsn, self._pid = source_dsn, source_pid
        self._connection = None

    def __call__(self) -> int | None:
        if self._connection is None:
            self._connection = psycopg2.connect(self._dsn, application_name="etl-console progress")
            self._connection.autocommit = True
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s", (self._pid,))
            row = cursor.fetchone()
        return row[0] if row else None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@dataclass(frozen=True)
class FullLoad(Load):
    run_id: uuid.UUID = field(default_factory=uuid.uuid4, kw_only=True)  # names the shadow
    publish_lock_timeout_s: float = field(default=0.05, kw_only=True)  # the most a reader queues behind us
    publish_give_up_s: float = field(default=600.0, kw_only=True)
    load_path: str = field(default="auto", kw_only=True)  # "auto" (in-database when one database) | "copy"
    assertion_dsn: str | None = field(default=None, kw_only=True)  # the warehouse's source login, for assertions
    # A PYTHON pipeline's tasks ({"kind", "config"} in order; maybe none); None: a SQL pipeline.
    tasks: tuple | None = field(default=None, kw_only=True)

    def _run(self, source, target, hooks: LoadHooks) -> LoadResult:
        timings: dict[str, float] = {}
        started = time.monotonic()
        try:
            sweep_orphans(target)
        except psycopg2.Error:  # cleaning up after someone else must not fail this load
            target.rollback()
            log.warning("sweeping orphan shadows failed", exc_info=True)
        source_cursor = open_read_only(source, self.statement_timeout_s, self.source_role)
        described = describe(source_cursor, self.query)
        source_columns = [column.name for column in described]
        chain = None
        if self.tasks is not None:  # the target receives what the last task returns
            from .columnar import TaskChain

            chain = TaskChain.build(list(self.tasks))
            source_columns = chain.prepare(source_columns)
        source_cursor.execute("SELECT current_user")
        source_user = source_cursor.fetchone()[0]

        cursor = self._target_cursor(target)
        columns = target_columns(cursor, self.target_table)
        check_columns(self.target_table, source_columns, columns)
        dependents = oid_dependents(cursor, self.target_table)
        shadow = create_shadow(cursor, self.target_table, self.run_id)
        try:
            return self._build_gate_publish(source, source_cursor, target, cursor, hooks, shadow, source_columns,
                                            [c.name for c in columns], source_user, dependents, timings, started,
                                            python=(chain, described) if chain else None)
        finally:
            self._discard(target, shadow)

    def _build_gate_publish(self, source, source_cursor, target, cursor, hooks, shadow: Shadow, source_columns,
                            target_column_names, source_user, dependents, timings, started,
                            python=None) -> LoadResult:
        method = ROWS if dependents else RENAME
        indexes = target_indexes(cursor, self.target_table, shadow)
        if method == ROWS:
            # The row exchange writes into the target's own indexes; on the shadow only unique ones
            # are worth building, to refuse duplicate keys before the publish.
            indexes = [index for index in indexes if index.unique]
        timings["prepare_s"] = time.monotonic() - started

        copy_started = time.monotonic()
        path = self._choose_path(source_cursor, target, shadow)
        report(hooks, {"path": path}, persist=True)
        if path["name"] == IN_DATABASE:
            rows = self._fill_in_database(source, target, hooks, shadow, source_columns, source_user)
            cursor = target.cursor()
        elif path["name"] == PYTHON_PATH:
            from .columnar import fill_shadow_by_python

            rows_read, rows = fill_shadow_by_python(self, source, source_cursor, cursor, hooks, shadow, python[1],
                                                    python[0], _progress(hooks, written=True))
        else:
            rows = self._fill_by_copy(source, source_cursor, target, cursor, hooks, shadow, source_columns)
        if path["name"] != PYTHON_PATH:
            rows_read = rows  # only tasks can drop or add rows
        timings["copy_s"] = time.monotonic() - copy_started
        hooks.on_batch(rows_read, rows)

        index_started = time.monotonic()
        self._build_indexes(cursor, indexes)
        timings["index_s"] = time.monotonic() - index_started
        target.commit()  # the shadow is built; the target has not been touched
        failpoints.hit("full.before_publish")
        hooks.on_batch(rows_read, rows)

        gates_started = time.monotonic()
        self._gate(source, target, shadow, rows, target_column_names, source_user, hooks)
        timings["gates_s"] = time.monotonic() - gates_started
        hooks.on_batch(rows_read, rows)

        self._publish(target, hooks, shadow, indexes, source_columns, method, dependents, rows, timings,
                      started)
        # After the run is recorded: the index builds already set the row count the planner uses,
        # and column statistics follow within a fraction of a second, off the run's critical path.
        self._analyze(target)
        return LoadResult(rows_read, rows, timings)

    def _choose_path(self, source_cursor, target, shadow: Shadow) -> dict:
        """In-database when the source session can see the shadow (one database), unless forced."""
        if self.tasks is not None:
            return {"name": PYTHON_PATH, "why": f"a PYTHON pipeline with {len(self.tasks)} task(s): each batch "
                    "goes through them in the runner as Arrow record batches, so rows leave PostgreSQL"}
        if self.load_path == COPY_STREAM:
            return {"name": COPY_STREAM, "why": "ETL_LOAD_PATH=copy forces the COPY stream"}
        target.commit()  # the (empty) shadow becomes visible to other sessions; the target is untouched
        if same_database(source_cursor, shadow):
            if writable := writable_relations(source_cursor, shadow):
                return {"name": COPY_STREAM, "why": "the source login may write to "
                        f"{', '.join(writable)}, so its SQL runs only in READ ONLY transactions"}
            return {"name": IN_DATABASE, "why": "the source query reads the warehouse itself: "
                    "INSERT … SELECT inside PostgreSQL, no rows through the runner"}
        return {"name": COPY_STREAM, "why": "the source is another database: COPY out of it, COPY into the shadow"}

    def _fill_in_database(self, source, target, hooks, shadow: Shadow, source_columns, source_user) -> int:
        select, casts = select_as_copy_would(target.cursor(), shadow, describe(source.cursor(), self.query), self.query)
        target.rollback()
        source.cursor().execute("ROLLBACK")  # the read-only describe transaction
        hooks.bind_interrupt(source.cancel, grace_s=0.0)  # no batch boundary will come: a pause cancels at once
        on_progress = getattr(hooks, "on_progress", None)
        report(hooks, {"progress": "approximate while the statement runs (from the shadow's size), exact at the end"},
               persist=True)
        try:
            rows = fill_shadow(
                source, target, shadow, source_user, select, source_columns, self.statement_timeout_s,
                self.source_role, lambda approx: on_progress(*[whole_batches(approx, self.batch_size)] * 2)
                if on_progress else None,
                self.target_dsn, self.target_table,
            )
        except psycopg2.Error as error:
            target.rollback()
            if misfit := value_error(error, casts):
                raise LoadError(misfit) from None
            raise source_error(error) from None
        report(hooks, {"progress": "exact"}, persist=True)
        return rows

    def _fill_by_copy(self, source, source_cursor, target, cursor, hooks, shadow: Shadow, source_columns) -> int:
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in source_columns)
        copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(shadow.identifier, columns).as_string(target)
        copy_out = f"COPY (\n{self.query}\n) TO STDOUT"
        source_rows = SourceRowCounter(self.source_dsn, source.get_backend_pid())
        try:
            rows = copy_pipe(
                source_cursor,
                copy_out,
                cursor,
                copy_in,
                self.batch_size,
                on_boundary=lambda boundary: hooks.on_batch(boundary, boundary),
                cancel_source=source.cancel,
                on_progress=_progress(hooks, written=True),
                source_rows=source_rows,
            )
        except SourceFailed as failure:
            raise source_error(failure.error) from None
        finally:
            source_rows.close()
        source_cursor.execute("COMMIT")
        return rows

    def _build_indexes(self, cursor, indexes) -> None:
        try:
            build_indexes(cursor, indexes)
        except pg_errors.UniqueViolation as error:
            index = next((i for i in indexes if i.shadow_name in str(error)), None)
            name = index.target_name if index else "a unique index"
            detail = error.diag.message_detail or ""
            raise LoadError(
                f"the source query returns duplicate keys for the target ({name} of {self.target_table}): {detail}"
            ) from None

    def _gate(self, source, target, shadow: Shadow, rows: int, target_column_names, source_user, hooks) -> None:
        checks = self.checks or {}
        cursor = target.cursor()

        def current_rows() -> int:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(table_identifier(self.target_table)))
            return cursor.fetchone()[0]

        results = builtin_gates(cursor, shadow.identifier, rows, checks, target_column_names, current_rows)
        target.commit()
        assertions = checks.get("assertions") or []
        if assertions:
            results += self._run_assertions(source, target, shadow, source_user, assertions)
        report(hooks, {"gates": [result.as_dict() for result in results]})
        if any(not result.passed for result in results):
            raise GateFailed(results)

    def _run_assertions(self, source, target, shadow: Shadow, source_user: str, assertions) -> list:
        """User SQL runs as the source login, which may read the shadow only while it runs. When the
        source is another database, that is the warehouse's own source login (assertion_dsn)."""
        if self.assertion_dsn and self.assertion_dsn != self.source_dsn:
            warehouse_source = psycopg2.connect(self.assertion_dsn, application_name="etl-console assertions")
            warehouse_source.autocommit = True
            try:
                with warehouse_source.cursor() as probe:
                    probe.execute("SELECT current_user")
                    user = probe.fetchone()[0]
                return self._assertions_as(warehouse_source, target, shadow, user, assertions, role=None)
            finally:
                warehouse_source.close()
        return self._assertions_as(source, target, shadow, source_user, assertions, role=self.source_role)

    def _assertions_as(self, source, target, shadow: Shadow, source_user: str, assertions, role) -> list:
        cursor = target.cursor()
        granted = grant_read(cursor, shadow, source_user)
        target.commit()
        try:
            source_cursor = open_read_only(source, self.statement_timeout_s, role)
            try:
                return run_assertions(source_cursor, shadow.identifier, assertions)
            finally:
                source_cursor.execute("ROLLBACK")
        finally:
            if granted:
                revoke_read(cursor, shadow, source_user)
                target.commit()

    def _publish(self, target, hooks, shadow: Shadow, indexes, source_columns, method, dependents, rows, timings,
                 started) -> PublishReport:
        publish = PublishReport(method, list(dependents))

        def waiting(attempt: int, waited: float, holders: list[str]) -> None:
            publish.attempts, publish.waited_s = attempt, waited
            report(hooks, {"publish": {**publish.as_dict(), "state": "waiting", "holders": holders}}, persist=True)
            hooks.on_batch(rows, rows)  # a pause while we wait stops the run here

        while True:
            mode = "ACCESS EXCLUSIVE" if publish.method == RENAME else "EXCLUSIVE"
            attempts, waited = wait_for_lock(target, self.target_table, mode, self.publish_lock_timeout_s,
                                             self.publish_give_up_s, waiting)
            publish.attempts += attempts
            publish.waited_s += waited
            locked_at = time.monotonic()
            cursor = target.cursor()
            if publish.method == RENAME:
                late = oid_dependents(cursor, self.target_table)  # created while we were building?
                try:
                    if late:
                        raise ExchangeRefused(f"now bound to the target: {', '.join(late)}")
                    exchange_by_rename(cursor, shadow, indexes, self.target_table)
                except (ExchangeRefused, psycopg2.Error) as refused:
                    target.rollback()
                    log.warning("rename exchange of %s refused, exchanging rows: %s", self.target_table, refused)
                    publish.method = ROWS
                    publish.reasons = late or [f"rename exchange refused: {str(refused).strip().splitlines()[0]}"]
                    continue
            else:
                publish.rows = exchange_rows(cursor, shadow, self.target_table, source_columns)
                # Gone in the same commit: no shadow outlives the run that published it (its
                # advisory lock is released by _discard afterwards).
                cursor.execute(sql.SQL("DROP TABLE {}").format(shadow.identifier))
            failpoints.hit("full.before_commit")
            timings["publish_wait_s"] = publish.waited_s
            timings["total_s"] = time.monotonic() - started
            details = {"publish": {**publish.as_dict(), "state": "published"}}

            def commit_and_measure() -> None:
                target.commit()
                publish.locked_s = time.monotonic() - locked_at
                details["publish"]["locked_ms"] = round(publish.locked_s * 1000, 2)  # recorded after this

            hooks.commit(commit_and_measure, timings, details)
            return publish

    def _analyze(self, target) -> None:
        try:
            target.cursor().execute(sql.SQL("ANALYZE {}").format(table_identifier(self.target_table)))
            target.commit()
        except psycopg2.Error:
            target.rollback()
            log.warning("ANALYZE of %s after the publish failed", self.target_table, exc_info=True)

    @staticmethod
    def _discard(target, shadow: Shadow) -> None:
        """Drop the shadow unless it was published (then the name is gone and this does nothing)."""
        try:
            target.rollback()
            drop_shadow(target.cursor(), shadow)
            target.commit()
        except psycopg2.Error:  # the connection is gone: its lock went with it, the next sweep drops it
            log.warning("could not drop shadow %s; the next load will", shadow.name, exc_info=True)
