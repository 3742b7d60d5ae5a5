"""The load's vocabulary: what every load shares (a read-only source connection, a target
transaction), the hooks a runner gives it, its result, and the errors it raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import psycopg2


class LoadError(Exception):
    """A failure whose message an operator can act on; becomes the run's error_message."""


class LoadCancelled(Exception):
    """Raised by a hook at a batch boundary to stop the load; the message is the run's error."""


class LoadHooks(Protocol):
    def bind_interrupt(self, interrupt: Callable[[], None], grace_s: float | None = None) -> None:
        """Receives a callable that cancels the source query from another thread, for a cancel
        that cannot wait for the next batch boundary (a source that produces no rows for long).
        grace_s=0: the load has no batch boundaries at all, so a cancel interrupts at once."""

    def on_batch(self, rows_read: int, rows_written: int) -> None:
        """Called at every batch boundary; may raise LoadCancelled."""

    def on_progress(self, rows_read: int, rows_written: int) -> None:
        """Called at least every second while rows arrive, between boundaries; never cancels."""

    def report(self, details: dict, persist: bool = False) -> None:
        """Facts for the run's details (gates, publish); persist=True shows them while RUNNING."""

    def commit(self, commit_target: Callable[[], None], timings: dict[str, float], details: dict | None = None) -> None:
        """Commit the target through commit_target, or raise to veto (lost lease, late pause).

        The hook holds whatever fence it needs (the run's row lock) around the call."""


@dataclass
class LoadResult:
    rows_read: int
    rows_written: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    """What every load shares: a read-only source connection and a target transaction."""

    source_dsn: str
    target_dsn: str
    query: str
    target_table: str
    batch_size: int
    statement_timeout_s: float
    lock_timeout_s: float = field(default=60.0, kw_only=True)
    source_role: str | None = field(default=None, kw_only=True)
    checks: dict = field(default_factory=dict, kw_only=True)  # quality gates (warehouse.gates)

    def run(self, hooks: LoadHooks) -> LoadResult:
        source = psycopg2.connect(self.source_dsn, application_name="etl-console source")
        target = psycopg2.connect(self.target_dsn, application_name="etl-console load")
        hooks.bind_interrupt(source.cancel)
        try:
            return self._run(source, target, hooks)
        finally:
            target.close()  # closing without commit rolls the load back
            source.close()

    def _run(self, source, target, hooks: LoadHooks) -> LoadResult:
        raise NotImplementedError

    def _target_cursor(self, target):
        cursor = target.cursor()
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(self.lock_timeout_s * 1000)}ms",))
        return cursor


def report(hooks, details: dict, persist: bool = False) -> None:
    reporter = getattr(hooks, "report", None)
    if reporter is not None:
        reporter(details, persist)
