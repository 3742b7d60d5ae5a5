"""Keyset cursors: one codec for the API's Link headers and the console's page links.

A cursor names a position in a list ordered by (time, id), newest or oldest first: URL-safe base64
of "<ISO 8601 time>|<id>", with its padding dropped."""
from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any, Callable


def uuid_key(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def bigint_key(value: str) -> int:
    """A bigserial id; anything PostgreSQL could not compare with one is malformed."""
    number = int(value)
    if not 0 < number < 2**63:
        raise ValueError(value)
    return number


def encode_cursor(at: datetime, key: Any) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode().rstrip("=")


def decode_cursor(value: str, key: Callable[[str], Any] = uuid_key) -> tuple[datetime, Any]:
    """The (time, id) a cursor names; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError("not a cursor") from error
    at, separator, key_text = raw.partition("|")
    if not separator:
        raise ValueError("not a cursor")
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        raise ValueError("cursor time has no time zone")
    return moment, key(key_text)
