"""Run requests and run history. Executing a run is the runner's job, not this module's."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ..db.models import Pipeline, PipelineRun, PipelineStatus, RunStatus
from ..runner.wakeup import notify_queued
from .. import lifecycle
from . import audit
from .errors import RunNotFound
from .pipelines import get_pipeline
from .savepoint import savepoint


# A paused run stops within a batch and a second: "pause, then run" waits this long for it.
STOPPING_RUN_WAIT_S = 3.0


def request_run(
    session: Session, pipeline_id: uuid.UUID, trigger: str = "manual", wait_for_stopping_s: float = 0.0
) -> tuple[Pipeline, bool]:
    """Queue a run and mark the pipeline RUNNING. Idempotent while a run is active.

    Returns the pipeline and whether a new run was queued. The row lock on the pipeline plus the
    partial unique index on RUNNING runs make this safe across any number of processes. A run that
    a pause is stopping (at most a batch and a second) is waited for up to wait_for_stopping_s,
    so "pause, then run" starts the new run instead of silently doing nothing.
    """
    deadline = time.monotonic() + wait_for_stopping_s
    while True:
        try:
            with savepoint(session):
                return _queue_run(session, pipeline_id, trigger)
        except _StillStopping:  # the savepoint's rollback let go of the pipeline row: the run can record its end
            if time.monotonic() >= deadline:
                return get_pipeline(session, pipeline_id), False
            time.sleep(0.1)
        except (_AlreadyRunning, IntegrityError):  # IntegrityError: another request queued one after our check
            return get_pipeline(session, pipeline_id), False


class _StillStopping(Exception):
    """A paused run is still stopping; the attempt is rolled back to its savepoint."""


class _AlreadyRunning(Exception):
    """Nothing to queue; the attempt (a withdrawn retry included) is rolled back to its savepoint."""


def _queue_run(session: Session, pipeline_id: uuid.UUID, trigger: str) -> tuple[Pipeline, bool]:
    if trigger == "manual":  # a manual run starts now, in place of a retry waiting out its backoff
        from .retries import withdraw_pending_retries

        withdraw_pending_retries(session, pipeline_id, "a manual run")
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    if pipeline.status == PipelineStatus.RUNNING:
        raise _AlreadyRunning()
    if active_run(session, pipeline.id) is not None:
        raise _StillStopping()
    lifecycle.run_requested(pipeline)
    run_id = uuid.uuid4()
    session.add(PipelineRun(id=run_id, pipeline_id=pipeline.id, status=RunStatus.RUNNING, trigger=trigger))
    if trigger == "manual":  # someone asked; scheduled and automatic runs are the runs table's to show
        audit.record(session, "pipeline.run", object_type="pipeline", object_id=pipeline.id,
                     object_name=pipeline.name, after={"run_id": run_id})
    notify_queued(session)  # idle runners on every host wake at commit
    return pipeline, True


def active_run(session: Session, pipeline_id: uuid.UUID) -> PipelineRun | None:
    return session.scalars(
        select(PipelineRun).where(
            PipelineRun.pipeline_id == pipeline_id, PipelineRun.status == RunStatus.RUNNING
        )
    ).one_or_none()


def list_runs(session: Session, pipeline_id: uuid.UUID, limit: int = 50) -> list[PipelineRun]:
    """The newest `limit` runs, newest first (the console pages through overview's history)."""
    get_pipeline(session, pipeline_id)
    query = (select(PipelineRun).where(PipelineRun.pipeline_id == pipeline_id)
             .order_by(PipelineRun.started_at.desc(), PipelineRun.id.desc()).limit(limit))
    return list(session.scalars(query))


def get_run(session: Session, pipeline_id: uuid.UUID, run_id: uuid.UUID) -> PipelineRun:
    get_pipeline(session, pipeline_id)
    run = session.get(PipelineRun, run_id)
    if run is None or run.pipeline_id != pipeline_id:
        raise RunNotFound()
    return run


def run_detail(session: Session, pipeline_id: uuid.UUID, run_id: uuid.UUID, target_limit: int = 0) -> dict:
    """The whole record of one run: configuration snapshot, batches, timings, reconciliation."""
    get_pipeline(session, pipeline_id)
    retry = aliased(PipelineRun)
    found = session.execute(
        select(PipelineRun, select(retry.id).where(retry.retry_of == PipelineRun.id).limit(1).scalar_subquery())
        .where(PipelineRun.id == run_id, PipelineRun.pipeline_id == pipeline_id)
    ).one_or_none()
    if found is None:
        raise RunNotFound()
    run, retried_by = found
    details = run.details or {}
    batch_size = details.get("batch_size") or (run.config_snapshot or {}).get("batch_size")
    finished = run.finished_at
    return {
        "id": run.id,
        "pipeline_id": run.pipeline_id,
        "status": run.status,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "claimed_at": run.claimed_at,
        "finished_at": finished,
        "duration_s": (finished - run.started_at).total_seconds() if finished else None,
        "rows_read": run.rows_read,
        "rows_written": run.rows_written,
        "error_message": run.error_message,
        "worker_id": run.worker_id,
        "heartbeat_at": run.heartbeat_at,
        "config_snapshot": run.config_snapshot,
        "batches": {"size": batch_size, "count": -(-run.rows_read // batch_size)} if batch_size else None,
        "timings": details.get("timings"),
        "reconciliation": details.get("reconciliation"),
        "gates": details.get("gates"),
        "publish": details.get("publish"),
        "path": details.get("path"),
        "tasks": details.get("tasks"),
        "progress": details.get("progress"),
        "queue": _queue(session, run, target_limit),
        "lock_wait": details.get("lock_wait"),
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "not_before": run.not_before,
        "retried_by": retried_by,
        "triggered_by": details.get("triggered_by"),
    }


def _queue(session: Session, run: PipelineRun, target_limit: int) -> dict | None:
    """For a run still queued: what it waits for (a label, its source connection's or its target
    table's limit)."""
    if run.status != RunStatus.RUNNING or run.worker_id is not None:
        return None
    if run.not_before is not None and run.not_before > datetime.now(timezone.utc):
        return {"waiting_for": f"its retry backoff (attempt {run.attempt}, not before "
                               f"{run.not_before.astimezone(timezone.utc).isoformat().replace('+00:00', 'Z')})"}
    from ..runner.queries import connection_queue, target_queue

    return connection_queue(session.connection(), run.id) or target_queue(session.connection(), run.id, target_limit)
