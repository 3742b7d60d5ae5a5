"""Alert events: written to the outbox (etl_alert_outbox) in the caller's transaction. No HTTP here.

An event becomes one outbox row per enabled channel the pipeline subscribed to that event kind; the
runners' sender (etl_console/runner/alert_sender.py) delivers the rows. Because the rows are written
in the transaction that records the event (a run's final status update, a freshness mark), an event
is alerted exactly when it is committed, and never when it rolls back.

Event kinds and who emits them:
- run.failed: a run failed and no retry follows. queries.finish_run emits it through run_finished()
  unless the failure was a cancel (pause, shutdown) or the caller says a retry follows
  (retry_follows=True); a retry's final failure then emits it, or call run_failed_finally() directly.
- run.recovered: the first success after failures (the previous finished, non-cancelled run FAILED).
- pipeline.auto_paused: emit(session, AUTO_PAUSED, pipeline_id=..., run_id=<last failed run>).
- freshness.breached / freshness.restored: services/freshness.py.

Every event has an idempotency key, stable per event (f"{kind}:{run_id}" for run events): emitting
it twice inserts nothing the second time (one row per key and channel), and receivers get it as
X-Etl-Delivery to drop duplicates on their side.

Works with a Session or a Connection: everything is plain SQL.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text

from ..lifecycle import DeliveryStatus, RunStatus

RUN_FAILED = "run.failed"
RUN_RECOVERED = "run.recovered"
AUTO_PAUSED = "pipeline.auto_paused"
FRESHNESS_BREACHED = "freshness.breached"
FRESHNESS_RESTORED = "freshness.restored"
TEST = "alert.test"  # POST /alert-channels/{id}/test: never subscribed to, sent to one channel
EVENT_KINDS = (RUN_FAILED, RUN_RECOVERED, AUTO_PAUSED, FRESHNESS_BREACHED, FRESHNESS_RESTORED)

# A failure recorded as a cancel is no alert: the operator (or a shutdown) asked for it.
_CANCEL_PREFIX = "Run cancelled"

_INSERT = f"""
INSERT INTO etl_alert_outbox (id, event_key, event_kind, channel_id, pipeline_id, run_id, payload, status,
                              attempts, next_attempt_at)
