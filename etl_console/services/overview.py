"""Read models for the operator console: pipelines with their last run, run history, chart data.

Each function is one SQL statement whatever the data size: the list joins every pipeline's newest
run with a LATERAL ... LIMIT 1 on ix_etl_pipeline_runs_history (no N+1), and history pages are
keyset-paged on (started_at, id) through the same index, so page 2,000 costs what page 1 does.
Times are measured against the database clock (clock_timestamp() in the same statement), so
elapsed times and ages are right even when the web host's clock is not.
No Flask here.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import Select, func, select, true, tuple_
from sqlalchemy.orm import Session, aliased

from ..db.models import Pipeline, PipelineRun, PipelineStatus, RunStatus
from .errors import PipelineNotFound
from .freshness import stale_condition

HISTORY_PAGE_SIZE = 50
CHART_RUNS = 30
STATUSES = (PipelineStatus.IDLE, PipelineStatus.RUNNING, PipelineStatus.PAUSED, PipelineStatus.FAILED)


@dataclass(frozen=True)
class RunView:
    id: uuid.UUID
    pipeline_id: uuid.UUID
    status: str
    started_at: datetime
    finished_at: datetime | None
    rows_read: int
    rows_written: int
    error_message: str | None
    claimed: bool  # False while a RUNNING run waits for a runner to pick it up
    now: datetime  # the database clock when this was read

    @property
    def running(self) -> bool:
        return self.status == RunStatus.RUNNING

    @property
    def queued(self) -> bool:
        return self.running and not self.claimed

    @property
    def seconds(self) -> float:
        """Duration of a finished run, or time elapsed so far of a running one."""
        end = self.finished_at or self.now
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def age_seconds(self) -> float:
        return max(0.0, (self.now - self.started_at).total_seconds())

    @property
    def rows_per_second(self) -> float | None:
        seconds = self.seconds
        if seconds <= 0 or not self.rows_read:
            return None
        return self.rows_read / seconds

    @property
    def cursor(self) -> tuple[datetime, uuid.UUID]:
        return (self.started_at, self.id)


@dataclass(frozen=True)
class PipelineSummary:
    id: uuid.UUID
    name: str
    description: str | None
    type: str
    mode: str
    enabled: bool
    status: str
    target_table: str
    batch_size: int
    last_run: RunView | None
    stale: bool = False  # past its freshness limit (services/freshness.py)

    @property
    def run_active(self) -> bool:
        return self.last_run is not None and self.last_run.running


@dataclass(frozen=True)
class HistoryPage:
    runs: list[RunView]
    older: tuple[datetime, uuid.UUID] | None  # cursor for the next (older) page, if any
    newer: tuple[datetime, uuid.UUID] | None  # cursor for the previous (newer) page, if any
    first: bool  # this page starts at the newest run


_RUN_COLUMNS = (
    PipelineRun.id,
    PipelineRun.pipeline_id,
    PipelineRun.status,
    PipelineRun.started_at,
    PipelineRun.finished_at,
    PipelineRun.rows_read,
    PipelineRun.rows_written,
    PipelineRun.error_message,
    PipelineRun.worker_id,
)
_PIPELINE_COLUMNS = (
    Pipeline.id,
    Pipeline.name,
    Pipeline.description,
    Pipeline.type,
    Pipeline.mode,
    Pipeline.enabled,
    Pipeline.status,
    Pipeline.target_table,
    Pipeline.batch_size,
)
_NEWEST_FIRST = (PipelineRun.started_at.desc(), PipelineRun.id.desc())


def get_summaries(session: Session, pipeline_ids: Sequence[uuid.UUID]) -> list[PipelineSummary]:
    """The given pipelines with their newest runs, in one statement (for live row updates)."""
    if not pipeline_ids:
        return []
    query = _summary_query().where(Pipeline.id.in_(list(pipeline_ids))).order_by(Pipeline.name)
    return [_summary(row) for row in session.execute(query)]


def get_summary(session: Session, pipeline_id: uuid.UUID) -> PipelineSummary:
    rows = get_summaries(session, [pipeline_id])
    if not rows:
        raise PipelineNotFound()
    return rows[0]


def run_history(
    session: Session,
    pipeline_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = HISTORY_PAGE_SIZE,
) -> HistoryPage:
    """One page of runs, newest first. `before` pages towards older runs, `after` towards newer ones.

    Fetches limit + 1 rows to know whether another page exists: one index range scan, no count.
    """
    keyset = tuple_(PipelineRun.started_at, PipelineRun.id)
    query = _runs_query().where(PipelineRun.pipeline_id == pipeline_id)
    if after is not None:
        query = query.where(keyset > tuple_(*after)).order_by(
            PipelineRun.started_at.asc(), PipelineRun.id.asc()
        )
    else:
        if before is not None:
            query = query.where(keyset < tuple_(*before))
        query = query.order_by(*_NEWEST_FIRST)
    runs = [_run(row) for row in session.execute(query.limit(limit + 1))]
    more = len(runs) > limit
    runs = runs[:limit]
    if after is not None:
        if not more:
            # Fewer than a page of newer runs: that is the first page, shown full.
            return run_history(session, pipeline_id, limit=limit)
        runs.reverse()
        return HistoryPage(runs, older=runs[-1].cursor, newer=runs[0].cursor, first=False)
    older = runs[-1].cursor if more else None
    newer = None if before is None else (runs[0].cursor if runs else before)
    return HistoryPage(runs, older, newer, first=before is None)


def recent_runs(session: Session, pipeline_id: uuid.UUID, limit: int = CHART_RUNS) -> list[RunView]:
    """The newest runs, newest first (for the chart)."""
    query = _runs_query().where(PipelineRun.pipeline_id == pipeline_id).order_by(*_NEWEST_FIRST).limit(limit)
    return [_run(row) for row in session.execute(query)]


def _runs_query() -> Select:
    return select(*_RUN_COLUMNS, func.clock_timestamp().label("db_now"))


def _summary_query() -> Select:
    newest = (
        select(*_RUN_COLUMNS)
        .where(PipelineRun.pipeline_id == Pipeline.id)
        .order_by(*_NEWEST_FIRST)
        .limit(1)
        .correlate(Pipeline)
        .lateral("last_run")
    )
    run = aliased(PipelineRun, newest)
    return (
        select(
            *_PIPELINE_COLUMNS,
            run.id.label("run_id"),
            run.pipeline_id.label("run_pipeline_id"),
            run.status.label("run_status"),
            run.started_at.label("run_started_at"),
            run.finished_at.label("run_finished_at"),
            run.rows_read.label("run_rows_read"),
            run.rows_written.label("run_rows_written"),
            run.error_message.label("run_error_message"),
            run.worker_id.label("run_worker_id"),
            func.clock_timestamp().label("db_now"),
            stale_condition().label("stale"),
        )
        .select_from(Pipeline)
        .outerjoin(newest, true())
    )


def _run(row, prefix: str = "") -> RunView:
    """A RunView from a row whose run columns carry `prefix` (the list query labels them run_*)."""
    column = lambda name: getattr(row, prefix + name)  # noqa: E731
    return RunView(
        id=column("id"),
        pipeline_id=column("pipeline_id"),
        status=column("status"),
        started_at=column("started_at"),
        finished_at=column("finished_at"),
        rows_read=column("rows_read") or 0,
        rows_written=column("rows_written") or 0,
        error_message=column("error_message"),
        claimed=column("worker_id") is not None,
        now=row.db_now,
    )


def _summary(row) -> PipelineSummary:
    last_run = _run(row, prefix="run_") if row.run_id is not None else None
    return PipelineSummary(
        id=row.id,
        name=row.name,
        description=row.description,
        type=row.type,
        mode=row.mode,
        enabled=row.enabled,
        status=row.status,
        target_table=row.target_table,
        batch_size=row.batch_size,
        last_run=last_run,
        stale=bool(row.stale),
    )


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
