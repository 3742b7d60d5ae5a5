"""The runner's SQL: claims, heartbeats, fencing and the reaper, each one statement where it can be."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from .. import lifecycle
from ..lifecycle import PipelineStatus, RunStatus
from ..services.run_outcomes import after_run_ended

_RUNNING, _FAILED = RunStatus.RUNNING, RunStatus.FAILED

@dataclass(frozen=True)
class ClaimedRun:
    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    cancel_requested: str | None
    config: dict[str, Any]


# The connection a pipeline reads: its own, else the one ETL_DEFAULT_SOURCE_CONNECTION names.
_READS = "coalesce({pipeline}.source_connection_id, (SELECT d.id FROM etl_connections d WHERE d.name = :default_connection))"
# Runs of one source connection that hold a slot (claimed, not finished: their snapshot says which
# connection they read), and those queued before a given run. A queued run may start when both
# together leave a slot: older runs go first.
_CONNECTION_BUSY = f"""
    SELECT count(*) FROM etl_pipeline_runs busy
    WHERE busy.status = '{_RUNNING}' AND busy.worker_id IS NOT NULL
      AND busy.config_snapshot -> 'source_connection' ->> 'id' = CAST({{connection}} AS text)
"""
_QUEUED_BEFORE = f"""
    SELECT count(*) FROM etl_pipeline_runs older JOIN etl_pipelines op ON op.id = older.pipeline_id
    WHERE {_READS.format(pipeline="op")} = {{connection}} AND older.status = '{_RUNNING}' AND older.worker_id IS NULL
      AND (older.started_at, older.id) < ({{run}}.started_at, {{run}}.id)
      AND (older.not_before IS NULL OR older.not_before <= now())
"""
_CANDIDATE = f"""
    SELECT r.id, c.id AS connection_id, c.max_concurrent_runs
    FROM etl_pipeline_runs r
    JOIN etl_pipelines p ON p.id = r.pipeline_id
    LEFT JOIN etl_connections c ON c.id = {_READS.format(pipeline="p")}
    WHERE r.status = '{_RUNNING}' AND r.worker_id IS NULL AND r.id <> ALL(CAST(:passed AS uuid[]))
      AND (r.not_before IS NULL OR r.not_before <= now())  -- a retry waits out its backoff
      AND (CAST(:only_run AS uuid) IS NULL OR r.id = CAST(:only_run AS uuid))
      AND (p.required_label IS NULL OR p.required_label = ANY(CAST(:labels AS text[])))
      AND (c.required_label IS NULL OR c.required_label = ANY(CAST(:labels AS text[])))
      AND (c.max_concurrent_runs IS NULL
           OR ({_CONNECTION_BUSY.format(connection="c.id")}) + ({_QUEUED_BEFORE.format(connection="c.id", run="r")})
              < c.max_concurrent_runs)
    ORDER BY r.started_at, r.id LIMIT 1
    FOR UPDATE OF r SKIP LOCKED
"""
_SLOT_FREE = f"""
    SELECT ({_CONNECTION_BUSY.format(connection=":connection")})
         + ({_QUEUED_BEFORE.format(connection=":connection", run="r")}) < :limit
    FROM etl_pipeline_runs r WHERE r.id = :run
"""


# Runs writing one target table that hold a slot, and those queued before a given run.
_TARGET_SLOT_FREE = f"""
    SELECT (SELECT count(*) FROM etl_pipeline_runs busy
            WHERE busy.status = '{_RUNNING}' AND busy.worker_id IS NOT NULL
              AND busy.config_snapshot ->> 'target_table' = :target)
         + (SELECT count(*) FROM etl_pipeline_runs older JOIN etl_pipelines op ON op.id = older.pipeline_id
            WHERE op.target_table = :target AND older.status = '{_RUNNING}' AND older.worker_id IS NULL
              AND (older.started_at, older.id) < (r.started_at, r.id)
              AND (older.not_before IS NULL OR older.not_before <= now())) < :limit
    FROM etl_pipeline_runs r WHERE r.id = :run
