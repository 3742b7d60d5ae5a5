"""Keyset cursors: one codec for the API's Link headers and the console's page links.

A cursor names a position in a list ordered by (time, id), newest or oldest first:
"<microseconds since 1970-01-01T00:00:00Z>.<id>", the id as 32 lowercase hex digits (a UUID) or in
decimal (a bigserial). Clients treat it as opaque; it is plain text so that a regular expression
(UUID_CURSOR_PATTERN, BIGINT_CURSOR_PATTERN, in the OpenAPI document) says exactly which strings are
cursors: every string the pattern matches decodes, and no other string does."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# At most 17 digits: 10**17 µs is about the year 5138, well inside datetime's range (to 9999).
_TIME = r"[0-9]{1,17}"
UUID_CURSOR_PATTERN = rf"^{_TIME}\.[0-9a-f]{{32}}$"
# A bigserial id: 1 to 18 digits, no leading zero (< 10**18 < 2**63, so PostgreSQL can compare it).
BIGINT_CURSOR_PATTERN = rf"^{_TIME}\.[1-9][0-9]{{0,17}}$"


def uuid_key(value: str) -> uuid.UUID:
    if re.fullmatch(r"[0-9a-f]{32}", value, re.ASCII) is None:
        raise ValueError(value)
    return uuid.UUID(hex=value)


def bigint_key(value: str) -> int:
    """A bigserial id; anything PostgreSQL could not compare with one is malformed."""
    if re.fullmatch(r"[1-9][0-9]{0,17}", value, re.ASCII) is None:
        raise ValueError(value)
    return int(value)


def encode_cursor(at: datetime, key: Any) -> str:
    if at.tzinfo is None:
        raise ValueError("cursor time has no time zone")
    micros = (at - EPOCH) // _MICROSECOND
    if not 0 <= micros < 10**17:
        raise ValueError("cursor time out of range")
    if isinstance(key, int) and not isinstance(key, bool):
        key_text = str(key)
    else:
        key_text = (key if isinstance(key, uuid.UUID) else uuid.UUID(str(key))).hex
    return f"{micros}.{key_text}"


def decode_cursor(value: str, key: Callable[[str], Any] = uuid_key) -> tuple[datetime, Any]:
    """The (time, id) a cursor names (the time in UTC); ValueError when it is not one of ours."""
    if not isinstance(value, str):
        raise ValueError("not a cursor")
    micros, separator, key_text = value.partition(".")
    if not separator or re.fullmatch(_TIME, micros, re.ASCII) is None:
        raise ValueError("not a cursor")
    return EPOCH + int(micros) * _MICROSECOND, key(key_text)
