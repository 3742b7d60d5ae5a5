"""Validate a document and compare it with the database: what would be created, changed field by
field, and (with prune) deleted. Nothing here writes; apply.py carries a plan out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy.orm import Session

from .. import checks as check_service
from ..errors import DomainError
from ..schedules import validate as validate_schedule
from ..sql_guard import check_source_query
from . import yaml_io
from .errors import ConfigDocumentInvalid
from .registry import KINDS, PIPELINES, Kind, normalise_alerts

SECRET_SETTINGS = ("password",)  # shown as set / not set / changed, never as a value


@dataclass
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass
class Change:
    kind: str  # "connection" | "pipeline"
    name: str
    action: str  # "create" | "update" | "delete"
    fields: list[FieldChange] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "action": self.action,
                "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in self.fields]}


@dataclass
class Plan:
    changes: list[Change]
    warnings: list[str] = field(default_factory=list)
    document: dict = field(default_factory=dict, repr=False)  # normalised desired state, per section and name

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def summary(self) -> dict:
        return {action: self.count(action) for action in ("create", "update", "delete")}

    def as_dict(self) -> dict:
        return {"changes": [c.as_dict() for c in self.changes], "summary": self.summary(), "warnings": self.warnings}

    def render(self, *, warnings: bool = True) -> str:
        """The plan as a person reads it in a terminal or a CI log."""
        lines = []
        marks = {"create": "+", "update": "~", "delete": "-"}
        for change in self.changes:
            lines.append(f"{marks[change.action]} {change.kind} {change.name}")
            for item in change.fields:
                if change.action == "create":
                    lines.append(f"    {item.field}: {_show(item.new)}")
                else:
                    lines.append(f"    {item.field}: {_show(item.old)} -> {_show(item.new)}")
        lines += [f"warning: {warning}" for warning in self.warnings] if warnings else []
        summary = self.summary()
        if not self.changes:
            lines.append("No changes: the database matches the document.")
        else:
            lines.append(f"Plan: {summary['create']} to create, {summary['update']} to change, "
                         f"{summary['delete']} to delete.")
        return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    if isinstance(value, str) and "\n" in value:
        return repr(value)
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, sort_keys=True)
    return "null" if value is None else str(value) if not isinstance(value, bool) else str(value).lower()


# validating -------------------------------------------------------------------------------------
def load(document: str | bytes | dict, allowed_targets: Iterable[str],
         load_document: Callable[[Any], dict]) -> dict[str, dict[str, dict]]:
    """The whole document checked at once (load_document: the API's input schemas, then the
    services' own cheap checks), as {section: {name: normalised item}}; ConfigDocumentInvalid lists
    every problem found."""
    import marshmallow as ma

    raw = yaml_io.parse(document) if isinstance(document, (str, bytes)) else document
    problems: list[tuple[tuple, str]] = []
    try:
        loaded = load_document(raw)
    except ma.ValidationError as error:
        problems += _schema_problems(error.messages, raw)
        raise ConfigDocumentInvalid(problems) from None
    desired: dict[str, dict[str, dict]] = {}
    for kind in KINDS:
        desired[kind.section] = {}
        for item in loaded[kind.section]:
            name = item["name"]
            if name in desired[kind.section]:
                problems.append(((kind.section, name), f"{kind.label} '{name}' appears twice"))
                continue
            normalised = kind.normalise(item)
            problems += [((kind.section, name, key), message)
                         for key, message in _service_checks(kind, normalised, tuple(allowed_targets))]
            desired[kind.section][name] = normalised
    if problems:
        raise ConfigDocumentInvalid(problems)
    return desired


def _service_checks(kind: Kind, item: dict, allowed_targets: tuple[str, ...]) -> list[tuple[str, str]]:
    """The checks the services would make first, collected for every item instead of the first only;
    values are normalised as the services store them (so a plan compares like with like)."""
    if kind is not PIPELINES:
        return []
    problems = []

    def check(key: str, action) -> None:
        try:
            action()
        except DomainError as error:
            problems.append((key, str(error)))

    if item["target_table"] not in allowed_targets:
        problems.append(("target_table", f"target_table '{item['target_table']}' is not allowed"))
    check("source_query", lambda: check_source_query(item["source_query"]))
    if item["schedule"] is not None:
        check("schedule", lambda: item.update(schedule=validate_schedule(item["schedule"])))
    if item["checks"] is None:
        item["checks"] = dict(check_service.DEFAULT_CHECKS)
    check("checks", lambda: item.update(checks=check_service._validated({**check_service.DEFAULT_CHECKS,
                                                                          **item["checks"]})))
    item["tasks"] = [{"kind": task["kind"], "config": task.get("config") or {}} for task in item["tasks"]]
    item["alerts"] = normalise_alerts(item["alerts"])
    item["upstreams"] = sorted(set(item["upstreams"]))
    if item["name"] in item["upstreams"]:
        problems.append(("upstreams", "a pipeline cannot be its own upstream"))
    return problems


def _schema_problems(messages: Any, raw: Any, loc: tuple = ()) -> list[tuple[tuple, str]]:
    """marshmallow's nested messages, with list indexes replaced by the item's name when it has one."""
    problems = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = key
            if isinstance(key, int) and isinstance(raw, list) and key < len(raw):
                item = raw[key]
                name = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else key
            child = raw[key] if isinstance(raw, list) and isinstance(key, int) and key < len(raw) else (
                raw.get(key) if isinstance(raw, dict) else None)
            problems += _schema_problems(value, child, loc + (name,))
    elif isinstance(messages, list):
        for message in messages:
            if isinstance(message, (dict, list)):
                problems += _schema_problems(message, raw, loc)
            else:
                problems.append((loc, str(message)))
    else:
        problems.append((loc, str(messages)))
    return problems


# comparing --------------------------------------------------------------------------------------
def diff(session: Session, desired: dict[str, dict[str, dict]], *, prune: bool, context) -> Plan:
    changes: list[Change] = []
    warnings: list[str] = []
    deletes: list[Change] = []
    for kind in KINDS:
        current = kind.read_all(session)
        wanted = desired[kind.section]
        for name, item in wanted.items():
            if name not in current:
                shown = kind.exported(item)
                changes.append(Change(kind.label, name, "create",
                                      [FieldChange(key, None, value) for key, value in shown.items() if key != "name"]))
                continue
            fields = [FieldChange(s.name, current[name][s.name], item[s.name])
                      for s in kind.diffed() if current[name][s.name] != item[s.name]]
            if kind.secret is not None:
                fields += _secret_change(session, kind, name, item, context, warnings)
            if fields:
                changes.append(Change(kind.label, name, "update", fields))
        if prune:
            deletes += [Change(kind.label, name, "delete") for name in current if name not in wanted]
    for change in changes:
        secret = next(k.secret for k in KINDS if k.label == change.kind)
        if secret is not None and change.action == "create":
            change.fields = [_secret_field(secret, f) for f in change.fields]
    # Pipelines go before the connections they used.
    return Plan(changes + sorted(deletes, key=lambda c: c.kind != "pipeline"), warnings, desired)


def _secret_field(secret, item: FieldChange) -> FieldChange:
    return FieldChange(secret.shown, None, f"from ${item.new}") if item.field == secret.env_setting else item


def _secret_change(session: Session, kind: Kind, name: str, item: dict, context, warnings: list[str]
                   ) -> list[FieldChange]:
    """Compared without being shown: the stored secret (decrypted here only) with the variable's value."""
    from sqlalchemy import select

    from ...db.secret_box import SecretKeyMismatch

    secret = kind.secret
    token = session.scalar(select(getattr(kind.model, secret.token_column)).where(kind.model.name == name))
    variable, environ = item[secret.env_setting], context.environ
    if variable is None:
        return [FieldChange(secret.shown, "set", "not set")] if token is not None else []
    if variable not in environ:
        if token is None:
            return [FieldChange(secret.shown, "not set", f"from ${variable} (not set in this environment)")]
        warnings.append(f"{kind.label} '{name}': ${variable} is not set here; its stored {secret.shown} is kept")
        return []
    if token is None:
        return [FieldChange(secret.shown, "not set", f"from ${variable}")]
    try:
        same = context.source_access is not None and context.source_access.box.decrypt(token) == environ[variable]
    except SecretKeyMismatch:
        same = False
    return [] if same else [FieldChange(secret.shown, "set", f"changed (from ${variable})")]
