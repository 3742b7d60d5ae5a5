"""GET /api/v1/audit: who did what, newest first, in keyset pages (beyond the v1 contract)."""
from __future__ import annotations

from datetime import datetime, timezone

import marshmallow as ma

from ..services import audit as audit_service
from . import Blueprint
from .context import db_session
from .. import pagination
from .errors import RequestValidationFailed, validation_error
from .parsing import next_page_link, query_cursor
from .schemas import DetailErrorSchema, UtcDateTime, _Input
from . import fields

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/api/v1/audit",
    description="The audit log: every state-changing action, who made it and from where (read-only).",
)

DEFAULT_PAGE = 50
# Empty means none, as for the cursor.
SINCE_PATTERN = r"^([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"


class AuditQuerySchema(_Input):
    object = fields.String(metadata={"description": "An object's id or name (a pipeline, a connection…)"})
    actor = fields.String(metadata={"description": "A token's name, a console user, 'anonymous' or 'system'"})
    action = fields.String(metadata={"description": "An action (pipeline.patch), or a prefix ending in '.' (pipeline.)"})
    # Documented as RFC 3339's date-time without its leap second and lower-case "z", which Python's
    # reader refuses; ISO 8601's other forms (no offset: UTC, a date alone...) are read too. Or empty,
    # which means none (a date-time format alone would call "" invalid, and it is accepted).
    since = fields.String(metadata={"description": "ISO-8601 time; entries at or after it (UTC when no offset)",
                                    "pattern": SINCE_PATTERN,
                                    "anyOf": [{"format": "date-time"}, {"maxLength": 0}]})
    limit = fields.Integer(load_default=DEFAULT_PAGE, ge=1, le=500, metadata={"description": "Page size"})
    # Empty means none (the first page), as it always has here.
    cursor = fields.String(metadata={"description": "Opaque cursor from the previous page's Link header",
                                     "pattern": f"^({pagination.BIGINT_CURSOR_PATTERN[1:-1]})?$"})


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    at = UtcDateTime()
    actor = ma.fields.String()
    actor_kind = ma.fields.String(metadata={"enum": list(audit_service.ACTOR_KINDS)})
    client_addr = ma.fields.String(allow_none=True)
    action = ma.fields.String()
    object_type = ma.fields.String()
    object_id = ma.fields.String(allow_none=True)
    object_name = ma.fields.String(allow_none=True)
    before = ma.fields.Raw(allow_none=True, metadata={"type": "object", "description": "Secrets shown as ***"})
    after = ma.fields.Raw(allow_none=True, metadata={"type": "object", "description": "Secrets shown as ***"})
    request_id = ma.fields.String(allow_none=True)


def parse_since(value: str) -> datetime:
    try:
        since = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise RequestValidationFailed(
            [validation_error("datetime_from_date_parsing", ["query", "since"],
                              "Input should be a valid datetime, e.g. 2026-11-29T10:00:00Z", value)]
        ) from None
    if since.tzinfo is None:
        return since.replace(tzinfo=timezone.utc)
    # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows up to ±23:59. An instant
    # outside datetime's range in UTC is before (or after) every entry.
    try:
        return since.astimezone(timezone.utc)
    except OverflowError:
        return (datetime.min if since.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


@blp.route("", methods=["GET"])
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditEntrySchema(many=True))
@blp.alt_response(422, description="FastAPI-style validation errors", schema=DetailErrorSchema)
def list_audit(query):
    """Audit entries, newest first. Filters: `object` (id or name), `actor`, `action`, `since`.
    When more follow, a `Link: <...&cursor=...>; rel="next"` header gives the next page."""
    parsed = dict(query)
    limit = query["limit"]
    entries = audit_service.list_entries(
        db_session(),
        object=query.get("object"),
        actor=query.get("actor"),
        action=query.get("action"),
        since=parse_since(query["since"]) if query.get("since") else None,
        before=query_cursor(query["cursor"], pagination.bigint_key) if query.get("cursor") else None,
        limit=limit + 1,  # one more tells whether a next page exists
    )
    if len(entries) > limit:
        entries = entries[:limit]
        return entries, next_page_link(parsed, entries[-1].at, entries[-1].id)
    return entries
