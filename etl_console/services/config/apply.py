"""Carry a plan out in one transaction, through the same services the API calls.

The services commit their own work; here they run in a Session joined to an outer transaction in
"create_savepoint" mode, so each of their commits only releases a savepoint and the outer
transaction, committed at the end or rolled back on the first refusal, makes the whole document
all or nothing. `plan` runs the very same steps and always rolls back: its errors are apply's.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ...db.models import Pipeline, PipelineStatus
from .. import audit
from .. import checks as check_service
from .. import connections as connection_service
from .. import pipelines as pipeline_service
from .. import schedules as schedule_service
from .. import tasks as task_service
from ..connections import SourceAccess
from ..errors import DomainError, PipelineBusy
from ..runs import active_run
from .errors import ConfigBusy, ConfigRefused
from .plan import Change, Plan, diff, load
from .registry import CONNECTIONS, PIPELINES


@dataclass(frozen=True)
class ConfigContext:
    """What the services need besides the session, as the API's views hand it to them."""

    allowed_targets: tuple[str, ...]
    source_access: SourceAccess | None = None
    default_source_dsn: str | None = None  # where a PYTHON pipeline's tasks are checked
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)  # password_env is read here


def context_for(config, database, *, environ: Mapping[str, str] | None = None
                ) -> ConfigContext:
    """The context from the service's Config and Database, as the API and the CLI both build it."""
    from ...db.secret_box import box_for

    access = SourceAccess(box_for(config), config.connection_test_timeout_s, config.default_source_connection)
    return ConfigContext(tuple(config.allowed_target_tables), access, database.source_dsn,
                         os.environ if environ is None else environ)


def plan(engine: Engine, document: str | bytes | dict, context: ConfigContext, *, prune: bool = False) -> Plan:
    """What apply would do; raises what apply would raise (except that a RUNNING pipeline is a warning)."""
    desired = load(document, context.allowed_targets)
    with _transaction(engine) as session:
        result = diff(session, desired, prune=prune, context=context)
        busy = _busy(session, result)
        result.warnings += [f"pipeline '{name}' is RUNNING: apply will refuse until its run ends" for name in busy]
        _execute(session, result, context, skip=set(busy))
    return result  # _transaction rolled it all back


def apply(engine: Engine, document: str | bytes | dict, context: ConfigContext, *, prune: bool = False) -> Plan:
    """Apply the document, all or nothing; ConfigBusy when a pipeline to change or delete is RUNNING."""
    desired = load(document, context.allowed_targets)
    with _transaction(engine, commit=True) as session:
        _lock_pipelines(session)
        result = diff(session, desired, prune=prune, context=context)
        if busy := _busy(session, result):
            raise ConfigBusy(f"Cannot apply the configuration: pipeline(s) {', '.join(map(repr, busy))} "
                             "RUNNING would be changed or deleted; nothing was changed (retry when the run ends, "
                             "or pause the pipeline first)")
        _execute(session, result, context)
        if result.has_changes:
            _audit(session, result, context)
    return result


@contextmanager
def _transaction(engine: Engine, *, commit: bool = False):
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
            if commit:
                session.commit()  # releases the last savepoint into the outer transaction
                outer.commit()
        finally:
            session.close()
            if outer.is_active:
                outer.rollback()


def _lock_pipelines(session: Session) -> None:
    """Every pipeline, before reading them: a run or a PATCH arriving meanwhile waits for this
    transaction, then sees its result (one order, by id, so two applies cannot deadlock)."""
    session.execute(select(Pipeline.id).order_by(Pipeline.id).with_for_update())


def _busy(session: Session, result: Plan) -> list[str]:
    names = [c.name for c in result.changes if c.kind == PIPELINES.label and c.action != "create"]
    busy = []
    for name in names:
        pipeline = session.scalars(select(Pipeline).where(Pipeline.name == name)).one()
        if pipeline.status == PipelineStatus.RUNNING or active_run(session, pipeline.id) is not None:
            busy.append(name)
    return busy


def _execute(session: Session, result: Plan, context: ConfigContext, skip: Iterable[str] = ()) -> None:
    skip = set(skip)
    for change in result.changes:
        if change.name in skip and change.kind == PIPELINES.label:
            continue
        item = result.document.get(_section(change.kind), {}).get(change.name)
        try:
            STEPS[(change.kind, change.action)](session, change, item, context)
        except PipelineBusy as error:
            raise ConfigBusy(f"{change.kind} '{change.name}': {error}; nothing was changed") from None
        except DomainError as error:
            raise ConfigRefused(f"{change.kind} '{change.name}': {error}; nothing was changed") from None


def _section(kind_label: str) -> str:
    return {CONNECTIONS.label: CONNECTIONS.section, PIPELINES.label: PIPELINES.section}[kind_label]


