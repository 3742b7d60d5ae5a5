"""Reconciliations: comparing a pipeline's source query with its target now (read-only on both),
and reading the one the runner recorded on the latest successful run.

The runner adds {"reconciliation": {...}} to a successful run's details shortly after the run ends
(etl_console.runner.execute). latest_reconciliation reads the newest one: one index range scan on
ix_etl_pipeline_runs_history (newest first, first SUCCESS wins), joined to the pipeline so that an
unknown pipeline is a PipelineNotFound from the same statement.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Pipeline, PipelineRun, RunStatus
from ..warehouse.load import LoadError
from ..warehouse.reconcile import Reconciliation, reconcile
from ..warehouse.reconcile_streams import reconcile_streams
from .connections import SourceAccess, effective_connection_id, resolve_source
from .errors import DomainError, InvalidSourceQuery, PipelineNotFound, ReconcileFailed, ServiceBusy
from .pipelines import get_pipeline
from .sql_guard import check_source_query


def reconcile_pipeline(
    sessions: sessionmaker[Session],
    pipeline_id: uuid.UUID,
    source_dsn: str,
    statement_timeout_s: float,
    source_role: str | None = None,
    slots: threading.Semaphore | None = None,
    source_access: SourceAccess | None = None,
) -> Reconciliation:
    """Compare now. With `slots`, a request that finds them all taken is refused at once (ServiceBusy)
    rather than queued: slow sources must not tie up every thread that also answers health checks.

    A pipeline reading a named source connection (opened with source_access) is compared by merging
    two ordered key streams, one from that database and one from the warehouse (read as source_dsn).

    Takes the session factory, not a session: the pipeline is read in a short transaction of its own,
    ended before the comparison, so no metadata transaction is held while the databases compute."""
    with sessions() as session:
        query, target, named = _what_to_compare(session, pipeline_id, source_access)
    if slots is not None and not slots.acquire(blocking=False):
        raise ServiceBusy("too many reconciliations are running; try again in a few seconds")
    try:
        if named is not None:
            return reconcile_streams(named.dsn, source_dsn, check_source_query(query), target,
                                     named.statement_timeout_s or statement_timeout_s)
        return reconcile(source_dsn, check_source_query(query), target, statement_timeout_s, source_role)
    except (LoadError, InvalidSourceQuery) as error:
        raise ReconcileFailed(f"cannot reconcile: {error}") from None
    finally:
        if slots is not None:
            slots.release()


def _what_to_compare(session: Session, pipeline_id: uuid.UUID, source_access: SourceAccess | None):
    pipeline = get_pipeline(session, pipeline_id)
    query, target = pipeline.source_query, pipeline.target_table
    named = None
    connection_id = pipeline.source_connection_id
    if source_access is not None:
        try:
            connection_id = effective_connection_id(session, source_access, connection_id)
        except DomainError as error:
            raise ReconcileFailed(f"cannot reconcile: {error}") from None
    if connection_id is not None:
        if source_access is None:
            raise ReconcileFailed("cannot reconcile: the pipeline reads a source connection this caller cannot open")
        try:
            named = resolve_source(session, source_access, connection_id)
        except DomainError as error:
            raise ReconcileFailed(f"cannot reconcile: {error}") from None
    return query, target, named


@dataclass(frozen=True)
class CheckedRun:
    """A pipeline's latest successful run and what the check after it found (None: not recorded yet)."""

    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    started_at: datetime
    finished_at: datetime | None
    reconciliation: dict[str, Any] | None
    now: datetime  # the database clock when this was read

    @property
    def seconds_since_finished(self) -> float:
        end = self.finished_at or self.started_at
        return max(0.0, (self.now - end).total_seconds())


def latest_reconciliation(session: Session, pipeline_id: uuid.UUID) -> CheckedRun | None:
    """The newest SUCCESS run of the pipeline with its recorded reconciliation, or None if it never
    succeeded. Raises PipelineNotFound for an unknown pipeline."""
    newest_success = (
        select(
            PipelineRun.id,
            PipelineRun.started_at,
            PipelineRun.finished_at,
            PipelineRun.details["reconciliation"].label("reconciliation"),
        )
        .where(PipelineRun.pipeline_id == Pipeline.id, PipelineRun.status == RunStatus.SUCCESS)
        .order_by(PipelineRun.started_at.desc(), PipelineRun.id.desc())
        .limit(1)
        .correlate(Pipeline)
        .lateral("last_success")
    )
    row = session.execute(
        select(
            Pipeline.id,
            newest_success.c.id.label("run_id"),
            newest_success.c.started_at,
            newest_success.c.finished_at,
            newest_success.c.reconciliation,
            func.clock_timestamp().label("db_now"),
        )
        .select_from(Pipeline)
        .outerjoin(newest_success, true())
        .where(Pipeline.id == pipeline_id)
    ).one_or_none()
    if row is None:
        raise PipelineNotFound()
    if row.run_id is None:
        return None
    return CheckedRun(
        run_id=row.run_id,
        pipeline_id=row.id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reconciliation=row.reconciliation,
        now=row.db_now,
    )
