"""Freshness: "a successful run at least every N minutes", per pipeline. No HTTP here.

A pipeline with freshness_minutes is stale when its last success (etl_pipelines.last_success_at,
kept by the runner) is older than that, or, before any success, when freshness_set_at (or its
creation) is. Failures, a paused pipeline and a schedule that never fired are all the same rule.

freshness_breached_at marks a stale pipeline once: a runner step (check()) sets it with a
conditional UPDATE and emits freshness.breached in the same transaction; the success that makes the
pipeline fresh again clears it and emits freshness.restored (in the run's own transaction), as does
check() when the pipeline became fresh otherwise (its limit was raised). A row's conditional UPDATE
can succeed for one transaction only, so each fires once whatever the number of runners.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, text
from sqlalchemy.sql.elements import ColumnElement

from ..db.models import Pipeline
from . import alert_events

_LOCK_NAMESPACE = 0x45544C46  # "ETLF": one runner at a time runs the freshness step
# The same rule as stale_condition(), for plain SQL over etl_pipelines aliased p.
STALE_SQL = ("p.freshness_minutes IS NOT NULL AND coalesce(p.last_success_at, p.freshness_set_at, p.created_at) "
             "< now() - make_interval(mins => p.freshness_minutes)")


def stale_condition(pipeline=Pipeline) -> ColumnElement[bool]:
    """SQL predicate: the pipeline has a freshness limit and is past it (for filters and badges).
    `pipeline` may be an alias of Pipeline."""
    since = func.coalesce(pipeline.last_success_at, pipeline.freshness_set_at, pipeline.created_at)
    limit = func.make_interval(0, 0, 0, 0, 0, pipeline.freshness_minutes)  # years..hours, mins
    return and_(pipeline.freshness_minutes.is_not(None), since < func.now() - limit)


def is_stale(pipeline: Pipeline, now: datetime) -> bool:
    """The same rule in Python, for a row already loaded."""
    if pipeline.freshness_minutes is None:
        return False
    since = pipeline.last_success_at or pipeline.freshness_set_at or pipeline.created_at
    return since is not None and (now - since).total_seconds() > pipeline.freshness_minutes * 60


def _key(kind: str, pipeline_id, breached_at: datetime) -> str:
    return alert_events.event_key(kind, pipeline_id, suffix=str(int(breached_at.timestamp() * 1000)))


def check(session) -> tuple[list, list]:
    """Mark newly stale pipelines breached and fresh-again ones restored, alerting each once.
    Returns (breached ids, restored ids). The caller commits."""
    if not session.execute(text("SELECT pg_try_advisory_xact_lock(:ns, 1)"), {"ns": _LOCK_NAMESPACE}).scalar():
        return [], []  # another runner is doing it right now
    breached = session.execute(text(
        f"UPDATE etl_pipelines p SET freshness_breached_at = clock_timestamp() "
        f"WHERE p.freshness_breached_at IS NULL AND {STALE_SQL} RETURNING p.id, p.freshness_breached_at, "
        f"p.freshness_minutes, p.last_success_at")).all()
    for row in breached:
        alert_events.emit(session, alert_events.FRESHNESS_BREACHED, pipeline_id=row.id,
                          key=_key(alert_events.FRESHNESS_BREACHED, row.id, row.freshness_breached_at),
                          error=f"no successful run in the last {row.freshness_minutes} minutes",
                          extra={"freshness": _details(row.freshness_minutes, row.last_success_at,
                                                       row.freshness_breached_at)})
    restored = session.execute(text(
        f"UPDATE etl_pipelines p SET freshness_breached_at = NULL FROM etl_pipelines old "
        f"WHERE old.id = p.id AND p.freshness_breached_at IS NOT NULL AND p.freshness_minutes IS NOT NULL "
        f"AND NOT ({STALE_SQL}) RETURNING p.id, old.freshness_breached_at AS breached_at, p.freshness_minutes, "
        f"p.last_success_at")).all()
    for row in restored:
        _emit_restored(session, row.id, row.breached_at, row.freshness_minutes, row.last_success_at, run_id=None)
    return [row.id for row in breached], [row.id for row in restored]


def restore_if_breached(session, pipeline_id, *, run_id=None) -> bool:
    """A success arrived: a breached pipeline is fresh again (alerted once). In the run's transaction."""
    row = session.execute(text(
        "UPDATE etl_pipelines p SET freshness_breached_at = NULL FROM etl_pipelines old "
        "WHERE old.id = p.id AND p.id = :id AND p.freshness_breached_at IS NOT NULL "
        "RETURNING old.freshness_breached_at AS breached_at, p.freshness_minutes, p.last_success_at"),
        {"id": pipeline_id}).one_or_none()
    if row is None:
        return False
    _emit_restored(session, pipeline_id, row.breached_at, row.freshness_minutes, row.last_success_at, run_id=run_id)
    return True


def _emit_restored(session, pipeline_id, breached_at, minutes, last_success_at, run_id) -> None:
    alert_events.emit(session, alert_events.FRESHNESS_RESTORED, pipeline_id=pipeline_id, run_id=run_id,
                      key=_key(alert_events.FRESHNESS_RESTORED, pipeline_id, breached_at),
                      extra={"freshness": _details(minutes, last_success_at, breached_at)})


def _details(minutes, last_success_at, breached_at) -> dict:
    return {"freshness_minutes": minutes, "last_success_at": alert_events._iso(last_success_at),
            "breached_at": alert_events._iso(breached_at)}


def stale_pipelines(session) -> list[tuple[str, bool]]:
    """(name, stale) of every pipeline with a freshness limit, for /metrics."""
    rows = session.execute(text(f"SELECT p.name, ({STALE_SQL}) FROM etl_pipelines p "
                                "WHERE p.freshness_minutes IS NOT NULL ORDER BY p.name"))
    return [(row[0], bool(row[1])) for row in rows]
