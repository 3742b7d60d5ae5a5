"""Pipeline configuration and its state transitions (DESIGN.md §1). No HTTP here."""
from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import bindparam, select, text, tuple_, update
from sqlalchemy.orm import Session

from ..db.models import Pipeline, PipelineRun, PipelineStatus, RunStatus
from .. import lifecycle
from . import audit
from .errors import InvalidPipeline, NameTaken, PipelineBusy, PipelineNotFound, TargetNotAllowed
from .connections import SourceAccess, check_pipeline_source, effective_connection_id, pipeline_source_connection
from .savepoint import savepoint
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
    "required_label",
)
# What the audit log shows of a pipeline's configuration, before and after a change.
AUDITED_FIELDS = (*EDITABLE_FIELDS, "source_connection_id")
UNIQUE_NAME = {"etl_pipelines_name_key": NameTaken}  # a concurrent request took the name after our check


def list_pipelines(
    session: Session,
    *,
    status: str | None = None,
    enabled: bool | None = None,
    target_table: str | None = None,
    name_contains: str | None = None,
    limit: int | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[Pipeline]:
    """Oldest first; `after` is the keyset cursor (created_at, id) of the last row already seen."""
    query = select(Pipeline)
    if status is not None:
        query = query.where(Pipeline.status == status)
    if enabled is not None:
        query = query.where(Pipeline.enabled.is_(enabled))
    if target_table is not None:
        query = query.where(Pipeline.target_table == target_table)
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Pipeline.name.ilike(f"%{escaped}%", escape="\\"))
    if after is not None:
        query = query.where(tuple_(Pipeline.created_at, Pipeline.id) > tuple_(*after))
    query = query.order_by(Pipeline.created_at, Pipeline.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def read_pipeline(database, pipeline_id: uuid.UUID, columns: tuple[str, ...]) -> dict[str, Any]:
    """The pipeline's `columns` as {column: value}, for a view that only shows them: one statement of
    its own (Database.read_one), outside any session. The ORM's load of every column, a session and
    its BEGIN, COMMIT and ping round trips cost more than the rest of such a request. get_pipeline is
    the same lookup in the caller's transaction, for callers that go on to change the pipeline."""
    row = database.read_one(_columns_by_id(columns), {"pipeline_id": pipeline_id})
    if row is None:
        raise PipelineNotFound()
    return row


@functools.lru_cache(maxsize=8)
def _columns_by_id(columns: tuple[str, ...]):
    table = Pipeline.__table__
    return select(*(table.c[name] for name in columns)).where(table.c.id == bindparam("pipeline_id"))


# Built once: building `Pipeline.id == value` and then its cache key anew cost more CPU per GET
# /pipelines/{id} than the rest of the view (the key of a statement built once is remembered).
_PIPELINE_BY_ID = select(Pipeline).where(Pipeline.id == bindparam("pipeline_id"))
# A locked read refreshes an object an earlier read left in the session: what it holds is the row now.
_PIPELINE_BY_ID_FOR_UPDATE = _PIPELINE_BY_ID.with_for_update().execution_options(populate_existing=True)


def get_pipeline(session: Session, pipeline_id: uuid.UUID, *, for_update: bool = False) -> Pipeline:
    query = _PIPELINE_BY_ID_FOR_UPDATE if for_update else _PIPELINE_BY_ID
    pipeline = session.scalars(query, {"pipeline_id": pipeline_id}).one_or_none()
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


def create_pipeline(
    session: Session, allowed_targets: Iterable[str], data: dict[str, Any], *, source_access: SourceAccess | None = None
) -> Pipeline:
    """`source_connection` (a connection's name or id) makes the source query read that database;
    with source_access the source is checked now (reachable, the query runs, its columns fit)."""
    values = {key: data[key] for key in EDITABLE_FIELDS if key in data}
    _check(session, allowed_targets, values)
    _check_incremental(session, values.get("mode", "full"), values.get("incremental_key"), values["target_table"])
    _check_type(session, values.get("type", "SQL"), values.get("mode", "full"))
    connection_id = pipeline_source_connection(session, data.get("source_connection"))
    checked_connection = effective_connection_id(session, source_access, connection_id)
    if checked_connection is not None and source_access is not None:
        check_pipeline_source(session, source_access, checked_connection, check_source_query(values["source_query"]),
                              values["target_table"],
                              values.get("incremental_key") if values.get("mode") == "incremental" else None,
                              columns_fit=values.get("type", "SQL") != "PYTHON")
    pipeline = Pipeline(id=uuid.uuid4(), source_connection_id=connection_id, **values)
    pipeline.status = lifecycle.status_when_created(pipeline.enabled)
    with savepoint(session, UNIQUE_NAME):
        session.add(pipeline)
    _record(session, "pipeline.create", pipeline, after=audit.snapshot(pipeline, AUDITED_FIELDS))
    return pipeline


def update_pipeline(
    session: Session,
    allowed_targets: Iterable[str],
    pipeline_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    source_access: SourceAccess | None = None,
    default_source_dsn: str | None = None,
) -> Pipeline:
    """default_source_dsn: where a PYTHON pipeline's tasks are re-checked when its query, target or
    source changes (None: not re-checked here; the run checks them when it starts)."""
    if changes.get("enabled") is False:  # disabling stops automatic runs: a waiting retry too
        from .retries import withdraw_pending_retries

        withdraw_pending_retries(session, pipeline_id, "disabling the pipeline")
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    before = audit.snapshot(pipeline, AUDITED_FIELDS)
    connection_changed = "source_connection" in changes
    new_connection = changes.get("source_connection")
    changes = {key: changes[key] for key in EDITABLE_FIELDS if key in changes}
    if connection_changed:
        connection_id = pipeline_source_connection(session, new_connection)
        if connection_id != pipeline.source_connection_id:
            changes["source_connection_id"] = connection_id
    if not changes:
        return pipeline
    if pipeline.status == PipelineStatus.RUNNING:
        raise PipelineBusy()
    _check(session, allowed_targets, changes, exclude_id=pipeline.id)
    _check_incremental(
        session,
        changes.get("mode", pipeline.mode),
        changes.get("incremental_key", pipeline.incremental_key),
        changes.get("target_table", pipeline.target_table),
    )
    _check_type(session, changes.get("type", pipeline.type), changes.get("mode", pipeline.mode), pipeline.id)
    connection_id = effective_connection_id(
        session, source_access, changes.get("source_connection_id", pipeline.source_connection_id)
    )
    if connection_id is not None and source_access is not None and (
        {"source_connection_id", "source_query", "target_table", "mode", "incremental_key"} & set(changes)
    ):
        incremental = changes.get("mode", pipeline.mode) == "incremental"
        check_pipeline_source(session, source_access, connection_id,
                              check_source_query(changes.get("source_query", pipeline.source_query)),
                              changes.get("target_table", pipeline.target_table),
                              changes.get("incremental_key", pipeline.incremental_key) if incremental else None,
                              columns_fit=changes.get("type", pipeline.type) != "PYTHON")
    # In a savepoint: tasks refused by the new query, or a name taken meanwhile, leave the row as it was.
    with savepoint(session, UNIQUE_NAME):
        for key, value in changes.items():
            setattr(pipeline, key, value)
        if pipeline.type == "PYTHON" and {"type", "source_query", "target_table", "source_connection_id"} & set(changes):
            from .tasks import recheck_tasks

            recheck_tasks(session, pipeline, source_access=source_access, default_source_dsn=default_source_dsn)
        if "enabled" in changes:
            lifecycle.enabled_changed(pipeline, changes["enabled"])
    _record(session, "pipeline.patch", pipeline, *audit.changed_only(before, audit.snapshot(pipeline, AUDITED_FIELDS)))
    return pipeline


def pause_pipeline(session: Session, pipeline_id: uuid.UUID) -> Pipeline:
    """PAUSED at once; a run in flight is asked to stop at its next batch boundary.

    Locks the run row before the pipeline row, the order the runner uses when it records an
    outcome (run, then pipeline), so a pause racing a finishing run cannot deadlock."""
    session.execute(
        update(PipelineRun)
        .where(PipelineRun.pipeline_id == pipeline_id, PipelineRun.status == RunStatus.RUNNING)
        .values(cancel_requested="pause")
    )
    from .retries import withdraw_pending_retries

    withdraw_pending_retries(session, pipeline_id, "a pause")
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    _record(session, "pipeline.pause", pipeline, {"status": pipeline.status}, {"status": PipelineStatus.PAUSED})
    # An already paused pipeline may still have a run stopping: its stop request above stays.
    lifecycle.paused(pipeline)
    return pipeline


def _record(session: Session, action: str, pipeline: Pipeline, before: dict | None = None,
            after: dict | None = None) -> None:
    audit.record(session, action, object_type="pipeline", object_id=pipeline.id, object_name=pipeline.name,
                 before=before, after=after)


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
            raise NameTaken()
    if "source_query" in values:
        check_source_query(values["source_query"])


def _check_incremental(session: Session, mode: str, key: str | None, target_table: str) -> None:
    """Incremental mode upserts on the target's primary key and filters on incremental_key."""
    if mode != "incremental":
        return
    if not key:
        raise InvalidPipeline("incremental mode needs an incremental_key: the source column that grows with new rows",
                              field="incremental_key")
    schema, _, table = target_table.partition(".")
    has_key = session.scalar(
        text("SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid = to_regclass(:name)"),
        {"name": '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'},
    )
    if not has_key:
        raise InvalidPipeline(f"target_table '{target_table}' has no primary key; incremental mode upserts on it",
                              field="target_table")


def _check_type(session: Session, pipeline_type: str, mode: str, pipeline_id: uuid.UUID | None = None) -> None:
    """PYTHON pipelines reload in full; a SQL pipeline has no tasks (they would silently not run)."""
    from .tasks import count_tasks

    if pipeline_type == "PYTHON" and mode != "full":
        raise InvalidPipeline("PYTHON pipelines load in full mode only")
    if pipeline_type != "PYTHON" and pipeline_id is not None and (tasks := count_tasks(session, pipeline_id)):
        raise InvalidPipeline(f"this pipeline has {tasks} task(s), which only PYTHON pipelines run: "
                              "remove them first (PUT .../tasks with [])")




def pipeline_settings(session: Session, pipeline_id: uuid.UUID) -> dict[str, Any]:
    """Everything beyond PipelineOut's keys a client may need, the source connection first."""
    from ..db.models import SourceConnection

    pipeline = get_pipeline(session, pipeline_id)
    connection = session.get(SourceConnection, pipeline.source_connection_id) if pipeline.source_connection_id else None
    return {
        "pipeline_id": pipeline.id,
        "name": pipeline.name,
        "source_connection": {"id": connection.id, "name": connection.name} if connection else None,
        "source_query": pipeline.source_query,
        "incremental_key": pipeline.incremental_key,
        "schedule": pipeline.schedule,
        "required_label": pipeline.required_label,
        "created_at": pipeline.created_at,
        "updated_at": pipeline.updated_at,
    }
