"""The console's audit pages: /audit (every recorded action, with the API's filters, newest first,
older pages by keyset cursor) and the pipeline page's "History of changes" panel (through the
`pipeline_changes` template function, so the page renders it on the server like its other panels)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import flask

from .. import pagination
from ..api.context import db_session
from ..db.models import AuditEntry
from ..services import audit as audit_service

bp = flask.Blueprint("console_audit", __name__)

PAGE_SIZE = 50
PANEL_SIZE = 10
FILTERS = ("object", "actor", "action", "since")
# Offered in the action box (any action, or a prefix ending in '.', may be typed).
KNOWN_ACTIONS = (
    "pipeline.", "pipeline.create", "pipeline.patch", "pipeline.run", "pipeline.pause", "pipeline.tasks.put",
    "pipeline.checks.put", "pipeline.schedule.set", "pipeline.state.set", "pipeline.state.reset",
    "connection.", "alert_channel.", "login.success", "login.failure", "config.apply", "audit.prune",
)


@dataclass
class Change:
    field: str
    before: str | None
    after: str | None


@dataclass
class EntryView:
    entry: AuditEntry
    changes: list[Change]


def entry_view(entry: AuditEntry) -> EntryView:
    """Before and after side by side, one line per field; values other than text as compact JSON."""
    before, after = entry.before or {}, entry.after or {}
    fields = list(dict.fromkeys([*before, *after]))
    return EntryView(entry, [Change(name, _shown(before, name), _shown(after, name)) for name in fields])


def _shown(values: dict, name: str) -> str | None:
    if name not in values:
        return None
    value = values[name]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _parse_since(value: str) -> datetime:
    """ISO-8601 or the browser's datetime-local ("2026-11-29T10:00"); UTC without an offset."""
    since = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    return since if since.tzinfo else since.replace(tzinfo=timezone.utc)


@bp.get("/audit")
def audit_log():
    args = flask.request.args
    filters = {name: args.get(name, "").strip() for name in FILTERS}
    if any("\x00" in value for value in filters.values()):
        flask.abort(400)  # PostgreSQL text cannot hold NUL: no such entry could match
    error, bad_since = None, False
    try:
        since = _parse_since(filters["since"]) if filters["since"] else None
    except ValueError:
        since, bad_since = None, True
        error = f"'{filters['since']}' is not a time: use e.g. 2026-11-29T10:00 (UTC)."
    try:
        before = pagination.decode_cursor(args["before"], pagination.bigint_key) if args.get("before") else None
    except ValueError:
        before, error = None, "That page link is broken: showing the newest entries."
    entries = [] if bad_since else audit_service.list_entries(
        db_session(), object=filters["object"] or None, actor=filters["actor"] or None,
        action=filters["action"] or None, since=since, before=before, limit=PAGE_SIZE + 1)
    older = None
    if len(entries) > PAGE_SIZE:
        entries = entries[:PAGE_SIZE]
        older = flask.url_for("console_audit.audit_log", **{k: v for k, v in filters.items() if v},
                              before=pagination.encode_cursor(entries[-1].at, entries[-1].id))
    body = flask.render_template(
        "console/audit.html", entries=[entry_view(e) for e in entries], filters=filters, error=error,
        older=older, newest=flask.url_for("console_audit.audit_log", **{k: v for k, v in filters.items() if v})
        if before else None, known_actions=KNOWN_ACTIONS,
    )
    return body, 400 if bad_since else 200


@bp.app_context_processor
def _panel_function() -> dict[str, Any]:
    def pipeline_changes(pipeline_id) -> list[EntryView]:
        """The pipeline's latest recorded actions, for its "History of changes" panel."""
        return [entry_view(e) for e in audit_service.list_entries(db_session(), object=str(pipeline_id),
                                                                   limit=PANEL_SIZE)]

    return {"pipeline_changes": pipeline_changes, "audit_panel_size": PANEL_SIZE}
