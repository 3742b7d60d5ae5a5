"""What a document says about each kind of object, one table per kind: a new configurable field is
one `Setting` line (and, when a new service writes it, one writer in apply.py).

Both sides of a plan go through these tables: the database's objects are read into the same
normalised dicts a document is loaded into, so comparing them is comparing dicts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...db.models import Pipeline, SourceConnection
from .. import checks as check_service
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
)


def conventional_password_env(connection_name: str) -> str:
    """The variable an exported connection's password is read from (the service keeps no such name)."""
    return "ETL_CONNECTION_" + re.sub(r"[^A-Za-z0-9]+", "_", connection_name).strip("_").upper() + "_PASSWORD"


def _password_env(session: Session, connection: SourceConnection) -> str | None:
    return conventional_password_env(connection.name) if connection.password_token is not None else None


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
    # Not compared as a value: the password itself is (apply.py), without ever being shown.
    Setting("password_env", read=_password_env, writer="password"),
)


@dataclass(frozen=True)
class Kind:
    """One section of the document (`pipelines:`, `connections:`) and how to read its objects."""

    section: str
    label: str  # in messages: "pipeline 'x'"
    model: type
    settings: tuple[Setting, ...]
    compared: tuple[str, ...] = field(default=())  # settings a plan diffs (default: all)

    def diffed(self) -> tuple[Setting, ...]:
        return tuple(s for s in self.settings if not self.compared or s.name in self.compared)

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


CONNECTIONS = Kind("connections", "connection", SourceConnection, CONNECTION_SETTINGS,
                   compared=tuple(s.name for s in CONNECTION_SETTINGS if s.name != "password_env"))
PIPELINES = Kind("pipelines", "pipeline", Pipeline, PIPELINE_SETTINGS)
# Applied in this order (a pipeline names its connection); deleted in the reverse one.
KINDS: tuple[Kind, ...] = (CONNECTIONS, PIPELINES)
