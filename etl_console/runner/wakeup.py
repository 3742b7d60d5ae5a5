"""LISTEN for queued runs, so that an idle runner on any host claims a run milliseconds after
POST /run instead of at its next poll. Polling (ETL_POLL_S) stays as the fallback: a notification
is only a hint, and while this connection is down the runner still finds every queued run."""
from __future__ import annotations

import logging
import select
import threading
from typing import Callable

import psycopg2

log = logging.getLogger(__name__)

CHANNEL = "etl_runs_queued"


class QueuedRunListener:
    """One connection per runner process, LISTENing; calls on_queued for every notification."""

    def __init__(self, dsn: str, on_queued: Callable[[], None], stopping: threading.Event) -> None:
        self._dsn = dsn
        self._on_queued = on_queued
        self._stopping = stopping
        self._thread = threading.Thread(target=self._listen_forever, name="etl-runner-listen", daemon=True)

    def start(self) -> "QueuedRunListener":
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _listen_forever(self) -> None:
        backoff_s = 1.0
        while not self._stopping.is_set():
            try:
                self._listen()
                backoff_s = 1.0
            except (psycopg2.Error, OSError) as error:
                log.debug("listening for queued runs failed (%s); polling meanwhile", error)
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)

    def _listen(self) -> None:
        connection = psycopg2.connect(self._dsn, application_name="etl-console runner listen")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            self._on_queued()  # a run may have been queued while nobody listened
            while not self._stopping.is_set():
                # A short timeout: stop() is noticed within a second, and a dead server is noticed by poll().
                if select.select([connection], [], [], 1.0)[0]:
                    connection.poll()
                    if connection.notifies:
                        connection.notifies.clear()
                        self._on_queued()
                else:
                    connection.poll()
        finally:
            connection.close()


def notify_queued(session) -> None:
    """Call inside the transaction that queues a run: PostgreSQL delivers it at commit, never before."""
    from sqlalchemy import text

    session.execute(text(f"NOTIFY {CHANNEL}"))
