"""One run, from its claimed configuration snapshot to a recorded SUCCESS or FAILED."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

import psycopg2
import psycopg2.errors

from .. import failpoints, metrics
from ..db.models import PipelineStatus, RunStatus
from ..services.errors import InvalidSourceQuery
from ..services.run_outcomes import CANCELLED, ERROR, REFUSED
from ..services.sql_guard import check_source_query
from ..warehouse.full_load import FullLoad
from ..warehouse.incremental import IncrementalLoad
from ..warehouse.load import LoadCancelled, LoadError
from . import queries
from .sources import named_source, reconcile_after_run
from .task_snapshot import snapshot_tasks

if TYPE_CHECKING:
    from .queries import ClaimedRun
    from .runner import ActiveRun, Runner

log = logging.getLogger(__name__)

PAUSE_MESSAGE = "Run cancelled by a pause after {rows} rows; the target keeps its previous contents"


class RunRefused(LoadError):
    """The pipeline's configuration cannot run at all: failed, alerted, never retried."""


class LeaseLost(Exception):
    """Another runner reaped this run: this worker must not commit or record anything."""


class RunExecution:
    named_source = None  # the pipeline's source connection, once _load resolved it

    def __init__(self, runner: "Runner", claimed: "ClaimedRun", active: "ActiveRun") -> None:
        self.runner = runner
        self.claimed = claimed
        self.active = active
        self.timings: dict[str, float] = {}
        self.started = time.monotonic()  # for etl_run_duration_seconds
        self.details: dict = {}  # what the load reports for the run's details (gates, publish)

    # LoadHooks -------------------------------------------------------------------------------
    def bind_interrupt(self, interrupt: Callable[[], None], grace_s: float | None = None) -> None:
        """grace_s=0: the load has no batch boundaries to wait for, so a cancel interrupts at once."""
        self.active.interrupt = interrupt
        self.active.interrupt_grace_s = grace_s

    def on_batch(self, rows_read: int, rows_written: int) -> None:
        self.active.rows_read, self.active.rows_written = rows_read, rows_written
        self._raise_if_cancelled()

    def on_progress(self, rows_read: int, rows_written: int) -> None:
        self.active.rows_read, self.active.rows_written = rows_read, rows_written

    def report(self, details: dict, persist: bool = False) -> None:
        self.details.update(details)
        if persist:  # e.g. "waiting to publish": shown on the run while it is still RUNNING
            with self.runner.engine.begin() as conn:
                queries.add_run_details(conn, self.claimed.run_id, details)

    def commit(self, commit_target: Callable[[], None], timings: dict[str, float], details: dict | None = None) -> None:
        self.timings.update(timings)
        self.details.update(details or {})
        runner = self.runner
        with runner.engine.begin() as conn:
            ours, cancel = queries.lock_owned_run(conn, self.claimed.run_id, runner.worker_id)
            if not ours:
                raise LeaseLost()
            if cancel == "pause":
                self.active.cancel("pause")
            self._raise_if_cancelled()
            commit_target()
            failpoints.hit("run.after_target_commit")
            queries.finish_run(
                conn,
                self.claimed.run_id,
                self.claimed.pipeline_id,
                runner.worker_id,
                succeeded=True,
                rows_read=self.active.rows_read,
                rows_written=self.active.rows_written,
                details={**self.details, "timings": self.timings, "batch_size": self.claimed.config["batch_size"],
                         "mode": self.claimed.config.get("mode", "full")},
            )

    # the run -----------------------------------------------------------------------------------
    def run(self) -> None:
        config = self.claimed.config
        try:
            self._raise_if_cancelled()
            load = self._load(config)
            try:
                result = load.run(self)
            finally:
                self.active.interrupt = None  # its connections are closed now
            log.info("run %s succeeded: %s rows", self.claimed.run_id, result.rows_written)
            metrics.run_finished(RunStatus.SUCCESS, self.started, result.rows_written)
            if self.runner.config.reconcile_after_run:
                self._record_reconciliation(config)
        except LeaseLost:
            log.warning("run %s: lease lost, target rolled back, nothing recorded", self.claimed.run_id)
        except LoadCancelled as cancelled:
            self._fail(str(cancelled), pipeline_status=PipelineStatus.PAUSED if self._paused else None,
                       cause=CANCELLED)
        except Exception as error:  # noqa: BLE001 - every error becomes a FAILED run
            if self.active.cancel_reason is not None:
                # We interrupted the source ourselves; the cancel is the cause, not the error it raised.
                self._fail(self._cancel_message(), pipeline_status=PipelineStatus.PAUSED if self._paused else None,
                           cause=CANCELLED)
            elif isinstance(error, (RunRefused, InvalidSourceQuery)):
                self._fail(str(error), cause=REFUSED)
            elif isinstance(error, LoadError):
                self._fail(str(error))
            elif isinstance(error, psycopg2.Error):
                self._fail(describe_pg_error(error))
            else:
                log.exception("run %s crashed", self.claimed.run_id)
                self._fail(f"internal error: {type(error).__name__}: {error}")

    def _load(self, config: dict):
        """The loader for the snapshot's mode; both share hooks, fencing and error handling."""
        database, settings = self.runner.database, self.runner.config
        self.named_source = named = named_source(self.runner, config)  # None: the deployment's default source
        common = dict(
            source_dsn=named.dsn if named else database.source_dsn,
            target_dsn=database.warehouse_dsn,
            query=check_source_query(config["source_query"]),
            target_table=config["target_table"],
            batch_size=config["batch_size"],
            statement_timeout_s=(named and named.statement_timeout_s) or settings.statement_timeout_s,
            source_role=None if named else settings.source_role,  # a connection's own login is its boundary
            checks=config.get("checks") or {},
        )
        if config.get("mode") == "incremental":
            if config.get("type") == "PYTHON":
                raise RunRefused("PYTHON pipelines load in full mode only")
            if not config.get("incremental_key"):
                raise RunRefused("incremental mode needs an incremental_key")
            if database.warehouse_url != database.url:
                raise RunRefused("incremental mode needs the warehouse and the metadata in one database")
            return IncrementalLoad(
                **common,
                incremental_key=config["incremental_key"],
                pipeline_id=self.claimed.pipeline_id,
                run_id=self.claimed.run_id,
                load_path=settings.load_path,
            )
        tasks = None
        if config.get("type") == "PYTHON":
            with self.runner.engine.begin() as conn:
                tasks = tuple(snapshot_tasks(conn, self.claimed.run_id, self.claimed.pipeline_id))
        return FullLoad(**common, run_id=self.claimed.run_id, load_path=settings.load_path, tasks=tasks,
                        assertion_dsn=database.source_dsn)

    def _record_reconciliation(self, config: dict) -> None:
        """After a success: compare source and target over the key and keep the counts on the run."""
        try:
            result = reconcile_after_run(self.runner, config, self.named_source)
        except Exception as error:  # noqa: BLE001 - a failed check must not turn a success into a failure
            result = {"error": str(error)}
        try:
            with self.runner.engine.begin() as conn:
                queries.add_run_details(conn, self.claimed.run_id, {"reconciliation": result})
        except Exception:  # noqa: BLE001
            log.exception("could not record the reconciliation of run %s", self.claimed.run_id)

    @property
    def _paused(self) -> bool:
        return self.active.cancel_reason == "pause"

    def _raise_if_cancelled(self) -> None:
        if self.active.cancel_reason is not None:
            raise LoadCancelled(self._cancel_message())

    def _cancel_message(self) -> str:
        if self._paused:
            return PAUSE_MESSAGE.format(rows=self.active.rows_read)
        return self.active.cancel_reason or "cancelled"

    def _fail(self, message: str, pipeline_status: str | None = None, cause: str = ERROR) -> None:
        log.info("run %s failed: %s", self.claimed.run_id, message)
        try:
            with self.runner.engine.begin() as conn:
                recorded = queries.finish_run(
                    conn,
                    self.claimed.run_id,
                    self.claimed.pipeline_id,
                    self.runner.worker_id,
                    succeeded=False,
                    rows_read=self.active.rows_read,
                    rows_written=0,  # the target transaction rolled back: nothing was written
                    error_message=message,
                    details={**self.details, "timings": self.timings},
                    pipeline_status=pipeline_status,
                    cause=cause,
                )
            if recorded:
                metrics.run_finished(RunStatus.FAILED, self.started, self.active.rows_written)
            if not recorded:
                log.warning("run %s was reaped before its failure could be recorded", self.claimed.run_id)
        except Exception:  # noqa: BLE001 - the reaper will record it as lost
            log.exception("could not record failure of run %s", self.claimed.run_id)


def describe_pg_error(error: psycopg2.Error) -> str:
    """PostgreSQL's message plus its detail and context lines, which name the row and column."""
    diag = error.diag
    if isinstance(error, psycopg2.errors.UniqueViolation) and diag.message_detail:
        # Raised while rebuilding the key after the COPY: the source repeats a key value.
        return f"the source query returns duplicate keys for the target ({diag.message_primary}): {diag.message_detail}"
    parts = [diag.message_primary or str(error).strip().splitlines()[0]]
    if diag.message_detail:
        parts.append(f"DETAIL: {diag.message_detail}")
    if diag.context:
        parts.append(f"CONTEXT: {diag.context.strip().splitlines()[0]}")
    return "; ".join(parts)
