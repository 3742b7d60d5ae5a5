"""A PYTHON run's tasks, read once at the start of the run and kept on its configuration snapshot.

PUT .../tasks is refused while the pipeline is RUNNING, and a queued run already makes it RUNNING,
so the list read here is the one the run was requested with."""
from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import Connection


def snapshot_tasks(conn: Connection, run_id: uuid.UUID, pipeline_id: uuid.UUID) -> list[dict]:
    tasks = conn.execute(
        text(
            """
            UPDATE etl_pipeline_runs
            SET config_snapshot = coalesce(config_snapshot, '{}'::jsonb) || jsonb_build_object('tasks', (
                SELECT coalesce(jsonb_agg(jsonb_build_object('position', t.position, 'kind', t.kind,
                                                             'config', coalesce(t.config, '{}'::jsonb))
                                          ORDER BY t.position), '[]'::jsonb)
                FROM etl_pipeline_tasks t WHERE t.pipeline_id = :pipeline))
            WHERE id = :run
            RETURNING config_snapshot -> 'tasks'
            """
        ),
        {"run": run_id, "pipeline": pipeline_id},
    ).scalar_one()
    return list(tasks or [])
