"""A source connection's health, as its test answers it: reachable, which server, how far, how safe."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import psycopg2

from ..db.source_login import source_privilege_problems

# libpq counts connect_timeout in whole seconds and treats anything under 2 as 2.
_MIN_CONNECT_TIMEOUT_S = 2


@dataclass
class SourceProbe:
    ok: bool
    server_version: str | None = None
    connect_ms: float | None = None
    round_trip_ms: float | None = None
    privilege_problems: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def connect_source(dsn: str, timeout_s: float, application_name: str = "etl-console connection check"):
    """psycopg2.connect bounded by timeout_s (rounded up to libpq's whole seconds, at least 2)."""
    return psycopg2.connect(
        dsn, application_name=application_name,
        connect_timeout=max(_MIN_CONNECT_TIMEOUT_S, math.ceil(timeout_s)),
    )


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def probe_source(dsn: str, timeout_s: float) -> SourceProbe:
    """Connect, ask the version, time a round trip, run the privilege check. Never raises for the
    source's own failures: they are the answer. The whole probe stays within about timeout_s: the
    connect and the privilege check get half of it each."""
    half = max(1.0, timeout_s / 2)
    started = time.monotonic()
    try:
        connection = connect_source(dsn, half)
    except psycopg2.Error as error:
        return SourceProbe(ok=False, error=f"cannot connect: {first_line(error)}")
    try:
        connect_ms = (time.monotonic() - started) * 1000
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", (f"{int(half * 1000)}ms",))
            round_trips = []
            for _ in range(3):  # the best of three: one slow packet should not make a fast link look slow
                sent = time.monotonic()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                round_trips.append((time.monotonic() - sent) * 1000)
            cursor.execute("SELECT current_setting('server_version')")
            version = cursor.fetchone()[0]
    except psycopg2.Error as error:
        return SourceProbe(ok=False, error=f"connected, but the server did not answer: {first_line(error)}")
    finally:
        connection.close()
    problems = source_privilege_problems(dsn, timeout_s=half)
    return SourceProbe(
        ok=not problems,
        server_version=version,
        connect_ms=round(connect_ms, 2),
        round_trip_ms=round(min(round_trips), 3),
        privilege_problems=problems,
        error=None if not problems else "the login is not least-privilege: " + "; ".join(problems),
    )


def check_reachable(dsn: str, timeout_s: float) -> None:
    """Raise psycopg2.Error when the source cannot be reached or logged into within timeout_s."""
    connect_source(dsn, timeout_s, application_name="etl-console reachability").close()
