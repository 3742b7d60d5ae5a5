"""The audit log: who did what, from where, to which object, and what it was before and after.

Call `record(session, action, object_type=..., ...)` in the service that makes a change, BEFORE it
commits: the row is INSERTed in the same session and transaction, so a change that rolls back
leaves no audit row, and a committed change always has one. Who and where come from the actor
context, which the web layer sets per request (`acting_as`, `bind_actor`); anything outside a
request (the runner, the CLI) records as 'system' unless it binds its own actor.

The table is append-only for the service (a database trigger, migration 0006): the only way rows
leave is `prune`, the daily retention job, which is itself recorded as 'audit.prune'.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Iterator

from sqlalchemy import insert, select, text, tuple_
from sqlalchemy.orm import Session

from ..db.models import AuditEntry

ACTOR_KINDS = ("token", "console", "anonymous", "system")
REDACTED = "***"
# Keys whose values never reach the log (matched case-insensitively, also as a suffix: db_password).
SECRET_KEYS = ("password", "secret", "token", "api_key", "apikey", "credentials")
PRUNE_EVERY = timedelta(days=1)
_PRUNE_LOCK_KEY = 0x45544C_4155444954  # 'ETL' 'AUDIT': one prune at a time across runners


@dataclass(frozen=True)
class Actor:
    """Who acts: a token's name, a console user, 'anonymous' (auth off) or 'system' (runner, CLI)."""

    name: str
    kind: str
    client_addr: str | None = None
    request_id: str | None = None


SYSTEM = Actor("system", "system")
_current_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("etl_audit_actor", default=None)
# A bench-only switch (bench/audit_overhead.py): with False, record() writes nothing.
enabled = True


def command_line_actor() -> Actor:
    """Who runs an `etl-console` command: the operating-system user, as 'cli:<user>'."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        user = "unknown"
    return Actor(f"cli:{user}", "system")


def current_actor() -> Actor:
    return _current_actor.get() or SYSTEM


def bind_actor(actor: Actor) -> contextvars.Token:
    """Set the actor for this context (a request); give the token to `unbind_actor` at its end."""
    return _current_actor.set(actor)


def unbind_actor(token: contextvars.Token) -> None:
    _current_actor.reset(token)


@contextlib.contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = bind_actor(actor)
    try:
        yield actor
    finally:
        unbind_actor(token)


def record(
    session: Session,
    action: str,
    *,
    object_type: str,
    object_id: Any = None,
    object_name: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
    actor: Actor | None = None,
) -> None:
    """Add one audit row to `session`'s transaction (sent now; committed or rolled back with the
    change). `before`/`after` are plain dicts of the object's configuration; secrets in them
    (keys like password, secret, token) are replaced by "***" here, so callers may pass them whole.

    action: '<object>.<verb>', e.g. 'pipeline.patch', 'connection.delete', 'alert_channel.create',
    'config.apply', 'login.failure'. object_type: 'pipeline', 'connection', 'alert_channel', 'user'…
    """
    if not enabled:
        return
    from ..logs import request_id_var

    who = actor or current_actor()
    statement = insert(AuditEntry).values(
        actor=who.name,
        actor_kind=who.kind if who.kind in ACTOR_KINDS else "system",
        client_addr=who.client_addr,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        object_name=object_name,
        before=redact(before),
        after=redact(after),
        request_id=who.request_id or request_id_var.get(),
    )
    # No autoflush: the change's own pending writes stay for the caller's flush or commit, where
    # its error handling expects them (a unique name refused in a savepoint is a 400, not a 500).
    with session.no_autoflush:
        session.execute(statement)


def redact(value: Any) -> Any:
    """A JSON-ready copy with secret-named keys replaced by "***" (nested dicts and lists too)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(key): REDACTED if _is_secret(str(key)) and item is not None else redact(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return REDACTED  # only secrets are stored as bytes (Fernet tokens)
    return json.loads(json.dumps(value, default=str))


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(lowered.endswith(word) for word in SECRET_KEYS)


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The named attributes of a model object, for before/after."""
    return {name: getattr(obj, name) for name in fields}


def changed_only(before: dict, after: dict) -> tuple[dict, dict]:
    """The keys whose values differ, from both sides (what a PATCH changed)."""
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


# reading ----------------------------------------------------------------------------------------
def list_entries(
    session: Session,
    *,
    object: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Newest first. `object` matches an object's id or name; `action` a whole action or a prefix
    ending in '.' ('pipeline.' = every pipeline action); `before` is the keyset cursor (at, id) of
    the last row already seen."""
    query = select(AuditEntry)
    if object and _as_uuid(object):
        query = query.where(AuditEntry.object_id == _as_uuid(object))  # an id: one index, no name match
    elif object:
        query = query.where((AuditEntry.object_id == object) | (AuditEntry.object_name == object))
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        if action.endswith("."):
            escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditEntry.action.like(escaped + "%", escape="\\"))
        else:
            query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if before is not None:
        query = query.where(tuple_(AuditEntry.at, AuditEntry.id) < tuple_(*before))
    return list(session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)))


def _as_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


# retention --------------------------------------------------------------------------------------
def prune(session: Session, retention_days: int) -> int:
    """Delete rows older than retention_days and record 'audit.prune' (actor 'system'), in one
    transaction the caller commits. Only etl_audit_prune() may delete (the table's trigger)."""
    removed = session.scalar(text("SELECT etl_audit_prune(:days)"), {"days": retention_days})
    record(session, "audit.prune", object_type="audit_log", after={"retention_days": retention_days, "removed": removed},
           actor=SYSTEM)
    return int(removed or 0)


def prune_if_due(session: Session, retention_days: int) -> int | None:
    """The daily prune, once across every runner: under a transaction-level advisory lock (a runner
    that cannot take it skips), prune when the last 'audit.prune' row is a day old or absent.
    The caller commits; returns the rows removed, or None when not due."""
    if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PRUNE_LOCK_KEY}):
        return None
    last = session.scalar(select(AuditEntry.at).where(AuditEntry.action == "audit.prune")
                          .order_by(AuditEntry.at.desc()).limit(1))
    now = session.scalar(text("SELECT now()"))
    if last is not None and now - last < PRUNE_EVERY:
        return None
    return prune(session, retention_days)