"""
_TARGET_LOCK_NAMESPACE = 0x45544C54  # "ETLT": claimers of one target table count its slots in turn


def target_slot_free(conn: Connection, run_id: uuid.UUID, limit: int) -> bool:
    """Whether a run may start under ETL_TARGET_MAX_CONCURRENT_RUNS (0: no limit). Claimers of one
    target take a transaction-level lock on its name first, so two never both take the last slot."""
    if not limit:
        return True
    target = conn.execute(
        text("SELECT p.target_table FROM etl_pipeline_runs r JOIN etl_pipelines p ON p.id = r.pipeline_id "
             "WHERE r.id = :run"), {"run": run_id}).scalar_one()
    conn.execute(text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:target))"),
                 {"namespace": _TARGET_LOCK_NAMESPACE, "target": target})
    return bool(conn.execute(text(_TARGET_SLOT_FREE), {"target": target, "limit": limit, "run": run_id}).scalar())


def target_queue(conn: Connection, run_id: uuid.UUID, limit: int) -> dict | None:
    """For a queued run: the target table's slots, when they are what it waits for."""
    if not limit:
        return None
    row = conn.execute(
        text(
            f"""
            SELECT p.target_table,
                   (SELECT count(*) FROM etl_pipeline_runs busy WHERE busy.status = '{_RUNNING}'
                      AND busy.worker_id IS NOT NULL AND busy.config_snapshot ->> 'target_table' = p.target_table),
                   (SELECT count(*) FROM etl_pipeline_runs older JOIN etl_pipelines op ON op.id = older.pipeline_id
                    WHERE op.target_table = p.target_table AND older.status = '{_RUNNING}' AND older.worker_id IS NULL
                      AND (older.started_at, older.id) < (r.started_at, r.id))
            FROM etl_pipeline_runs r JOIN etl_pipelines p ON p.id = r.pipeline_id
            WHERE r.id = :run AND r.status = '{_RUNNING}' AND r.worker_id IS NULL
            """
        ),
        {"run": run_id},
    ).first()
    if row is None or row[1] + row[2] < limit:
        return None
    return {"waiting_for": f"target table {row[0]} (ETL_TARGET_MAX_CONCURRENT_RUNS {limit})",
            "running": row[1], "queued_ahead": row[2]}


def claim_run(conn: Connection, worker_id: str, labels: tuple[str, ...] = (),
              default_connection: str | None = None, target_limit: int = 0,
              only_run: uuid.UUID | None = None) -> ClaimedRun | None:
    """Take the oldest queued run nobody holds that its source connection has a slot for, and
    snapshot its pipeline's configuration.

    max_concurrent_runs holds across every runner: a claim of a limited connection's run locks the
    connection's row, so claimers of one connection count its slots one after the other (each count
    is a new statement, which sees the claims committed before it). Runs over the limit stay queued,
    in order: a run starts only when the claimed runs plus the runs queued before it leave a slot.

    A run whose pipeline or source connection requires a label is only for runners with that label.
    With target_limit, at most that many runs write one target table at once, likewise in order."""
    passed: list[str] = []  # limited runs another claimer took the last slot from meanwhile
    while True:
        candidate = conn.execute(
            text(_CANDIDATE), {"passed": passed, "labels": list(labels), "default_connection": default_connection,
                               "only_run": str(only_run) if only_run else None}
        ).one_or_none()
        if candidate is None:
            return None
        if candidate.max_concurrent_runs is not None:
            conn.execute(text("SELECT 1 FROM etl_connections WHERE id = :id FOR UPDATE"), {"id": candidate.connection_id})
            free = conn.execute(
                text(_SLOT_FREE),
                {"connection": candidate.connection_id, "limit": candidate.max_concurrent_runs, "run": candidate.id,
                 "default_connection": default_connection},
            ).scalar()
            if not free:
                passed.append(str(candidate.id))
                continue
        if not target_slot_free(conn, candidate.id, target_limit):
            passed.append(str(candidate.id))
            continue
        return _claim(conn, candidate.id, worker_id, default_connection)


