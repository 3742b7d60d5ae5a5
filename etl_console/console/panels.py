"""What the pipeline page's panels show: reconciliation, incremental state and schedule.

Each builder calls services and returns a small view object for its template; the views in
views.py decide which to build and whether to render a whole page or one panel. No SQL here.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Pipeline, PipelineStatus
from ..services import reconciliations
from ..services import schedules as schedule_service
from ..services import state as state_service
from ..services.errors import InvalidSchedule, PipelineBusy, ReconcileFailed, ServiceBusy
from ..services.pipelines import get_pipeline
from ..services.reconciliations import CheckedRun, latest_reconciliation

RESET_BY = "console"
RUNNING_STATE_MESSAGE = "Cannot change the state of a pipeline while it is RUNNING"  # the service's words


@dataclass(frozen=True)
class EtlSettings:
    """The few settings the panels need, from the app's EtlExtension (given by the view)."""

    source_dsn: str
    statement_timeout_s: float
    in_request_timeout_s: float
    source_role: str | None
    reconcile_after_run: bool
    reconcile_slots: threading.Semaphore | None = None
    source_access: Any = None  # services.connections.SourceAccess: opens pipelines' source connections


# reconciliation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReconciliationPanel:
    pipeline_id: uuid.UUID
    report: dict[str, Any] | None  # Reconciliation.as_dict(), or {"error": ...} as the runner records it
    checked_run: CheckedRun | None  # the run the report belongs to (None for "Reconcile now")
    on_demand: bool = False  # the report is the answer to "Reconcile now"
    pending: bool = False  # the check after the latest run has not been recorded yet
    after_runs: bool = True  # the runner checks after every successful run (ETL_RECONCILE_AFTER_RUN)
    error: str | None = None  # why "Reconcile now" could not run


def reconciliation_panel(session: Session, pipeline_id: uuid.UUID, settings: EtlSettings) -> ReconciliationPanel:
    """The latest successful run's reconciliation; PipelineNotFound for an unknown pipeline."""
    checked = latest_reconciliation(session, pipeline_id)
    report = checked.reconciliation if checked is not None else None
    # The runner records the check right after it marks the run SUCCESS; the check itself is bounded
    # by the statement timeout. Past that it is not coming (a runner died in between): stop waiting.
    pending = (
        checked is not None
        and report is None
        and settings.reconcile_after_run
        and checked.seconds_since_finished < settings.statement_timeout_s + 30
    )
    return ReconciliationPanel(
        pipeline_id, report, checked, pending=pending, after_runs=settings.reconcile_after_run
    )


def reconcile_now(sessions: sessionmaker[Session], pipeline_id: uuid.UUID, settings: EtlSettings) -> ReconciliationPanel:
    """Compare source and target now; a ReconcileFailed becomes the panel's error."""
    try:
        result = reconciliations.reconcile_pipeline(
            sessions, pipeline_id, settings.source_dsn, settings.in_request_timeout_s, settings.source_role,
            slots=settings.reconcile_slots, source_access=settings.source_access,
        )
    except (ReconcileFailed, ServiceBusy) as error:
        return ReconciliationPanel(pipeline_id, None, None, on_demand=True, error=str(error),
                                   after_runs=settings.reconcile_after_run)
    return ReconciliationPanel(pipeline_id, result.as_dict(), None, on_demand=True,
                               after_runs=settings.reconcile_after_run)


# incremental state -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatePanel:
    pipeline: Pipeline
    state: state_service.StateView
    error: str | None = None
    reset_done: bool = False

    @property
    def busy(self) -> bool:
        return self.pipeline.status == PipelineStatus.RUNNING

    @property
    def busy_message(self) -> str:
        return RUNNING_STATE_MESSAGE


def state_panel(session: Session, pipeline: Pipeline) -> StatePanel | None:
    """The watermark panel of an incremental pipeline; None for a full-reload one."""
    if pipeline.mode != "incremental":
        return None
    return current_state(session, pipeline)


def current_state(session: Session, pipeline: Pipeline) -> StatePanel:
    return StatePanel(pipeline, state_service.get_state(session, pipeline.id))


def reset_state(session: Session, pipeline: Pipeline) -> StatePanel:
    """Reset the watermark (the next run reads the whole source); PipelineBusy becomes the error."""
    try:
        state = state_service.set_watermark(session, pipeline.id, None, changed_by=RESET_BY)
    except PipelineBusy as error:
        return StatePanel(pipeline, state_service.get_state(session, pipeline.id), error=str(error))
    return StatePanel(pipeline, state, reset_done=True)


# schedule ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SchedulePanel:
    pipeline: Pipeline
    value: str  # what the box shows: the saved schedule, or what was typed when it was refused
    next_run_at: datetime | None
    now: datetime
    error: str | None = None
    saved: bool = False
    never_fires: bool = False  # no date matches the expression

    @property
    def seconds_to_next(self) -> float | None:
        if self.next_run_at is None:
            return None
        return max(0.0, (self.next_run_at - self.now).total_seconds())

    @property
    def skipped_because(self) -> str | None:
        """Why scheduled ticks will not start runs now (the runner skips these pipelines)."""
        if not self.pipeline.schedule:
            return None
        if not self.pipeline.enabled:
            return "The pipeline is disabled: scheduled runs are skipped until it is enabled."
        if self.pipeline.status == PipelineStatus.PAUSED:
            return "The pipeline is paused: scheduled runs are skipped while it is paused."
        return None


def schedule_panel(pipeline: Pipeline, *, value: str | None = None, error: str | None = None,
                   saved: bool = False) -> SchedulePanel:
    now = datetime.now(timezone.utc)
    next_run = schedule_service.next_run_at(pipeline, now)
    # A schedule saved before validation refused dates that never come (0 0 30 2 *) has no next
    # run; the page still renders so the operator can see that and change or clear it.
    never = bool(pipeline.schedule) and next_run is None
    return SchedulePanel(
        pipeline,
        (pipeline.schedule or "") if value is None else value,
        next_run,
        now,
        error=error,
        saved=saved,
        never_fires=never,
    )


def set_schedule(session: Session, pipeline_id: uuid.UUID, typed: str) -> SchedulePanel:
    """Save what was typed (an empty box clears the schedule, as an empty optional box means null in
    the create and edit forms); InvalidSchedule becomes the error, with the typed text kept."""
    expression = typed.strip() or None
    try:
        pipeline = schedule_service.set_schedule(session, pipeline_id, expression)
    except InvalidSchedule as error:
        return schedule_panel(get_pipeline(session, pipeline_id), value=typed, error=str(error))
    return schedule_panel(pipeline, saved=True)
