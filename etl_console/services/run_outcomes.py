"""What follows a run's end, decided in the transaction that records it (one place for all of it):

- a FAILED run caused by an error is retried (a new queued run, attempt + 1, retry_of the failed run,
  not claimed before its backoff delay) while attempts remain and the pipeline is neither paused
  nor disabled; a cancelled run (pause, worker shutdown) and a run refused for its configuration
  are not retried;
- a failure with no retry to follow (the final one) alerts once (`run.failed`), counts towards
  auto-pause, and after auto_pause_after_failures consecutive final failures pauses the pipeline
  (`pipeline.auto_paused`); a success resets the count, and so does the auto-pause itself;
- a SUCCESS queues the pipelines downstream of it (services/dependencies.py).

Everything here runs on the runner's Connection, inside the transaction that holds the run's row
and then its pipeline's row, so any number of runners decide each run's follow-up exactly once.
"""
from __future__ import annotations

import logging
import random
import uuid

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from .. import lifecycle
from ..lifecycle import PipelineStatus, RunStatus
from . import alert_events, audit, dependencies

log = logging.getLogger(__name__)

# Why a run ended FAILED: only "error" is retried; "refused" (configuration) alerts but is not
# retried; "cancelled" (pause, shutdown) neither retries nor alerts.
ERROR, REFUSED, CANCELLED = "error", "refused", "cancelled"


def backoff_delay_s(attempt: int, initial_s: float, factor: float, max_s: float, jitter: float,
                    rand: random.Random | None = None) -> float:
    """Seconds between the failure of attempt `attempt` and the next attempt:
    min(max_s, initial_s * factor^(attempt-1)), spread by ±jitter (a fraction) so retries of many
    pipelines failing together do not arrive together."""
    base = min(max_s, initial_s * factor ** (attempt - 1))
    spread = (rand or random).uniform(-jitter, jitter) if jitter else 0.0
    return max(0.0, base * (1.0 + spread))


def after_run_ended(conn: Connection, run_id: uuid.UUID, pipeline_id: uuid.UUID, *, succeeded: bool,
                    cause: str = ERROR, error: str | None = None) -> bool:
    """Call after the run's row says SUCCESS or FAILED and the pipeline's status has moved on.
    Returns whether a retry was queued.

    In a savepoint: if a follow-up fails (a bug, a deadlock), the run's outcome is still recorded
    (a run must never stay RUNNING, nor a reaper fail on it forever); the follow-up is logged."""
    try:
        with conn.begin_nested():
            return _follow_up(conn, run_id, pipeline_id, succeeded=succeeded, cause=cause, error=error)
    except Exception:  # noqa: BLE001 - the outcome matters more than its follow-ups
        log.exception("run %s: retries, alerts or downstream runs could not be recorded", run_id)
        return False


def _follow_up(conn: Connection, run_id: uuid.UUID, pipeline_id: uuid.UUID, *, succeeded: bool, cause: str,
               error: str | None) -> bool:
    retry_follows = False
    if succeeded:
        conn.execute(text("UPDATE etl_pipelines SET consecutive_failures = 0 WHERE id = :p"), {"p": pipeline_id})
    elif cause != CANCELLED:
        retry_follows = _queue_retry(conn, run_id, pipeline_id, cause)
    # The alerts (run.failed only when no retry follows, run.recovered), in this transaction.
    alert_events.run_finished(conn, pipeline_id=pipeline_id, run_id=run_id, succeeded=succeeded, error=error,
                              cancelled=cause == CANCELLED, retry_follows=retry_follows)
    if not succeeded and cause != CANCELLED and not retry_follows:
        _count_final_failure(conn, run_id, pipeline_id, error)
    if succeeded:
        dependencies.record_success(conn, pipeline_id, run_id)
    # Upstream successes that arrived while this pipeline was busy: its run may start now.
    dependencies.queue_if_ready(conn, pipeline_id)
    return retry_follows


def _queue_retry(conn: Connection, run_id: uuid.UUID, pipeline_id: uuid.UUID, cause: str) -> bool:
    if cause != ERROR:
        return False
    policy = conn.execute(
        text(
            """
            SELECT r.attempt, p.max_retries, p.retry_initial_delay_s, p.retry_backoff_factor,
                   p.retry_max_delay_s, p.retry_jitter, p.status, p.enabled
            FROM etl_pipeline_runs r JOIN etl_pipelines p ON p.id = r.pipeline_id
            WHERE r.id = :run FOR UPDATE OF p
            """
        ),
        {"run": run_id},
    ).one()
    if policy.attempt > policy.max_retries or policy.status == PipelineStatus.PAUSED or not policy.enabled:
        return False
    delay_s = backoff_delay_s(policy.attempt, policy.retry_initial_delay_s, policy.retry_backoff_factor,
                              policy.retry_max_delay_s, policy.retry_jitter)
    retry_id = uuid.uuid4()
    conn.execute(
        text(
            f"""
            INSERT INTO etl_pipeline_runs (id, pipeline_id, status, rows_read, rows_written, trigger,
                                           attempt, retry_of, not_before)
            VALUES (:id, :p, '{RunStatus.RUNNING}', 0, 0, 'retry', :attempt, :of,
                    clock_timestamp() + make_interval(secs => :delay))
            """
        ),
        {"id": retry_id, "p": pipeline_id, "attempt": policy.attempt + 1, "of": run_id, "delay": delay_s},
    )
    log.info("run %s failed (attempt %s of %s): retry %s in %.2f s", run_id, policy.attempt,
             policy.max_retries + 1, retry_id, delay_s)
    return True


def _count_final_failure(conn: Connection, run_id: uuid.UUID, pipeline_id: uuid.UUID, error: str | None) -> None:
    row = conn.execute(
        text(
            """
            UPDATE etl_pipelines SET consecutive_failures = consecutive_failures + 1
            WHERE id = :p RETURNING consecutive_failures, auto_pause_after_failures, status, name
            """
        ),
        {"p": pipeline_id},
    ).one()
    limit = row.auto_pause_after_failures
    if limit is None or row.consecutive_failures < limit or row.status == PipelineStatus.PAUSED:
        return
    # The pause service's effect (status PAUSED); the count starts again, so a resumed pipeline gets
    # `limit` more chances before it is paused again.
    lifecycle.pipeline_auto_paused(conn, pipeline_id)
    log.warning("pipeline %s auto-paused after %s consecutive failed runs", pipeline_id, row.consecutive_failures)
    alert_events.emit(conn, alert_events.AUTO_PAUSED, pipeline_id=pipeline_id, run_id=run_id,
                      error=f"paused after {row.consecutive_failures} consecutive failed runs; last error: {error}")
    # A Session joined to the runner's transaction, which commits or rolls back the row with the outcome.
    with Session(bind=conn, join_transaction_mode="rollback_only") as session:
        audit.record(session, "pipeline.auto_pause", object_type="pipeline", object_id=pipeline_id,
                     object_name=row.name, before={"status": row.status, "consecutive_failures": row.consecutive_failures},
                     after={"status": PipelineStatus.PAUSED, "last_run_id": str(run_id)}, actor=audit.SYSTEM)

