"""Pipelines that trigger each other: upstream edges, cycle refusal, lineage, and queueing.

Rule (documented in the README): a downstream runs after the LAST of its upstreams succeeds in the
same cycle. Each edge keeps the upstream's latest success the downstream has not run after
(pending_run_id). When an upstream succeeds, the transaction that records the SUCCESS marks its
edges, then, under each downstream's row lock, queues the downstream if every one of its edges is
marked, clearing the marks in the same transaction. The row lock orders concurrent upstream
successes on any number of runners, so each cycle queues the downstream exactly once.

A downstream that is paused or disabled is not queued; one with a run queued or in flight keeps
its marks and is queued when that run ends (several upstream successes meanwhile make one run).
"""
from __future__ import annotations

import json
import uuid

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from ..db.models import Pipeline, PipelineUpstream
from .. import lifecycle
from ..lifecycle import PipelineStatus, RunStatus
from ..runner.wakeup import CHANNEL
from .errors import DependencyCycle, UnknownUpstream
from .pipelines import get_pipeline

# Edits of the graph take this transaction-level lock, so two saves cannot each add half a cycle.
_GRAPH_LOCK = 0x45544C44  # "ETLD"


def record_success(conn: Connection, upstream_id: uuid.UUID, run_id: uuid.UUID) -> None:
    downstream_ids = conn.execute(
        text(
            """
            UPDATE etl_pipeline_upstreams SET pending_run_id = :run, pending_at = clock_timestamp()
            WHERE upstream_id = :u RETURNING pipeline_id
            """
        ),
        {"u": upstream_id, "run": run_id},
    ).scalars().all()
    for downstream_id in sorted(downstream_ids):  # one lock order for every runner
        queue_if_ready(conn, downstream_id)


def queue_if_ready(conn: Connection, pipeline_id: uuid.UUID) -> uuid.UUID | None:
    """Queue a run of pipeline_id if every upstream has a success it has not run after."""
    pipeline = conn.execute(
        text("SELECT status, enabled FROM etl_pipelines WHERE id = :p FOR UPDATE"), {"p": pipeline_id}
    ).one_or_none()
    if pipeline is None or pipeline.status == PipelineStatus.PAUSED or not pipeline.enabled:
        return None
    edges = conn.execute(
        text(
            """
            SELECT e.upstream_id, u.name, e.pending_run_id FROM etl_pipeline_upstreams e
            JOIN etl_pipelines u ON u.id = e.upstream_id WHERE e.pipeline_id = :p ORDER BY u.name
            """
        ),
        {"p": pipeline_id},
    ).all()
    if not edges or any(edge.pending_run_id is None for edge in edges):
        return None
    busy = conn.execute(
        text(f"SELECT 1 FROM etl_pipeline_runs WHERE pipeline_id = :p AND status = '{RunStatus.RUNNING}'"), {"p": pipeline_id}
    ).first()
    if busy is not None:
        return None
    conn.execute(text("UPDATE etl_pipeline_upstreams SET pending_run_id = NULL, pending_at = NULL WHERE pipeline_id = :p"),
                 {"p": pipeline_id})
    run_id = uuid.uuid4()
    triggered_by = [{"pipeline_id": str(edge.upstream_id), "pipeline": edge.name, "run_id": str(edge.pending_run_id)}
                    for edge in edges]
    conn.execute(
        text(
            f"""
            INSERT INTO etl_pipeline_runs (id, pipeline_id, status, rows_read, rows_written, trigger, attempt, details)
            VALUES (:id, :p, '{RunStatus.RUNNING}', 0, 0, 'upstream', 1, CAST(:details AS jsonb))
            """
        ),
        {"id": run_id, "p": pipeline_id, "details": json.dumps({"triggered_by": triggered_by})},
    )
    lifecycle.pipeline_queued(conn, pipeline_id)
    conn.execute(text(f"NOTIFY {CHANNEL}"))  # idle runners on every host wake at commit
    return run_id


# The graph, for the API and the console ---------------------------------------------------------

