"""A pipeline's retry policy and auto-pause (the decisions themselves: services/run_outcomes.py)."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ..lifecycle import RunStatus
from .pipelines import get_pipeline

POLICY_FIELDS = ("max_retries", "retry_initial_delay_s", "retry_backoff_factor", "retry_max_delay_s",
                 "retry_jitter", "auto_pause_after_failures")

# Recorded on a queued retry that a pause or a manual run replaced before it started. It begins like
# a pause's cancel message, so it alerts nothing and counts as no failure.
WITHDRAWN_MESSAGE = "Run cancelled before it started: a retry withdrawn by {reason}"


def get_policy(session: Session, pipeline_id: uuid.UUID) -> dict[str, Any]:
    pipeline = get_pipeline(session, pipeline_id)
    pending = session.execute(
        text(f"SELECT id, attempt, not_before FROM etl_pipeline_runs WHERE pipeline_id = :p AND status = '{RunStatus.RUNNING}' "
             "AND worker_id IS NULL AND retry_of IS NOT NULL"), {"p": pipeline.id}
    ).first()
    return {
        "pipeline_id": pipeline.id,
        **{name: getattr(pipeline, name) for name in POLICY_FIELDS},
        "consecutive_failures": pipeline.consecutive_failures,
        "pending_retry": None if pending is None else
        {"run_id": pending.id, "attempt": pending.attempt, "not_before": pending.not_before},
    }


def set_policy(session: Session, pipeline_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    """Replace the policy (fields left out keep their value). Applies to the next failure; a retry
    already waiting keeps its time. The caller commits."""
    from . import audit

    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    before = {name: getattr(pipeline, name) for name in POLICY_FIELDS}
    for name in POLICY_FIELDS:
        if name in values:
            setattr(pipeline, name, values[name])
    session.flush()
    audit.record(session, "pipeline.retries.put", object_type="pipeline", object_id=pipeline.id,
                 object_name=pipeline.name, before=before, after={name: getattr(pipeline, name) for name in POLICY_FIELDS})
    return get_policy(session, pipeline.id)


def withdraw_pending_retries(session: Session, pipeline_id: uuid.UUID, reason: str) -> int:
    """A queued retry not yet claimed ends FAILED with a cancel message. Call before locking the
    pipeline's row (the runner locks a run, then its pipeline)."""
    result = session.execute(
        text(
            f"""
            UPDATE etl_pipeline_runs SET status = '{RunStatus.FAILED}', finished_at = clock_timestamp(), error_message = :message
            WHERE pipeline_id = :p AND status = '{RunStatus.RUNNING}' AND worker_id IS NULL AND retry_of IS NOT NULL
            """
        ),
        {"p": pipeline_id, "message": WITHDRAWN_MESSAGE.format(reason=reason)},
    )
    return result.rowcount or 0