def _claim(conn: Connection, run_id: uuid.UUID, worker_id: str, default_connection: str | None) -> ClaimedRun:
    row = conn.execute(
        text(
            """
            UPDATE etl_pipeline_runs r
            SET worker_id = :worker, claimed_at = clock_timestamp(), heartbeat_at = now(),
                config_snapshot = (
                    SELECT jsonb_build_object(
                        'name', p.name, 'type', p.type, 'mode', p.mode, 'target_table', p.target_table,
                        'batch_size', p.batch_size, 'source_query', p.source_query,
                        'incremental_key', p.incremental_key, 'required_label', p.required_label,
                        'checks', (SELECT c.checks FROM etl_pipeline_checks c WHERE c.pipeline_id = p.id),
                        -- Where it reads (never the password: the runner decrypts that at run time).
                        'source_connection', (SELECT jsonb_build_object('id', sc.id, 'name', sc.name, 'host', sc.host,
                                                                        'port', sc.port, 'database', sc.database,
                                                                        'user', sc."user",
                                                                        'max_concurrent_runs', sc.max_concurrent_runs,
                                                                        'required_label', sc.required_label)
                                              FROM etl_connections sc
                                              WHERE sc.id = coalesce(p.source_connection_id,
                                                  (SELECT d.id FROM etl_connections d WHERE d.name = :default_connection))))
                    FROM etl_pipelines p WHERE p.id = r.pipeline_id)
            WHERE r.id = :id
            RETURNING r.id, r.pipeline_id, r.cancel_requested, r.config_snapshot, r.retry_of
            """
        ),
        {"worker": worker_id, "id": run_id, "default_connection": default_connection},
    ).one()
    if row.retry_of is not None:
        # The pipeline showed FAILED while its retry waited (so it could be edited meanwhile).
        lifecycle.pipeline_claimed(conn, row.pipeline_id)
    return ClaimedRun(row.id, row.pipeline_id, row.cancel_requested, row.config_snapshot)


def connection_queue(conn: Connection, run_id: uuid.UUID, default_connection: str | None = None) -> dict | None:
    """Why a queued run waits: a required runner label, or its source connection at its limit."""
    params = {"run": run_id, "default_connection": default_connection}
    labelled = conn.execute(
        text(
            f"""
            SELECT label,
                   (SELECT count(*) FROM etl_runners w
                    WHERE label = ANY(string_to_array(w.labels, ','))
                      AND w.heartbeat_at > now() - interval '1 minute') AS runners
            FROM etl_pipeline_runs r
            JOIN etl_pipelines p ON p.id = r.pipeline_id
            LEFT JOIN etl_connections c ON c.id = {_READS.format(pipeline="p")}
            CROSS JOIN LATERAL (VALUES (p.required_label), (c.required_label)) AS required(label)
            WHERE r.id = :run AND r.status = '{_RUNNING}' AND r.worker_id IS NULL AND label IS NOT NULL
            """
        ),
        params,
    ).all()
    if labelled:
        labels = sorted({row.label for row in labelled})
        return {
            "waiting_for": "a runner labelled " + " and ".join(f"'{label}'" for label in labels),
            "runners_with_label": {row.label: row.runners for row in labelled},
        } | (_connection_limit(conn, params) or {})
    return _connection_limit(conn, params)


def _connection_limit(conn: Connection, params: dict) -> dict | None:
    row = conn.execute(
        text(
            f"""
            SELECT c.name, c.max_concurrent_runs,
                   ({_CONNECTION_BUSY.format(connection="c.id")}) AS running,
                   ({_QUEUED_BEFORE.format(connection="c.id", run="r")}) AS ahead
            FROM etl_pipeline_runs r
            JOIN etl_pipelines p ON p.id = r.pipeline_id
            JOIN etl_connections c ON c.id = {_READS.format(pipeline="p")}
            WHERE r.id = :run AND r.status = '{_RUNNING}' AND r.worker_id IS NULL AND c.max_concurrent_runs IS NOT NULL
            """
        ),
        params,
    ).one_or_none()
    if row is None or row.running + row.ahead < row.max_concurrent_runs:
        return None
    return {
        "waiting_for": f"source connection '{row.name}' (max_concurrent_runs {row.max_concurrent_runs})",
        "running": row.running,
        "queued_ahead": row.ahead,
        "max_concurrent_runs": row.max_concurrent_runs,
    }


def heartbeat_run(conn: Connection, run, worker_id: str) -> tuple[bool, str | None]:
    """Renew the lease and publish progress. Returns (still ours, cancel request)."""
    row = conn.execute(
        text(
            f"""
            UPDATE etl_pipeline_runs
            SET heartbeat_at = now(), rows_read = :rows_read, rows_written = :rows_written
            WHERE id = :id AND worker_id = :worker AND status = '{_RUNNING}'
            RETURNING cancel_requested
            """
        ),
        {"id": run.run_id, "worker": worker_id, "rows_read": run.rows_read, "rows_written": run.rows_written},
    ).one_or_none()
    return (row is not None, row.cancel_requested if row is not None else None)


