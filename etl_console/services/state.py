"""The incremental watermark of a pipeline (etl_state), with an audit trail of every change."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import PipelineState, PipelineStateChange, PipelineStatus
from . import audit
from .errors import PipelineBusy
from .pipelines import get_pipeline
from .runs import active_run

HISTORY_LIMIT = 20


@dataclass
class StateView:
    pipeline_id: uuid.UUID
    incremental_key: str | None
    watermark: str | None
    updated_at: datetime | None
    changes: list[PipelineStateChange]


def get_state(session: Session, pipeline_id: uuid.UUID) -> StateView:
    pipeline = get_pipeline(session, pipeline_id)
    state = session.get(PipelineState, pipeline.id)
    changes = list(
        session.scalars(
            select(PipelineStateChange)
            .where(PipelineStateChange.pipeline_id == pipeline.id)
            .order_by(PipelineStateChange.changed_at.desc(), PipelineStateChange.id.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    return StateView(
        pipeline.id,
        state.incremental_key if state and state.incremental_key else pipeline.incremental_key,
        state.watermark if state else None,
        state.updated_at if state else None,
        changes,
    )


def set_watermark(session: Session, pipeline_id: uuid.UUID, watermark: str | None, changed_by: str) -> StateView:
    """Set (or, with None, reset) the watermark. Refused while a run holds the pipeline."""
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    # A paused run that is still stopping holds the watermark row too: wait for it to end.
    if pipeline.status == PipelineStatus.RUNNING or active_run(session, pipeline.id) is not None:
        raise PipelineBusy("Cannot change the state of a pipeline while it is RUNNING")
    state = session.scalars(
        select(PipelineState).where(PipelineState.pipeline_id == pipeline.id).with_for_update()
    ).one_or_none()
    if state is None:
        state = PipelineState(pipeline_id=pipeline.id, incremental_key=pipeline.incremental_key)
        session.add(state)
    old = state.watermark
    state.watermark = watermark
    state.incremental_key = pipeline.incremental_key
    if old != watermark:  # the audit trail records changes, not requests
        session.add(
            PipelineStateChange(pipeline_id=pipeline.id, old_watermark=old, new_watermark=watermark, changed_by=changed_by)
        )
    audit.record(session, "pipeline.state.reset" if watermark is None else "pipeline.state.set", object_type="pipeline",
                 object_id=pipeline.id, object_name=pipeline.name, before={"watermark": old},
                 after={"watermark": watermark})
    session.flush()
    return get_state(session, pipeline_id)
