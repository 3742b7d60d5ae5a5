"""What a document says about each kind of object, one table per kind: a new configurable field is
one `Setting` line (and, when a new service writes it, one writer in apply.py).

Both sides of a plan go through these tables: the database's objects are read into the same
normalised dicts a document is loaded into, so comparing them is comparing dicts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...db.models import AlertChannel, Pipeline, PipelineAlert, SourceConnection
from .. import checks as check_service
from ..alert_events import EVENT_KINDS
from ..dependencies import upstreams_of
from ..tasks import task_list

Reader = Callable[[Session, Any], Any]


def _column(name: str) -> Reader:
    return lambda session, obj: getattr(obj, name)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any = None
    read: Reader | None = None  # None: the model's column of the same name
    writer: str = "object"  # which service writes it (apply.py): the object's own create/update, or another
    omit_default: bool = True  # export leaves it out at its default (absent means default on the way back)

    def value(self, session: Session, obj: Any) -> Any:
        return (self.read or _column(self.name))(session, obj)


def _source_connection_name(session: Session, pipeline: Pipeline) -> str | None:
    if pipeline.source_connection_id is None:
        return None
    return session.scalar(select(SourceConnection.name).where(SourceConnection.id == pipeline.source_connection_id))


def _tasks(session: Session, pipeline: Pipeline) -> list[dict]:
    return [{"kind": task["kind"], "config": task["config"]} for task in task_list(session, pipeline.id)]


def _checks(session: Session, pipeline: Pipeline) -> dict:
    stored = check_service.checks_of(session, pipeline.id)
    return {key: stored[key] for key in check_service.DEFAULT_CHECKS}


def _alerts(session: Session, pipeline: Pipeline) -> list[dict]:
    rows = session.execute(
        select(AlertChannel.name, PipelineAlert.events).join(AlertChannel, AlertChannel.id == PipelineAlert.channel_id)
        .where(PipelineAlert.pipeline_id == pipeline.id).order_by(AlertChannel.name))
    return [{"channel": name, "events": list(events)} for name, events in rows]


def _upstreams(session: Session, pipeline: Pipeline) -> list[str]:
    return sorted(upstream.name for upstream in upstreams_of(session, pipeline.id))


def normalise_alerts(subscriptions: list[dict]) -> list[dict]:
    """By channel name, each channel once, its events once each in the service's order."""
    merged: dict[str, set[str]] = {}
    for item in subscriptions:
        merged.setdefault(item["channel"], set()).update(item["events"])
    return [{"channel": name, "events": sorted(events, key=EVENT_KINDS.index)} for name, events in sorted(merged.items())]


PIPELINE_SETTINGS: tuple[Setting, ...] = (
    Setting("name", omit_default=False),
    Setting("description"),
    Setting("type", "SQL", omit_default=False),
    Setting("mode", "full", omit_default=False),
    Setting("enabled", True, omit_default=False),
    Setting("target_table", omit_default=False),
    Setting("batch_size", 1000, omit_default=False),
    Setting("source_query", omit_default=False),
    Setting("incremental_key"),
    Setting("required_label"),
    Setting("source_connection", read=_source_connection_name),
    Setting("schedule", writer="schedule"),
    Setting("tasks", default=[], read=_tasks, writer="tasks"),
    Setting("checks", default=dict(check_service.DEFAULT_CHECKS), read=_checks, writer="checks"),
    Setting("max_retries", 0, writer="retries"),
    Setting("retry_initial_delay_s", 60.0, writer="retries"),
    Setting("retry_backoff_factor", 2.0, writer="retries"),
    Setting("retry_max_delay_s", 3600.0, writer="retries"),
    Setting("retry_jitter", 0.1, writer="retries"),
    Setting("auto_pause_after_failures", writer="retries"),
    Setting("freshness_minutes", writer="alerts"),
    Setting("alerts", default=[], read=_alerts, writer="alerts"),
    Setting("upstreams", default=[], read=_upstreams, writer="upstreams"),
)


@dataclass(frozen=True)
class Secret:
    """A write-only value of an object: the document names the variable it is read from (env_setting),
    the database keeps it encrypted (token_column), a plan shows only whether it changes (shown)."""

    env_setting: str  # password_env
    token_column: str  # password_token
    shown: str  # password: the service's own key for the value, and the word a plan shows
    prefix: str  # ETL_CONNECTION_

    def conventional_env(self, name: str) -> str:
        """The variable an exported object's secret is read from (the service keeps no such name)."""
        return self.prefix + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper() + "_" + self.shown.upper()

    def reader(self) -> Reader:
        return lambda session, obj: (
            self.conventional_env(obj.name) if getattr(obj, self.token_column) is not None else None)


PASSWORD = Secret("password_env", "password_token", "password", "ETL_CONNECTION_")
WEBHOOK_SECRET = Secret("secret_env", "secret_token", "secret", "ETL_ALERT_CHANNEL_")


CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting("name", omit_default=False),
    Setting("description"),
    Setting("host", omit_default=False),
    Setting("port", 5432, omit_default=False),
    Setting("database", omit_default=False),
    Setting("user", omit_default=False),
    Setting("sslmode"),
    Setting("options"),
    Setting("statement_timeout_s"),
    Setting("max_concurrent_runs"),
    Setting("required_label"),
    # Not compared as a value: the password itself is (plan.py), without ever being shown.
    Setting("password_env", read=PASSWORD.reader(), writer="secret"),
)

ALERT_CHANNEL_SETTINGS: tuple[Setting, ...] = (
    Setting("name", omit_default=False),
    Setting("kind", omit_default=False),
    Setting("url"),
    Setting("email"),
    Setting("enabled", True, omit_default=False),
    Setting("secret_env", read=WEBHOOK_SECRET.reader(), writer="secret"),
)


@dataclass(frozen=True)
class Kind:
    """One section of the document (`pipelines:`, `connections:`) and how to read its objects."""

    section: str
    label: str  # in messages: "pipeline 'x'"
    model: type
    settings: tuple[Setting, ...]
    secret: Secret | None = None

    def diffed(self) -> tuple[Setting, ...]:
        """What a plan compares value by value (a secret is compared apart, never shown)."""
        return tuple(s for s in self.settings if s.writer != "secret")

    def read_all(self, session: Session, names: list[str] | None = None) -> dict[str, dict]:
        query = select(self.model).order_by(self.model.name)
        if names is not None:
            query = query.where(self.model.name.in_(names))
        return {obj.name: self.read(session, obj) for obj in session.scalars(query)}

    def read(self, session: Session, obj: Any) -> dict:
        return {setting.name: setting.value(session, obj) for setting in self.settings}

    def normalise(self, item: dict) -> dict:
        """A loaded document item with every setting present (absent ones at their default)."""
        return {setting.name: item.get(setting.name, _copy(setting.default)) for setting in self.settings}

    def exported(self, values: dict) -> dict:
        return {
            setting.name: values[setting.name]
            for setting in self.settings
            if not (setting.omit_default and values[setting.name] in (None, setting.default))
        }


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


CONNECTIONS = Kind("connections", "connection", SourceConnection, CONNECTION_SETTINGS, PASSWORD)
ALERT_CHANNELS = Kind("alert_channels", "alert_channel", AlertChannel, ALERT_CHANNEL_SETTINGS, WEBHOOK_SECRET)
PIPELINES = Kind("pipelines", "pipeline", Pipeline, PIPELINE_SETTINGS)
# Created in this order (a pipeline names its connection and its alert channels); deleted pipelines first.
KINDS: tuple[Kind, ...] = (CONNECTIONS, ALERT_CHANNELS, PIPELINES)
