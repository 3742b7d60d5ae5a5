"""The console's pipeline list for hundreds or thousands of pipelines: filtered, keyset-paged pages and
the counts per status above them. No Flask here.

Pages go by name (unique, so it is a complete keyset on its own, and its unique index serves both
the order and the cursor): `after` the last name shown pages forward, `before` the first pages back,
the same limit + 1 pattern as overview.run_history, so page 200 costs what page 1 does. Each page is
one statement (overview's LATERAL join for the newest run); the counts are one grouped statement.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from ..db.models import Pipeline, PipelineRun, RunStatus
from .freshness import stale_condition
from .overview import STATUSES, PipelineSummary, _escape_like, _summary, _summary_query

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class ListFilters:
    """What the operator narrowed the list to; every field is optional and they combine (AND)."""

    status: str | None = None  # one of overview.STATUSES
    target_table: str | None = None
    name: str | None = None  # part of the name, case-insensitive, % and _ taken literally
    failing: bool = False  # the newest run FAILED (whatever the pipeline's status is now)
    stale: bool = False  # no successful run within its freshness window (services/freshness.py)

    @property
    def any(self) -> bool:
        return bool(self.status or self.target_table or self.name or self.failing or self.stale)


@dataclass(frozen=True)
class PipelinePage:
    pipelines: list[PipelineSummary]
    next_after: str | None  # the cursor of the next page (the last name shown), when one follows
    previous_before: str | None  # the cursor of the previous page (the first name shown), when one precedes
    first: bool  # this page starts at the first pipeline


@dataclass(frozen=True)
class StatusCounts:
    by_status: dict[str, int] = field(default_factory=dict)  # every status in STATUSES, zero included
    stale: int = 0  # of the pipelines the list shows (the status filter included), how many are stale

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def list_page(
    session: Session,
    filters: ListFilters = ListFilters(),
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> PipelinePage:
    """One page of pipelines by name with their newest runs; limit + 1 rows tell whether more follow."""
    query = _summary_query()
    for condition in _conditions(filters):
        query = query.where(condition)
    if before is not None:
        rows = _fetch(session, query.where(Pipeline.name < before).order_by(Pipeline.name.desc()), limit)
        more = len(rows) > limit
        if not more:
            # Fewer than a page before the cursor: that is the first page, shown full.
            return list_page(session, filters, limit=limit)
        rows = rows[:limit][::-1]
        return PipelinePage(rows, next_after=rows[-1].name, previous_before=rows[0].name, first=False)
    if after is not None:
        query = query.where(Pipeline.name > after)
    rows = _fetch(session, query.order_by(Pipeline.name), limit)
    more = len(rows) > limit
    rows = rows[:limit]
    return PipelinePage(
        rows,
        next_after=rows[-1].name if more else None,
        previous_before=rows[0].name if after is not None and rows else None,
        first=after is None,
    )


def status_counts(session: Session, filters: ListFilters = ListFilters()) -> StatusCounts:
    """How many pipelines have each status under the other filters (the status filter itself is
    left out, so each count is what choosing that status would list), and how many of those the
    list shows are stale: one GROUP BY."""
    query = select(Pipeline.status, func.count(), func.count().filter(stale_condition())).group_by(Pipeline.status)
    for condition in _conditions(replace(filters, status=None)):
        query = query.where(condition)
    rows = session.execute(query).all()
    found = {status: count for status, count, _ in rows}
    stale = sum(stale for status, _, stale in rows if filters.status in (None, status))
    return StatusCounts({status: found.get(status, 0) for status in STATUSES}, stale=stale)


def _fetch(session: Session, query: Select, limit: int) -> list[PipelineSummary]:
    return [_summary(row) for row in session.execute(query.limit(limit + 1))]


def _conditions(filters: ListFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(Pipeline.status == filters.status)
    if filters.target_table:
        conditions.append(Pipeline.target_table == filters.target_table)
    if filters.name:
        conditions.append(Pipeline.name.ilike(f"%{_escape_like(filters.name)}%", escape="\\"))
    if filters.failing:
        conditions.append(_newest_run_status() == RunStatus.FAILED)
    if filters.stale:
        conditions.append(stale_condition())
    return conditions


def _newest_run_status():
    """The newest run's status, read from ix_etl_pipeline_runs_history (one index probe a pipeline)."""
    return (
        select(PipelineRun.status)
        .where(PipelineRun.pipeline_id == Pipeline.id)
        .order_by(PipelineRun.started_at.desc(), PipelineRun.id.desc())
        .limit(1)
        .correlate(Pipeline)
        .scalar_subquery()
    )
