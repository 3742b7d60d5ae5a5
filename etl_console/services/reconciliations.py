"""The reconciliation recorded on a pipeline's latest successful run, read in one statement.

The runner adds {"reconciliation": {...}} to a successful run's details shortly after the run ends
(etl_console.runner.execute). The console shows the newest one: one index range scan on
ix_etl_pipeline_runs_history (newest first, first SUCCESS wins), joined to the pipeline so that an
unknown pipeline is a PipelineNotFound from the same statement. No Flask here.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from ..db.models import Pipeline, PipelineRun, RunStatus
from .errors import PipelineNotFound


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
