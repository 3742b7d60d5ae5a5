"""A PYTHON pipeline's ordered tasks (etl_pipeline_tasks): read, replace, and check before any run.

Saving checks everything a run would meet before its first row: each kind is installed, each config
fits its transform's schema, each task accepts the columns the one before it returns, and the last
task's columns fit the target table. No HTTP here.
"""
from __future__ import annotations

import uuid
from typing import Any

import psycopg2
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..db.models import Pipeline, PipelineStatus, PipelineTask
from . import audit
from .connections import SourceAccess, effective_connection_id, resolve_source
from .errors import InvalidPipeline, InvalidSourceQuery, PipelineBusy, SourceUnreachable
from .pipelines import get_pipeline
from .sql_guard import check_source_query

PYTHON = "PYTHON"
MAX_TASKS = 50


class InvalidTasks(InvalidPipeline):
    """Tasks that cannot run: an unknown kind, a bad config, a column problem (400)."""


def list_tasks(session: Session, pipeline_id: uuid.UUID) -> list[dict[str, Any]]:
    get_pipeline(session, pipeline_id)
    return task_list(session, pipeline_id)


def task_list(session: Session, pipeline_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(PipelineTask).where(PipelineTask.pipeline_id == pipeline_id).order_by(PipelineTask.position)
    )
    return [{"position": row.position, "kind": row.kind, "config": row.config or {}} for row in rows]


def count_tasks(session: Session, pipeline_id: uuid.UUID) -> int:
    return len(task_list(session, pipeline_id))


def replace_tasks(
    session: Session,
    pipeline_id: uuid.UUID,
    tasks: list[dict[str, Any]],
    *,
    source_access: SourceAccess | None = None,
    default_source_dsn: str | None = None,
) -> list[dict[str, Any]]:
    """Replace the whole ordered list (positions 1..n in the order given). With a source to ask
    (default_source_dsn, or the pipeline's connection through source_access) the columns are
    checked end to end; without one only kinds and configs are."""
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    if pipeline.status == PipelineStatus.RUNNING:
        raise PipelineBusy()
    if tasks and pipeline.type != PYTHON:
        raise InvalidTasks(f"tasks run only in PYTHON pipelines; this one is type {pipeline.type} "
                           "(PATCH its type to PYTHON first)")
    if len(tasks) > MAX_TASKS:
        raise InvalidTasks(f"at most {MAX_TASKS} tasks per pipeline")
    loaded = check_tasks(tasks)
    if loaded:
        source_columns = describe_source(session, pipeline, source_access, default_source_dsn)
        if source_columns is not None:
            check_task_columns(session, loaded, source_columns, pipeline.target_table)
    before = [{"kind": task["kind"], "config": task["config"]} for task in task_list(session, pipeline.id)]
    session.execute(delete(PipelineTask).where(PipelineTask.pipeline_id == pipeline.id))
    for position, (kind, config, _transform) in enumerate(loaded, start=1):
        session.add(PipelineTask(id=uuid.uuid4(), pipeline_id=pipeline.id, position=position, kind=kind, config=config))
    audit.record(session, "pipeline.tasks.put", object_type="pipeline", object_id=pipeline.id,
                 object_name=pipeline.name, before={"tasks": before},
                 after={"tasks": [{"kind": kind, "config": config} for kind, config, _ in loaded]})
    session.flush()
    return task_list(session, pipeline.id)


def recheck_tasks(session: Session, pipeline: Pipeline, *, source_access: SourceAccess | None = None,
                  default_source_dsn: str | None = None) -> None:
    """The saved tasks against a pipeline's changed query, target or source (before its commit)."""
    saved = task_list(session, pipeline.id)
    if not saved:
        return
    try:
        loaded = check_tasks(saved)
        source_columns = describe_source(session, pipeline, source_access, default_source_dsn)
        if source_columns is not None:
            check_task_columns(session, loaded, source_columns, pipeline.target_table)
    except Exception:
        raise


def check_tasks(tasks: list[dict[str, Any]]) -> list[tuple[str, dict, Any]]:
    """Kinds and configs; returns (kind, loaded config, transform instance) per task."""
    from ..transforms import TransformConfigInvalid, UnknownTransform, installed_transforms  # pyarrow: when used

    installed = installed_transforms()
    loaded = []
    for position, task in enumerate(tasks, start=1):
        kind = task["kind"]
        if kind not in installed:
            raise InvalidTasks(f"task {position}: {UnknownTransform(kind, list(installed))}")
        transform = installed[kind]
        try:
            config = transform.load_config(task.get("config") or {})
        except TransformConfigInvalid as error:
            raise InvalidTasks(f"task {position} ({kind}): invalid config: {error}") from None
        # What is stored is what the user sent (defaults stay defaults if a transform's change them).
        loaded.append((kind, task.get("config") or {}, transform(config)))
    return loaded


def check_task_columns(session: Session, loaded, source_columns: list[str], target_table: str) -> list[str]:
    """Each task takes the previous one's columns; the last ones must fit the target table."""
    from ..transforms import ColumnsRefused
    from ..warehouse.load import LoadError
    from ..warehouse.target import check_columns, target_columns

    columns = list(source_columns)
    for position, (kind, _config, transform) in enumerate(loaded, start=1):
        try:
            columns = transform.prepare(columns)
        except ColumnsRefused as error:
            raise InvalidTasks(f"task {position} ({kind}): {error}") from None
    cursor = session.connection().connection.cursor()
    try:
        check_columns(target_table, columns, target_columns(cursor, target_table))
    except LoadError as error:
        if "does not exist" not in str(error):  # a target elsewhere (ETL_WAREHOUSE_URL): the run checks it
            raise InvalidTasks(f"after the last task: {error}") from None
    finally:
        cursor.close()
    return columns


def describe_source(session: Session, pipeline: Pipeline, access: SourceAccess | None,
                    default_source_dsn: str | None) -> list[str] | None:
    """The source query's column names, asked of the source as the pipeline's own login (READ ONLY,
    LIMIT 0); None when there is no source to ask here."""
    from ..warehouse.source import describe, open_read_only
    from ..warehouse.source_probe import connect_source, first_line
    from ..warehouse.load import LoadError

    query = check_source_query(pipeline.source_query)
    # The pipeline's own connection, else the deployment's default one (ETL_DEFAULT_SOURCE_CONNECTION),
    # as the runner will read it; without either, the default source login.
    connection_id = effective_connection_id(session, access, pipeline.source_connection_id)
    if connection_id is not None:
        if access is None:
            return None
        resolved = resolve_source(session, access, connection_id)
        dsn, name, timeout_s = resolved.dsn, f"source connection '{resolved.name}'", access.timeout_s
    elif default_source_dsn:
        dsn, name, timeout_s = default_source_dsn, "the default source", access.timeout_s if access else 10.0
    else:
        return None
    try:
        source = connect_source(dsn, timeout_s, application_name="etl-console task check")
    except psycopg2.Error as error:
        raise SourceUnreachable(f"{name} is unreachable: {first_line(error)}") from None
    try:
        return [column.name for column in describe(open_read_only(source, timeout_s), query)]
    except LoadError as error:
        raise InvalidSourceQuery(f"{error} (on {name})") from None
    finally:
        source.close()