# connections -----------------------------------------------------------------------------------
def _connection_values(item: dict, context: ConfigContext, *, creating: bool) -> dict[str, Any]:
    values = {s.name: item[s.name] for s in CONNECTIONS.settings if s.writer == "object"}
    variable = item["password_env"]
    if variable is None:
        values["password"] = None
    elif variable in context.environ:
        values["password"] = context.environ[variable]
    elif creating:
        raise ConfigRefused(f"password_env: the environment variable {variable} is not set")
    return values


def _create_connection(session: Session, change: Change, item: dict, context: ConfigContext) -> None:
    connection_service.create_connection(session, _box(context), _connection_values(item, context, creating=True))


def _update_connection(session: Session, change: Change, item: dict, context: ConfigContext) -> None:
    connection = connection_service.find_connection(session, change.name)
    values = _connection_values(item, context, creating=False)
    changed = {f.field for f in change.fields}
    updates = {key: value for key, value in values.items() if key in changed}
    if "password" in changed and "password" in values:
        updates["password"] = values["password"]
    connection_service.update_connection(session, _box(context), connection.id, updates)


def _delete_connection(session: Session, change: Change, item: dict, context: ConfigContext) -> None:
    connection_service.delete_connection(session, connection_service.find_connection(session, change.name).id)


def _box(context: ConfigContext):
    if context.source_access is None:
        raise ConfigRefused("connections need the service's connection key (ETL_CONNECTION_KEY)")
    return context.source_access.box


# pipelines -------------------------------------------------------------------------------------
def _create_pipeline(session: Session, change: Change, item: dict, context: ConfigContext) -> None:
    data = {s.name: item[s.name] for s in PIPELINES.settings if s.writer == "object"}
    pipeline = pipeline_service.create_pipeline(session, context.allowed_targets, data,
                                                source_access=context.source_access)
    for writer in ("schedule", "tasks", "checks"):
        if any(s.writer == writer and item[s.name] != s.default for s in PIPELINES.settings):
            WRITERS[writer](session, pipeline.id, item, context)


def _update_pipeline(session: Session, change: Change, item: dict, context: ConfigContext) -> None:
    pipeline_id = session.scalar(select(Pipeline.id).where(Pipeline.name == change.name))
    writers = {s.name: s.writer for s in PIPELINES.settings}
    changed = {f.field for f in change.fields}
    groups = {writers[name] for name in changed}
    # Tasks are removed before a PYTHON pipeline becomes SQL, and added after a SQL one becomes PYTHON.
    tasks_first = "tasks" in groups and not item["tasks"]
    if tasks_first:
        WRITERS["tasks"](session, pipeline_id, item, context)
    if "object" in groups:
        pipeline_service.update_pipeline(
            session, context.allowed_targets, pipeline_id,
            {name: item[name] for name in changed if writers[name] == "object"},
            source_access=context.source_access, default_source_dsn=context.default_source_dsn,
        )
    for writer in ("schedule", "tasks", "checks"):
        if writer in groups and not (writer == "tasks" and tasks_first):
            WRITERS[writer](session, pipeline_id, item, context)


def _delete_pipeline(session: Session, change: Change, item: dict, context: ConfigContext) -> None:
    pipeline = session.scalars(select(Pipeline).where(Pipeline.name == change.name)).one()
    audit.record(session, "pipeline.delete", object_type="pipeline", object_id=pipeline.id, object_name=pipeline.name,
                 before=PIPELINES.read(session, pipeline))
    session.delete(pipeline)  # its runs, state, tasks and checks go with it (the metadata's own FKs)
    session.flush()


WRITERS = {
    "schedule": lambda session, pid, item, context: schedule_service.set_schedule(session, pid, item["schedule"]),
    "tasks": lambda session, pid, item, context: task_service.replace_tasks(
        session, pid, item["tasks"], source_access=context.source_access,
        default_source_dsn=context.default_source_dsn),
    "checks": lambda session, pid, item, context: check_service.set_checks(session, pid, item["checks"]),
}

STEPS = {
    ("connection", "create"): _create_connection,
    ("connection", "update"): _update_connection,
    ("connection", "delete"): _delete_connection,
    ("pipeline", "create"): _create_pipeline,
    ("pipeline", "update"): _update_pipeline,
    ("pipeline", "delete"): _delete_pipeline,
}


def _audit(session: Session, result: Plan, context: ConfigContext) -> None:
    """One config.apply row, besides the rows the services wrote for each object they changed."""
    audit.record(session, "config.apply", object_type="config", after={
        "summary": result.summary(),
        "changes": [{"kind": c.kind, "name": c.name, "action": c.action, "fields": [f.field for f in c.fields]}
                    for c in result.changes],
    })
    session.flush()