SELECT gen_random_uuid(), :key, :kind, a.channel_id, :pipeline, :run, CAST(:payload AS jsonb), '{DeliveryStatus.PENDING}', 0, now()
FROM etl_pipeline_alerts a JOIN etl_alert_channels c ON c.id = a.channel_id
WHERE a.pipeline_id = :pipeline AND :kind = ANY(a.events) AND c.enabled
ON CONFLICT (event_key, channel_id) DO NOTHING
"""


def event_key(kind: str, pipeline_id, run_id=None, suffix: str | None = None) -> str:
    """The idempotency key: one per event, whichever process emits it and however often."""
    return f"{kind}:{run_id or pipeline_id}" + (f":{suffix}" if suffix else "")


def build_payload(session, kind: str, key: str, *, pipeline_id, run_id=None, error: str | None = None,
                  extra: dict | None = None) -> dict:
    """What a receiver gets. Links are console paths here; the sender prefixes ETL_PUBLIC_URL."""
    pipeline = session.execute(
        text("SELECT id, name, target_table, status FROM etl_pipelines WHERE id = :id"), {"id": pipeline_id}
    ).one_or_none()
    run = None
    if run_id is not None:
        run = session.execute(
            text("SELECT id, status, error_message, started_at, finished_at, rows_read, rows_written "
                 "FROM etl_pipeline_runs WHERE id = :id"), {"id": run_id}
        ).one_or_none()
    links = {"pipeline": f"/pipelines/{pipeline_id}"}
    if run_id is not None:
        links["run"] = f"/pipelines/{pipeline_id}/runs/{run_id}"
    return {
        "event": kind,
        "idempotency_key": key,
        "occurred_at": _iso(datetime.now(timezone.utc)),
        "pipeline": {"id": str(pipeline_id), "name": pipeline.name if pipeline else None,
                     "target_table": pipeline.target_table if pipeline else None,
                     "status": pipeline.status if pipeline else None},
        "run": None if run is None else {
            "id": str(run.id), "status": run.status, "error": run.error_message,
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "rows_read": run.rows_read, "rows_written": run.rows_written,
        },
        "error": error if error is not None else (run.error_message if run is not None else None),
        "links": links,
        **(extra or {}),
    }


def emit(session, kind: str, *, pipeline_id, run_id=None, error: str | None = None, extra: dict | None = None,
         key: str | None = None) -> int:
    """Queue `kind` for every channel the pipeline subscribed to it, in the caller's transaction.
    Returns the number of outbox rows written (0: nobody subscribed, or already emitted)."""
    subscribed = session.execute(
        text("SELECT 1 FROM etl_pipeline_alerts a JOIN etl_alert_channels c ON c.id = a.channel_id "
             "WHERE a.pipeline_id = :pipeline AND :kind = ANY(a.events) AND c.enabled LIMIT 1"),
        {"pipeline": pipeline_id, "kind": kind},
    ).first()
    if subscribed is None:
        return 0  # the common case costs one indexed probe
    key = key or event_key(kind, pipeline_id, run_id)
    payload = build_payload(session, kind, key, pipeline_id=pipeline_id, run_id=run_id, error=error, extra=extra)
    result = session.execute(text(_INSERT), {"key": key, "kind": kind, "pipeline": pipeline_id, "run": run_id,
                                             "payload": json.dumps(payload)})
    return result.rowcount or 0


def run_failed_finally(session, *, pipeline_id, run_id, error: str | None = None) -> int:
    """The failure alert of a run after which nothing retries. Call in the transaction that records it."""
    return emit(session, RUN_FAILED, pipeline_id=pipeline_id, run_id=run_id, error=error)


def run_finished(session, *, pipeline_id, run_id, succeeded: bool, error: str | None = None,
                 cancelled: bool = False, retry_follows: bool = False) -> None:
    """queries.finish_run calls this in the transaction that records the run's final status."""
    if succeeded:
        _run_succeeded(session, pipeline_id=pipeline_id, run_id=run_id)
    elif not cancelled and not retry_follows and not (error or "").startswith(_CANCEL_PREFIX):
        run_failed_finally(session, pipeline_id=pipeline_id, run_id=run_id, error=error)


def _run_succeeded(session, *, pipeline_id, run_id) -> None:
    from . import freshness

    session.execute(
        text("UPDATE etl_pipelines SET last_success_at = (SELECT finished_at FROM etl_pipeline_runs WHERE id = :run) "
             "WHERE id = :pipeline"), {"run": run_id, "pipeline": pipeline_id})
    # Recovered: the run before this one (cancels aside) failed, and this run is not its retry (a
    # failure that was retried never alerted run.failed, so its retry's success is no recovery).
    previous = session.execute(
        text("SELECT prev.status, prev.id = this.retry_of AS retried FROM etl_pipeline_runs this, "
             "LATERAL (SELECT id, status FROM etl_pipeline_runs WHERE pipeline_id = :pipeline AND id <> :run "
             "         AND finished_at IS NOT NULL AND coalesce(error_message, '') NOT LIKE :cancel "
             "         ORDER BY started_at DESC, id DESC LIMIT 1) prev "
             "WHERE this.id = :run"),
        {"pipeline": pipeline_id, "run": run_id, "cancel": _CANCEL_PREFIX + "%"},
    ).one_or_none()
    if previous is not None and previous.status == RunStatus.FAILED and not previous.retried:
        emit(session, RUN_RECOVERED, pipeline_id=pipeline_id, run_id=run_id)
    freshness.restore_if_breached(session, pipeline_id, run_id=run_id)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
