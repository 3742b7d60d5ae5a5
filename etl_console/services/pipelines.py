"""Pipeline configuration and its state transitions (DESIGN.md §1). No HTTP here."""
from __future__ import annotations

import uuid
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.models import Pipeline, PipelineRun, PipelineStatus, RunStatus
from .errors import NameTaken, PipelineBusy, PipelineNotFound, TargetNotAllowed
from .sql_guard import check_source_query

EDITABLE_FIELDS = (
    "name",
    "description",
    "type",
    "mode",
    "enabled",
    "target_table",
    "batch_size",
    "source_query",
    "incremental_key",
)


def list_pipelines(session: Session) -> list[Pipeline]:
    return list(session.scalars(select(Pipeline).order_by(Pipeline.created_at, Pipeline.id)))


def get_pipeline(session: Session, pipeline_id: uuid.UUID, *, for_update: bool = False) -> Pipeline:
    query = select(Pipeline).where(Pipeline.id == pipeline_id)
    if for_update:
        query = query.with_for_update()
    pipeline = session.scalars(query).one_or_none()
    if pipeline is None:
        raise PipelineNotFound()
    return pipeline


def find_pipeline(session: Session, name_or_id: str) -> Pipeline:
    """By id when it parses as a UUID, else by name (for the CLI)."""
    try:
        return get_pipeline(session, uuid.UUID(name_or_id))
    except (ValueError, PipelineNotFound):
        pipeline = session.scalars(select(Pipeline).where(Pipeline.name == name_or_id)).one_or_none()
        if pipeline is None:
            raise PipelineNotFound() from None
        return pipeline


def create_pipeline(session: Session, allowed_targets: Iterable[str], data: dict[str, Any]) -> Pipeline:
    values = {key: data[key] for key in EDITABLE_FIELDS if key in data}
    _check(session, allowed_targets, values)
    pipeline = Pipeline(id=uuid.uuid4(), **values)
    pipeline.status = PipelineStatus.IDLE if pipeline.enabled is not False else PipelineStatus.PAUSED
    session.add(pipeline)
    _commit_unique_name(session)
    return pipeline


def update_pipeline(
    session: Session, allowed_targets: Iterable[str], pipeline_id: uuid.UUID, changes: dict[str, Any]
) -> Pipeline:
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    changes = {key: changes[key] for key in EDITABLE_FIELDS if key in changes}
    if not changes:
        session.rollback()
        return pipeline
    if pipeline.status == PipelineStatus.RUNNING:
        session.rollback()
        raise PipelineBusy()
    _check(session, allowed_targets, changes, exclude_id=pipeline.id)
    for key, value in changes.items():
        setattr(pipeline, key, value)
    if changes.get("enabled") is False:
        pipeline.status = PipelineStatus.PAUSED
    elif changes.get("enabled") is True and pipeline.status == PipelineStatus.PAUSED:
        pipeline.status = PipelineStatus.IDLE
    _commit_unique_name(session)
    return pipeline


def pause_pipeline(session: Session, pipeline_id: uuid.UUID) -> Pipeline:
    """PAUSED at once; a run in flight is asked to stop at its next batch boundary."""
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    if pipeline.status == PipelineStatus.PAUSED:
        session.rollback()
        return pipeline
    active = session.scalars(
        select(PipelineRun).where(
            PipelineRun.pipeline_id == pipeline.id, PipelineRun.status == RunStatus.RUNNING
        )
    ).one_or_none()
    if active is not None:
        active.cancel_requested = "pause"
    pipeline.status = PipelineStatus.PAUSED
    session.commit()
    return pipeline


def count_pipelines(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Pipeline)) or 0


def _check(
    session: Session,
    allowed_targets: Iterable[str],
    values: dict[str, Any],
    exclude_id: uuid.UUID | None = None,
) -> None:
    """Business checks in the contract's order: target, then name, then the query."""
    if "target_table" in values and values["target_table"] not in tuple(allowed_targets):
        raise TargetNotAllowed(values["target_table"])
    if "name" in values:
        clash = select(Pipeline.id).where(Pipeline.name == values["name"])
        if exclude_id is not None:
            clash = clash.where(Pipeline.id != exclude_id)
        if session.scalar(clash) is not None:
            session.rollback()
            raise NameTaken()
    if "source_query" in values:
        check_source_query(values["source_query"])


def _commit_unique_name(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        if "etl_pipelines_name_key" in str(error.orig):
            raise NameTaken() from None
        raise
