"""Jinja filters that turn numbers and times into what an operator reads at a glance."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from markupsafe import Markup, escape

from .. import pagination
from ..db.models import PipelineStatus, RunStatus

NBSP = "\u00a0"  # keeps a number and its unit on one line

STATUS_LABELS = {
    PipelineStatus.IDLE: "Idle",
    PipelineStatus.RUNNING: "Running",  # the same word as RunStatus.RUNNING
    PipelineStatus.PAUSED: "Paused",
    PipelineStatus.FAILED: "Failed",  # the same word as RunStatus.FAILED
    RunStatus.SUCCESS: "Succeeded",
}


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.title())


def badge(status: str) -> Markup:
    """A status badge: the status spelled out, its colour a second cue (a filter: cheaper than a macro)."""
    known = _BADGES.get(status)
    if known is not None:
        return known
    status = escape(str(status))
    return Markup(f'<span class="badge badge-{status.lower()}" data-status="{status}">{status_label(status)}</span>')


_BADGES = {
    status: Markup(f'<span class="badge badge-{status.lower()}" data-status="{status}">{label}</span>')
    for status, label in STATUS_LABELS.items()
}


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f}{NBSP}s"
    if seconds < 60:
        return f"{seconds:.1f}{NBSP}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}{NBSP}min {secs:02d}{NBSP}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}{NBSP}h {minutes:02d}{NBSP}min"


def rate(rows_per_second: float | None) -> str:
    if rows_per_second is None:
        return "—"
    if rows_per_second < 1000:
        return f"{rows_per_second:,.0f}{NBSP}rows/s"
    if rows_per_second < 1_000_000:
        return f"{rows_per_second / 1000:,.1f}k{NBSP}rows/s"
    return f"{rows_per_second / 1_000_000:,.2f}M{NBSP}rows/s"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


def until(seconds: float | None) -> str:
    """A time ahead, as "in 4 min" (the counterpart of ago)."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return "now"
    if seconds < 60:
        return f"in {int(seconds)} s"
    if seconds < 3600:
        return f"in {int(seconds // 60)} min"
    if seconds < 86400:
        return f"in {int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    days = int(seconds // 86400)
    return f"in {days} day{'s' if days != 1 else ''}"


def key_value(sample) -> str:
    """One key from a reconciliation sample ({"film_id": "…"}): the value alone for a one-column
    key, "a=1, b=2" for a composite one."""
    if isinstance(sample, dict):
        if len(sample) == 1:
            return str(next(iter(sample.values())))
        return ", ".join(f"{name}={value}" for name, value in sample.items())
    return str(sample)


def plural(count: int | None, singular: str, many: str | None = None) -> str:
    """"1 key", "3 keys", "1,000 keys"."""
    count = count or 0
    return f"{count:,} {singular if count == 1 else (many or singular + 's')}"


def utc(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def encode_cursor(cursor: tuple[datetime, uuid.UUID] | None) -> str | None:
    """A run-history position for a page link (etl_console.pagination's codec, as the API's)."""
    return None if cursor is None else pagination.encode_cursor(*cursor)


def decode_cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The cursor, or None when absent; ValueError when present but malformed."""
    return pagination.decode_cursor(value) if value else None


FILTERS = {
    "badge": badge,
    "status_label": status_label,
    "num": number,
    "duration": duration,
    "rate": rate,
    "ago": ago,
    "until": until,
    "key_value": key_value,
    "plural": plural,
    "utc": utc,
    "iso": iso,
    "cursor": encode_cursor,
}
