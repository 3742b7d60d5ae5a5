"""Signed-in console sessions, kept in the metadata database (no Flask here).

The browser's cookie carries a random id; only its SHA-256 is stored, so a copy of this table does
not hand out usable cookies. A session ends when its row is deleted (logout) or its absolute
lifetime passes; nothing the browser keeps can bring it back.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from ..db.models import ConsoleSession


@dataclass(frozen=True)
class StoredSession:
    user_name: str
    data: str
    expires_at: datetime


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


def create_session(engine: Engine, user_name: str, data: str, lifetime: timedelta) -> tuple[str, datetime]:
    """A new session for user_name; returns its id (for the cookie) and when it ends."""
    session_id = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        # Expired rows are dropped here, on sign-in, so the table stays as small as the live sessions.
        conn.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= func.now()))
        expires_at = conn.execute(
            insert(ConsoleSession)
            .values(id_digest=_digest(session_id), user_name=user_name, data=data, expires_at=func.now() + lifetime)
            .returning(ConsoleSession.expires_at)
        ).scalar_one()
    return session_id, expires_at


def load_session(engine: Engine, session_id: str) -> StoredSession | None:
    """The live session with this id, or None when it never existed, was ended or has expired."""
    with engine.connect() as conn:
        row = conn.execute(
            select(ConsoleSession.user_name, ConsoleSession.data, ConsoleSession.expires_at).where(
                ConsoleSession.id_digest == _digest(session_id), ConsoleSession.expires_at > func.now()
            )
        ).first()
    return StoredSession(row.user_name, row.data, row.expires_at) if row else None


def save_session_data(engine: Engine, session_id: str, data: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(ConsoleSession).where(ConsoleSession.id_digest == _digest(session_id)).values(data=data))


def end_session(engine: Engine, session_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(ConsoleSession).where(ConsoleSession.id_digest == _digest(session_id)))
