"""One step per (kind, action) of a plan, each through the service the API calls for the same change,
and one writer per setting group (registry.Setting.writer) besides an object's own create/update."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...db.models import AlertChannel, Pipeline
from .. import alert_channels as alert_service
from .. import audit
from .. import checks as check_service
from .. import connections as connection_service
from .. import dependencies as dependency_service
from .. import pipelines as pipeline_service
from .. import retries as retry_service
from .. import schedules as schedule_service
from .. import tasks as task_service
from .errors import ConfigRefused
from .plan import Change
from .registry import ALERT_CHANNELS, CONNECTIONS, PIPELINES, Kind

DEFERRED_WRITERS = ("upstreams",)  # they name other pipelines: written once all of them exist


def _values(kind: Kind, item: dict, context, *, creating: bool) -> dict[str, Any]:
    """The object's own settings, and its secret read from the variable the document names."""
    values = {s.name: item[s.name] for s in kind.settings if s.writer == "object"}
    secret = kind.secret
    variable = item[secret.env_setting]
    if variable is None:
        values[secret.shown] = None
    elif variable in context.environ:
        values[secret.shown] = context.environ[variable]
    elif creating:
        raise ConfigRefused(f"{secret.env_setting}: the environment variable {variable} is not set")
    return values


def _updates(kind: Kind, change: Change, item: dict, context) -> dict[str, Any]:
    values = _values(kind, item, context, creating=False)
    changed = {f.field for f in change.fields}
    return {key: value for key, value in values.items() if key in changed}


def _box(context):
    if context.source_access is None:
        raise ConfigRefused("secrets need the service's key (ETL_CONNECTION_KEY)")
    return context.source_access.box


# connections -----------------------------------------------------------------------------------
def _create_connection(session: Session, change: Change, item: dict, context) -> None:
    connection_service.create_connection(session, _box(context), _values(CONNECTIONS, item, context, creating=True))


def _update_connection(session: Session, change: Change, item: dict, context) -> None:
    connection = connection_service.find_connection(session, change.name)
    connection_service.update_connection(session, _box(context), connection.id,
                                         _updates(CONNECTIONS, change, item, context))


def _delete_connection(session: Session, change: Change, item: dict, context) -> None:
    connection_service.delete_connection(session, connection_service.find_connection(session, change.name).id)


# alert channels --------------------------------------------------------------------------------
def _channel_id(session: Session, name: str):
    return session.scalar(select(AlertChannel.id).where(AlertChannel.name == name))


def _create_channel(session: Session, change: Change, item: dict, context) -> None:
    values = _values(ALERT_CHANNELS, item, context, creating=True)
    alert_service.create_channel(session, _box(context), values, smtp_configured=context.smtp_configured)


def _update_channel(session: Session, change: Change, item: dict, context) -> None:
    updates = _updates(ALERT_CHANNELS, change, item, context)
    if "kind" in updates:
        raise ConfigRefused("kind cannot change: give the channel another name (and prune the old one)")
    alert_service.update_channel(session, _box(context), _channel_id(session, change.name), updates,
                                 smtp_configured=context.smtp_configured)


def _delete_channel(session: Session, change: Change, item: dict, context) -> None:
    alert_service.delete_channel(session, _channel_id(session, change.name))


# pipelines -------------------------------------------------------------------------------------
def _pipeline_id(session: Session, name: str):
    return session.scalar(select(Pipeline.id).where(Pipeline.name == name))


def _create_pipeline(session: Session, change: Change, item: dict, context) -> None:
    data = {s.name: item[s.name] for s in PIPELINES.settings if s.writer == "object"}
    pipeline = pipeline_service.create_pipeline(session, context.allowed_targets, data,
                                                source_access=context.source_access)
    for writer in WRITERS:
        if writer not in DEFERRED_WRITERS and _differs_from_default(writer, item):
            WRITERS[writer](session, pipeline.id, item, context)


def _differs_from_default(writer: str, item: dict) -> bool:
    return any(s.writer == writer and item[s.name] != s.default for s in PIPELINES.settings)


def _update_pipeline(session: Session, change: Change, item: dict, context) -> None:
    pipeline_id = _pipeline_id(session, change.name)
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
    for writer in WRITERS:
        if writer in groups and writer not in DEFERRED_WRITERS and not (writer == "tasks" and tasks_first):
            WRITERS[writer](session, pipeline_id, item, context)


def _write_upstreams(session: Session, change: Change, item: dict, context) -> None:
    if change.action == "create" and not item["upstreams"]:
        return
    if change.action == "update" and "upstreams" not in {f.field for f in change.fields}:
        return
    WRITERS["upstreams"](session, _pipeline_id(session, change.name), item, context)


def _delete_pipeline(session: Session, change: Change, item: dict, context) -> None:
    """No service deletes a pipeline (the v1 API has no DELETE): done here, audited as the services do."""
    pipeline = session.scalars(select(Pipeline).where(Pipeline.name == change.name)).one()
    audit.record(session, "pipeline.delete", object_type="pipeline", object_id=pipeline.id, object_name=pipeline.name,
                 before=PIPELINES.read(session, pipeline))
    session.delete(pipeline)  # its runs, state, tasks, checks and subscriptions go with it (the metadata's FKs)
    session.flush()


def _alerts(session: Session, pipeline_id, item: dict, context) -> None:
    channels = []
    for subscription in item["alerts"]:
        channel_id = _channel_id(session, subscription["channel"])
        if channel_id is None:
            raise ConfigRefused(f"alerts: alert channel '{subscription['channel']}' does not exist")
        channels.append({"channel_id": channel_id, "events": subscription["events"]})
    alert_service.put_pipeline_alerts(session, pipeline_id,
                                      {"channels": channels, "freshness_minutes": item["freshness_minutes"]})


Writer = Callable[[Session, Any, dict, Any], Any]
WRITERS: dict[str, Writer] = {
    "schedule": lambda session, pid, item, context: schedule_service.set_schedule(session, pid, item["schedule"]),
    "tasks": lambda session, pid, item, context: task_service.replace_tasks(
        session, pid, item["tasks"], source_access=context.source_access,
        default_source_dsn=context.default_source_dsn),
    "checks": lambda session, pid, item, context: check_service.set_checks(session, pid, item["checks"]),
    "retries": lambda session, pid, item, context: retry_service.set_policy(
        session, pid, {name: item[name] for name in retry_service.POLICY_FIELDS}),
    "alerts": _alerts,
    "upstreams": lambda session, pid, item, context: dependency_service.set_upstreams(session, pid, item["upstreams"]),
}

STEPS = {
    ("connection", "create"): _create_connection,
    ("connection", "update"): _update_connection,
    ("connection", "delete"): _delete_connection,
    ("alert_channel", "create"): _create_channel,
    ("alert_channel", "update"): _update_channel,
    ("alert_channel", "delete"): _delete_channel,
    ("pipeline", "create"): _create_pipeline,
    ("pipeline", "update"): _update_pipeline,
    ("pipeline", "delete"): _delete_pipeline,
}
DEFERRED_STEPS = {
    ("pipeline", "create"): _write_upstreams,
    ("pipeline", "update"): _write_upstreams,
}
