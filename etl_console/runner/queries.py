"""The runner's SQL: claims, heartbeats, fencing and the reaper, each one statement where it can be."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

_END_PIPELINE = """
UPDATE etl_pipelines SET status = CASE WHEN status = 'PAUSED' THEN 'PAUSED'
                                       WHEN :pipeline_status = 'IDLE' AND NOT enabled THEN 'PAUSED'
                                       ELSE :pipeline_status END,
       updated_at = now()
WHERE id = :pipeline_id AND status IN ('RUNNING', 'PAUSED')
"""


@dataclass(frozen=True)
class ClaimedRun:
    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    cancel_requested: str | None
    config: dict[str, Any]


def claim_run(conn: Connection, worker_id: str) -> ClaimedRun | None:
    """Take the oldest queued run nobody holds, and snapshot its pipeline's configuration."""
    row = conn.execute(
        text(
            """
            WITH next AS (
                SELECT r.id FROM etl_pipeline_runs r
                WHERE r.status = 'RUNNING' AND r.worker_id IS NULL
                ORDER BY r.started_at LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE etl_pipeline_runs r
            SET worker_id = :worker, claimed_at = now(), heartbeat_at = now(),
                config_snapshot = (
                    SELECT jsonb_build_object(
                        'name', p.name, 'type', p.type, 'mode', p.mode, 'target_table', p.target_table,
                        'batch_size', p.batch_size, 'source_query', p.source_query,
                        'incremental_key', p.incremental_key,
                        'checks', (SELECT c.checks FROM etl_pipeline_checks c WHERE c.pipeline_id = p.id),
                        -- Where it reads (never the password: the runner decrypts that at run time).
                        'source_connection', (SELECT jsonb_build_object('id', sc.id, 'name', sc.name, 'host', sc.host,
                                                                        'port', sc.port, 'database', sc.database,
                                                                        'user', sc."user")
                                              FROM etl_connections sc WHERE sc.id = p.source_connection_id))
                    FROM etl_pipelines p WHERE p.id = r.pipeline_id)
            FROM next WHERE r.id = next.id
            RETURNING r.id, r.pipeline_id, r.cancel_requested, r.config_snapshot
            """
        ),
        {"worker": worker_id},
    ).one_or_none()
    if row is None:
        return None
    return ClaimedRun(row.id, row.pipeline_id, row.cancel_requested, row.config_snapshot)


def heartbeat_run(conn: Connection, run, worker_id: str) -> tuple[bool, str | None]:
    """Renew the lease and publish progress. Returns (still ours, cancel request)."""
    row = conn.execute(
        text(
            """
            UPDATE etl_pipeline_runs
            SET heartbeat_at = now(), rows_read = :rows_read, rows_written = :rows_written
            WHERE id = :id AND worker_id = :worker AND status = 'RUNNING'
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
    if row is None or row.status != "RUNNING" or row.worker_id != worker_id:
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
) -> bool:
    """Record the outcome if the run is still ours; move the pipeline on. False if it was reaped."""
    row = conn.execute(
        text(
            """
            UPDATE etl_pipeline_runs
            SET status = :status, finished_at = clock_timestamp(), rows_read = :rows_read,
                rows_written = :rows_written, error_message = :error, details = CAST(:details AS jsonb)
            WHERE id = :id AND worker_id = :worker AND status = 'RUNNING'
            RETURNING id
            """
        ),
        {
            "id": run_id,
            "worker": worker_id,
            "status": "SUCCESS" if succeeded else "FAILED",
            "rows_read": rows_read,
            "rows_written": rows_written,
            "error": error_message,
            "details": _json(details),
        },
    ).one_or_none()
    if row is None:
        return False
    new_status = pipeline_status or ("IDLE" if succeeded else "FAILED")
    conn.execute(text(_END_PIPELINE), {"pipeline_id": pipeline_id, "pipeline_status": new_status})
    return True


def add_run_details(conn: Connection, run_id: uuid.UUID, details: dict) -> None:
    conn.execute(
        text("UPDATE etl_pipeline_runs SET details = coalesce(details, '{}') || CAST(:d AS jsonb) WHERE id = :id"),
        {"id": run_id, "d": _json(details)},
    )


def reap_lost_runs(conn: Connection, lease_s: float) -> list[uuid.UUID]:
    rows = conn.execute(
        text(
            """
            WITH lost AS (
                UPDATE etl_pipeline_runs
                SET status = 'FAILED', finished_at = clock_timestamp(),
                    error_message = 'Worker lost: no heartbeat since '
                        || to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                        || ' from worker ' || worker_id
                        || ' (lease ' || CAST(:lease AS text) || ' s); the target keeps its previous contents'
                WHERE status = 'RUNNING' AND worker_id IS NOT NULL
                  AND heartbeat_at < now() - make_interval(secs => :lease)
                RETURNING id, pipeline_id
            ), moved AS (
                UPDATE etl_pipelines p
                SET status = CASE WHEN p.status = 'PAUSED' THEN 'PAUSED' ELSE 'FAILED' END, updated_at = now()
                FROM lost WHERE p.id = lost.pipeline_id AND p.status IN ('RUNNING', 'PAUSED')
            )
            SELECT id FROM lost
            """
        ),
        {"lease": float(lease_s)},
    )
    return [row.id for row in rows]


def register_runner(conn: Connection, worker_id: str, hostname: str, pid: int) -> None:
    conn.execute(
        text(
            """
            INSERT INTO etl_runners (worker_id, hostname, pid) VALUES (:w, :h, :p)
            ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
            """
        ),
        {"w": worker_id, "h": hostname, "p": pid},
    )
    conn.execute(text("DELETE FROM etl_runners WHERE heartbeat_at < now() - interval '1 day'"))


def _json(value: dict | None) -> str | None:
    import json

    return None if value is None else json.dumps(value)