def upstreams_of(session: Session, pipeline_id: uuid.UUID) -> list[Pipeline]:
    return list(session.scalars(
        select(Pipeline).join(PipelineUpstream, PipelineUpstream.upstream_id == Pipeline.id)
        .where(PipelineUpstream.pipeline_id == pipeline_id).order_by(Pipeline.name)
    ))


def downstreams_of(session: Session, pipeline_id: uuid.UUID) -> list[Pipeline]:
    return list(session.scalars(
        select(Pipeline).join(PipelineUpstream, PipelineUpstream.pipeline_id == Pipeline.id)
        .where(PipelineUpstream.upstream_id == pipeline_id).order_by(Pipeline.name)
    ))


_FLOW = text(
    f"""
    SELECT (SELECT coalesce(json_agg(json_build_object('id', u.id, 'name', u.name) ORDER BY u.name), '[]')
            FROM etl_pipeline_upstreams e JOIN etl_pipelines u ON u.id = e.upstream_id WHERE e.pipeline_id = :p)
               AS upstreams,
           (SELECT coalesce(json_agg(json_build_object('id', d.id, 'name', d.name) ORDER BY d.name), '[]')
            FROM etl_pipeline_upstreams e JOIN etl_pipelines d ON d.id = e.pipeline_id WHERE e.upstream_id = :p)
               AS downstreams,
           (SELECT json_build_object('run_id', r.id, 'attempt', r.attempt,
                                     'not_before', to_char(r.not_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
            FROM etl_pipeline_runs r WHERE r.pipeline_id = :p AND r.status = '{RunStatus.RUNNING}' AND r.worker_id IS NULL
              AND r.retry_of IS NOT NULL LIMIT 1) AS pending_retry
    """
)


def flow_of(session: Session, pipeline: Pipeline) -> dict:
    """For the pipeline page, in one statement: upstreams, downstreams and the waiting retry."""
    from datetime import datetime

    row = session.execute(_FLOW, {"p": pipeline.id}).one()
    pending = row.pending_retry
    if pending is not None:
        pending = {**pending, "not_before": datetime.fromisoformat(pending["not_before"])}
    return {"pipeline_id": pipeline.id, "upstreams": row.upstreams, "downstreams": row.downstreams,
            "pending_retry": pending}


def get_upstreams(session: Session, pipeline_id: uuid.UUID) -> dict:
    pipeline = get_pipeline(session, pipeline_id)
    return {
        "pipeline_id": pipeline.id,
        "upstreams": [_ref(p) for p in upstreams_of(session, pipeline.id)],
        "downstreams": [_ref(p) for p in downstreams_of(session, pipeline.id)],
    }


def set_upstreams(session: Session, pipeline_id: uuid.UUID, refs: list[str]) -> dict:
    """Replace the pipeline's upstreams (names or ids). Refuses unknown names and cycles (the
    cycle is named); edges kept keep their pending successes. The caller commits."""
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _GRAPH_LOCK})
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    wanted: dict[uuid.UUID, Pipeline] = {}
    for ref in refs:
        upstream = _resolve(session, ref)
        wanted[upstream.id] = upstream
    for upstream in wanted.values():
        path = _path(session, pipeline.id, upstream.id)  # pipeline → … → upstream already?
        if path is not None:
            raise DependencyCycle([*_names(session, path), pipeline.name])
    existing = set(session.scalars(select(PipelineUpstream.upstream_id).where(PipelineUpstream.pipeline_id == pipeline.id)))
    before = [p.name for p in upstreams_of(session, pipeline.id)]
    for gone in existing - set(wanted):
        session.execute(text("DELETE FROM etl_pipeline_upstreams WHERE pipeline_id = :p AND upstream_id = :u"),
                        {"p": pipeline.id, "u": gone})
    for new in set(wanted) - existing:
        session.add(PipelineUpstream(pipeline_id=pipeline.id, upstream_id=new))
    session.flush()
    from . import audit

    audit.record(session, "pipeline.upstreams.put", object_type="pipeline", object_id=pipeline.id,
                 object_name=pipeline.name, before={"upstreams": before},
                 after={"upstreams": sorted(p.name for p in wanted.values())})
    return get_upstreams(session, pipeline.id)