def lock_owned_run(conn: Connection, run_id: uuid.UUID, worker_id: str) -> tuple[bool, str | None]:
    """The commit fence: lock the run row; (still ours and RUNNING, cancel request)."""
    row = conn.execute(
        text("SELECT status, worker_id, cancel_requested FROM etl_pipeline_runs WHERE id = :id FOR UPDATE"),
        {"id": run_id},
    ).one_or_none()
    if row is None or row.status != _RUNNING or row.worker_id != worker_id:
        return False, None
    return True, row.cancel_requested


def finish_run(
    conn: Connection,
    run_id: uuid.UUID,
    pipeline_id: uuid.UUID,
    worker_id: str,
    *,
    succeeded: bool,
    rows_read: int,
    rows_written: int,
    error_message: str | None = None,
    details: dict | None = None,
    pipeline_status: str | None = None,
    cause: str = "error",
) -> bool:
    """Record the outcome if the run is still ours; move the pipeline on. False if it was reaped.
    A failure's cause: "error" (retried per the pipeline's policy), "refused" or "cancelled";
    services/run_outcomes.py decides retries, alerts, auto-pause and downstream runs."""
    row = conn.execute(
        text(
            f"""
            UPDATE etl_pipeline_runs
            SET status = :status, finished_at = clock_timestamp(), rows_read = :rows_read,
                rows_written = :rows_written, error_message = :error,
                -- what queued the run (services/dependencies.py) stays; the rest is the run's report
                details = coalesce(CAST(:details AS jsonb), '{{}}')
                          || jsonb_strip_nulls(jsonb_build_object('triggered_by', details -> 'triggered_by'))
            WHERE id = :id AND worker_id = :worker AND status = '{_RUNNING}'
            RETURNING id
            """
        ),
        {
            "id": run_id,
            "worker": worker_id,
            "status": lifecycle.run_outcome(succeeded),
            "rows_read": rows_read,
            "rows_written": rows_written,
            "error": error_message,
            "details": _json(details),
        },
    ).one_or_none()
    if row is None:
        return False
    lifecycle.pipeline_after_run(conn, pipeline_id, succeeded, pipeline_status)
    # Retries, alerts (run.failed, run.recovered, freshness.restored), auto-pause and downstream
    # runs, all in this transaction.
    after_run_ended(conn, run_id, pipeline_id, succeeded=succeeded, error=error_message,
                    cause="cancelled" if pipeline_status == PipelineStatus.PAUSED else cause)
    return True


def add_run_details(conn: Connection, run_id: uuid.UUID, details: dict) -> None:
    conn.execute(
        text("UPDATE etl_pipeline_runs SET details = coalesce(details, '{}') || CAST(:d AS jsonb) WHERE id = :id"),
        {"id": run_id, "d": _json(details)},
    )


def reap_lost_runs(conn: Connection, lease_s: float) -> list[uuid.UUID]:
    rows = conn.execute(
        text(
            f"""
            UPDATE etl_pipeline_runs
            SET status = '{_FAILED}', finished_at = clock_timestamp(),
                error_message = 'Worker lost: no heartbeat since '
                    || to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                    || ' from worker ' || worker_id
                    || ' (lease ' || CAST(:lease AS text) || ' s); the target keeps its previous contents'
            WHERE status = '{_RUNNING}' AND worker_id IS NOT NULL
              AND heartbeat_at < now() - make_interval(secs => :lease)
            RETURNING id, pipeline_id, error_message
            """
        ),
        {"lease": float(lease_s)},
    ).all()
    for row in rows:  # a lost worker is an error like any other: the pipeline FAILED, retried, alerted
        lifecycle.pipeline_after_run(conn, row.pipeline_id, succeeded=False)
        after_run_ended(conn, row.id, row.pipeline_id, succeeded=False, error=row.error_message)
    return [row.id for row in rows]


def register_runner(conn: Connection, worker_id: str, hostname: str, pid: int, labels: tuple[str, ...] = ()) -> None:
    conn.execute(
        text(
            """
            INSERT INTO etl_runners (worker_id, hostname, pid, labels) VALUES (:w, :h, :p, :labels)
            ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
            """
        ),
        {"w": worker_id, "h": hostname, "p": pid, "labels": ",".join(labels) or None},
    )
    conn.execute(text("DELETE FROM etl_runners WHERE heartbeat_at < now() - interval '1 day'"))


def _json(value: dict | None) -> str | None:
    import json

    return None if value is None else json.dumps(value)
