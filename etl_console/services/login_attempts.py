"""Counters of failed console logins, in the metadata database, as a storage for the `limits`
library that Flask-Limiter uses (no Flask here).

In-process counters would give each gunicorn worker (and each host) its own allowance; these rows
are shared by every web process, so the limits hold for the service as a whole. Only the
fixed-window strategy is supported: one row per key, its count and when its window ends.
"""
from __future__ import annotations

import time
from datetime import timedelta

from limits.storage import Storage
from sqlalchemy import Engine, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from ..db.models import LoginThrottleCounter

STORAGE_SCHEME = "etl-postgresql"

_counter = LoginThrottleCounter.__table__


class PostgresCounterStorage(Storage):
    """`etl-postgresql://` in limits' registry; the metadata database is passed as the `database`
    option (anything with an `.engine`, read at each use: the app's database connects lazily)."""

    STORAGE_SCHEME = [STORAGE_SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, database=None, **options):
        if database is None:
            raise ValueError("PostgresCounterStorage needs the metadata database (database=...)")
        self._database = database
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def engine(self) -> Engine:
        return self._database.engine

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Count `amount` more in the key's window; a window that has ended starts again from here."""
        fresh = insert(_counter).values(key=key, hits=amount, expires_at=func.now() + timedelta(seconds=expiry))
        window_ended = _counter.c.expires_at <= func.now()
        statement = fresh.on_conflict_do_update(
            index_elements=[_counter.c.key],
            set_={
                "hits": case((window_ended, fresh.excluded.hits), else_=_counter.c.hits + fresh.excluded.hits),
                "expires_at": case((window_ended, fresh.excluded.expires_at), else_=_counter.c.expires_at),
            },
        ).returning(_counter.c.hits)
        with self.engine.begin() as conn:
            # Ended windows are dropped as new failures arrive, so guessing many names cannot grow
            # the table beyond a day's worth of rows.
            conn.execute(delete(_counter).where(_counter.c.expires_at <= func.now() - timedelta(minutes=1)))
            return conn.execute(statement).scalar_one()

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            hits = conn.execute(
                select(_counter.c.hits).where(_counter.c.key == key, _counter.c.expires_at > func.now())
            ).scalar()
        return hits or 0

    def get_expiry(self, key: str) -> float:
        """When the key's window ends, as a Unix time (now when there is no live window)."""
        with self.engine.connect() as conn:
            ends = conn.execute(
                select(func.extract("epoch", _counter.c.expires_at)).where(
                    _counter.c.key == key, _counter.c.expires_at > func.now()
                )
            ).scalar()
        return float(ends) if ends is not None else time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(delete(_counter)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_counter).where(_counter.c.key == key))