def lineage(session: Session, pipeline_id: uuid.UUID) -> dict:
    """Every pipeline upstream and downstream of this one, transitively, and the edges between them
    (from upstream to downstream)."""
    pipeline = get_pipeline(session, pipeline_id)
    rows = session.execute(
        text(
            """
            WITH RECURSIVE up(id) AS (
                SELECT upstream_id FROM etl_pipeline_upstreams WHERE pipeline_id = :p
                UNION SELECT e.upstream_id FROM etl_pipeline_upstreams e JOIN up ON e.pipeline_id = up.id
            ), down(id) AS (
                SELECT pipeline_id FROM etl_pipeline_upstreams WHERE upstream_id = :p
                UNION SELECT e.pipeline_id FROM etl_pipeline_upstreams e JOIN down ON e.upstream_id = down.id
            )
            SELECT id, 'upstream' AS relation FROM up UNION ALL SELECT id, 'downstream' FROM down
            """
        ),
        {"p": pipeline.id},
    ).all()
    relation = {row.id: row.relation for row in rows}
    relation[pipeline.id] = "self"
    nodes = {p.id: p for p in session.scalars(select(Pipeline).where(Pipeline.id.in_(list(relation))))}
    edges = session.execute(
        select(PipelineUpstream.upstream_id, PipelineUpstream.pipeline_id)
        .where(PipelineUpstream.upstream_id.in_(list(relation)), PipelineUpstream.pipeline_id.in_(list(relation)))
    ).all()
    # Only edges on a path through this pipeline: an upstream's other downstreams are not its lineage.
    on_path = [e for e in edges if not (relation[e.upstream_id] == "upstream" and relation[e.pipeline_id] == "downstream")]
    return {
        "pipeline_id": pipeline.id,
        "nodes": sorted(({**_ref(nodes[node_id]), "status": nodes[node_id].status, "relation": relation[node_id]}
                         for node_id in nodes), key=lambda n: (_ORDER[n["relation"]], n["name"])),
        "edges": sorted(({"from": e.upstream_id, "to": e.pipeline_id,
                          "from_name": nodes[e.upstream_id].name, "to_name": nodes[e.pipeline_id].name}
                         for e in on_path), key=lambda e: (e["from_name"], e["to_name"])),
    }


_ORDER = {"upstream": 0, "self": 1, "downstream": 2}  # nodes in the direction data flows


def _ref(pipeline: Pipeline) -> dict:
    return {"id": pipeline.id, "name": pipeline.name}


def _resolve(session: Session, ref: str) -> Pipeline:
    try:
        found = session.get(Pipeline, uuid.UUID(ref))
    except ValueError:
        found = None
    found = found or session.scalars(select(Pipeline).where(Pipeline.name == ref)).one_or_none()
    if found is None:
        raise UnknownUpstream(f"upstream pipeline '{ref}' does not exist")
    return found


def _path(session: Session, start: uuid.UUID, goal: uuid.UUID) -> list[uuid.UUID] | None:
    """A path start → … → goal following the flow of data (upstream to downstream), if any."""
    if start == goal:
        return [start]
    previous: dict[uuid.UUID, uuid.UUID] = {}
    frontier = [start]
    while frontier:
        children = session.execute(
            select(PipelineUpstream.upstream_id, PipelineUpstream.pipeline_id)
            .where(PipelineUpstream.upstream_id.in_(frontier))
        ).all()
        frontier = []
        for parent, child in children:
            if child in previous or child == start:
                continue
            previous[child] = parent
            if child == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return list(reversed(path))
            frontier.append(child)
    return None


def _names(session: Session, ids: list[uuid.UUID]) -> list[str]:
    names = dict(session.execute(select(Pipeline.id, Pipeline.name).where(Pipeline.id.in_(ids))).all())
    return [names[i] for i in ids]
