"""The runner: claims queued runs in the database, executes them on threads, heartbeats, reaps.

Any number of runners (gunicorn workers, `etl-console worker` processes, other hosts) may share one
database: a run is claimed with SELECT ... FOR UPDATE SKIP LOCKED, a partial unique index allows one
RUNNING run per pipeline, and a run commits its target only while holding its own row lock and
still owning a live lease. The runner opens connections per use and holds none while idle.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from .. import logs, metrics
from ..config import Config
from ..db.engine import Database
from ..services import audit, schedules
from . import queries
from .alert_sender import AlertSender
from .execute import RunExecution
from .wakeup import QueuedRunListener

log = logging.getLogger(__name__)

# A pause waits this long for a batch boundary before the source query is interrupted.
PAUSE_GRACE_S = 1.0
# How often a runner asks whether the audit log's daily prune is due (the database answers once a day).
AUDIT_PRUNE_CHECK_S = 600.0


@dataclass
class ActiveRun:
    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    rows_read: int = 0
    rows_written: int = 0
    cancel_reason: str | None = None  # set by the monitor; acted on at the next batch boundary
    cancel_since: float | None = None
    interrupt: Callable[[], None] | None = None  # cancels the source query when no boundary comes
    interrupt_grace_s: float | None = None  # None: PAUSE_GRACE_S; 0 for a load with no batch boundaries

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason, self.cancel_since = reason, time.monotonic()

    def interrupt_if_overdue(self, grace_s: float) -> None:
        """A cancel not honoured within grace_s (a source producing no rows) interrupts the query."""
        if self.cancel_since is not None and self.interrupt is not None:
            if time.monotonic() - self.cancel_since >= grace_s:
                interrupt, self.interrupt = self.interrupt, None
                try:
                    interrupt()
                except Exception:  # noqa: BLE001 - the load already closed its connection: nothing to stop
                    log.debug("interrupt of run %s found nothing to cancel", self.run_id)


class Runner:
    def __init__(self, database: Database, config: Config, name: str = "runner",
                 only_run: uuid.UUID | None = None) -> None:
        self.database = database
        self.config = config
        # `etl-console run NAME --wait`: execute that run and nothing else (no other claims, no schedules).
        self.only_run = only_run
        self.engine = database.unpooled_engine()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{name}:{uuid.uuid4().hex[:8]}"
        self._slots = threading.BoundedSemaphore(config.runner_threads)
        self._active: dict[uuid.UUID, ActiveRun] = {}
        self._threads: dict[uuid.UUID, threading.Thread] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._loop_thread: threading.Thread | None = None
        self._listener: QueuedRunListener | None = None
        self._alerts: AlertSender | None = None  # delivers the alert outbox, on its own thread and connections
        self._last_claim = self._last_reap = self._last_presence = self._last_schedule = 0.0
        # The first prune check comes a period after start: a process that lives a few seconds (a
        # test, `run --wait`) leaves the audit log alone.
        self._last_audit_prune = time.monotonic()

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Runner":
        if self._loop_thread is None:
            self._loop_thread = threading.Thread(target=self._loop, name="etl-runner", daemon=True)
            self._loop_thread.start()
            from ..db.engine import libpq_dsn

            if self.config.listen:
                self._listener = QueuedRunListener(libpq_dsn(self.database.url), self.wake, self._stopping).start()
            if self.only_run is None:
                self._alerts = AlertSender(self.database.unpooled_engine(), self.config, self.worker_id,
                                           self._stopping).start()
            log.info("runner %s started", self.worker_id)
        return self

    def wake(self) -> None:
        """A run was just queued: look for it now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel runs in flight (their targets roll back), record them FAILED, and stop."""
        self._stopping.set()
        with self._lock:
            for active in self._active.values():
                active.cancel("Run cancelled: its worker shut down; the target keeps its previous contents")
                active.interrupt_if_overdue(0.0)
            threads = list(self._threads.values())
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._loop_thread is not None:
            self._loop_thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.join(max(0.0, deadline - time.monotonic()))
        if self._alerts is not None:
            self._alerts.join(max(0.0, deadline - time.monotonic()))
            self._alerts.engine.dispose()
        try:
            with self.engine.begin() as conn:
                conn.execute(text("DELETE FROM etl_runners WHERE worker_id = :w"), {"w": self.worker_id})
        except Exception:  # noqa: BLE001 - the database may already be gone at shutdown
            log.debug("could not remove runner row", exc_info=True)
        self.engine.dispose()

    # the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        woken = False
        while not self._stopping.is_set():
            try:
                self.tick(woken)
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the runner
                log.exception("runner tick failed")
            woken = self._wake.wait(self.config.heartbeat_s)
            self._wake.clear()

    def tick(self, woken: bool = False) -> None:
        """One round: claim first when woken (a run was just queued), heartbeat runs in flight,
        reap lost ones, fire schedules, and claim on the poll period."""
        now = time.monotonic()
        if woken:
            self._last_claim = now
            self._claim_all()
        self._heartbeat()
        if now - self._last_presence >= min(5.0, self.config.run_lease_s / 3):
            self._last_presence = now
            with self.engine.begin() as conn:
                queries.register_runner(conn, self.worker_id, socket.gethostname(), os.getpid(),
                                        self.config.runner_labels)
        if now - self._last_reap >= min(5.0, self.config.run_lease_s / 3):
            self._last_reap = now
            self.reap()
        if now - self._last_schedule >= max(1.0, self.config.poll_s):
            self._last_schedule = now
            if self.only_run is None:
                self.fire_schedules()
        if now - self._last_audit_prune >= AUDIT_PRUNE_CHECK_S and self.only_run is None:
            self._last_audit_prune = now
            self.prune_audit_log()
        if now - self._last_claim >= self.config.poll_s:
            self._last_claim = now
            self._claim_all()

    def fire_schedules(self) -> list[uuid.UUID]:
        """Queue runs for due cron ticks; the claim in the database makes each tick fire once."""
        fired = schedules.fire_due(sessionmaker(self.engine, expire_on_commit=False))
        for pipeline_id in fired:
            log.info("schedule fired a run of pipeline %s", pipeline_id)
        if fired:
            self._wake.set()
        return fired

    def prune_audit_log(self) -> int | None:
        """The audit log's daily retention prune; the database lets one runner a day do it."""
        with Session(self.engine) as session, session.begin():
            removed = audit.prune_if_due(session, self.config.audit_retention_days)
        if removed is not None:
            log.info("audit log pruned: %d entries older than %d days removed", removed,
                     self.config.audit_retention_days)
        return removed

    def reap(self) -> int:
        with self.engine.begin() as conn:
            lost = queries.reap_lost_runs(conn, self.config.run_lease_s)
        metrics.runs_reaped(len(lost))
        for run_id in lost:
            log.warning("run %s reaped: worker lost", run_id)
        return len(lost)

    def _heartbeat(self) -> None:
        with self._lock:
            active = list(self._active.values())
        if not active:
            return
        with self.engine.begin() as conn:
            for run in active:
                alive, cancel = queries.heartbeat_run(conn, run, self.worker_id)
                if not alive:
                    run.cancel("Run abandoned: this worker lost its lease (another runner reaped it)")
                elif cancel == "pause":
                    run.cancel("pause")
        for run in active:
            run.interrupt_if_overdue(PAUSE_GRACE_S if run.interrupt_grace_s is None else run.interrupt_grace_s)

    def _claim_all(self) -> None:
        while not self._stopping.is_set() and self._slots.acquire(blocking=False):
            try:
                with self.engine.begin() as conn:
                    claimed = queries.claim_run(conn, self.worker_id, self.config.runner_labels,
                                                self.config.default_source_connection,
                                                self.config.target_max_concurrent_runs, only_run=self.only_run)
            except Exception:
                self._slots.release()
                raise
            if claimed is None:
                self._slots.release()
                return
            self._launch(claimed)

    def _launch(self, claimed: "queries.ClaimedRun") -> None:
        active = ActiveRun(claimed.run_id, claimed.pipeline_id)
        if claimed.cancel_requested == "pause":
            active.cancel("pause")
        execution = RunExecution(self, claimed, active)
        thread = threading.Thread(target=self._execute, args=(execution,), name=f"etl-run-{claimed.run_id}")
        with self._lock:
            self._active[claimed.run_id] = active
            self._threads[claimed.run_id] = thread
        thread.start()

    def _execute(self, execution: RunExecution) -> None:
        logs.bind_run_id(execution.claimed.run_id)  # every log line of this thread names the run
        try:
            execution.run()
        finally:
            with self._lock:
                self._active.pop(execution.active.run_id, None)
                self._threads.pop(execution.active.run_id, None)
            self._slots.release()
            self._wake.set()  # a slot is free: claim what waits
            if self._alerts is not None:
                self._alerts.wake()  # the run's end may have queued an alert
