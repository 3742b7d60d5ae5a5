"""Cron schedules: validation, next fire time, and firing due ticks exactly once across runners.

Schedules are evaluated in UTC. A tick is claimed with a conditional UPDATE of the pipeline's
schedule_last_tick, so when several runners look at the same moment only one fires it; after
downtime only the latest missed tick fires, once.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from croniter import CroniterBadDateError, croniter
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Pipeline, PipelineStatus
from . import audit
from .errors import InvalidSchedule
from .pipelines import get_pipeline
from .runs import request_run


def validate(expression: str) -> str:
    """Five cron fields (minute hour day month weekday) or a macro such as @hourly, that fires."""
    expression = " ".join(expression.split())
    fields = expression.split(" ")
    five_fields = len(fields) == 5 or (len(fields) == 1 and expression.startswith("@"))
    if not expression or not five_fields or not croniter.is_valid(expression):
        raise InvalidSchedule(f"schedule '{expression}' is not a valid cron expression (e.g. '*/15 * * * *')")
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterBadDateError, ValueError):
        raise InvalidSchedule(f"schedule '{expression}' never fires (no date matches it)") from None
    return expression


def next_run_at(pipeline: Pipeline, now: datetime) -> datetime | None:
    if not pipeline.schedule:
        return None
    try:
        return croniter(pipeline.schedule, now).get_next(datetime)
    except (CroniterBadDateError, ValueError):
        return None  # saved before validation refused such expressions: it never fires


def set_schedule(session: Session, pipeline_id: uuid.UUID, expression: str | None) -> Pipeline:
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    before = pipeline.schedule
    pipeline.schedule = validate(expression) if expression is not None else None
    audit.record(session, "pipeline.schedule.set", object_type="pipeline", object_id=pipeline.id,
                 object_name=pipeline.name, before={"schedule": before}, after={"schedule": pipeline.schedule})
    # Ticks before now are not owed: the first fire is the next tick from here.
    pipeline.schedule_last_tick = session.scalar(select(func.now())) if pipeline.schedule else None
    return pipeline


def fire_due(sessions: sessionmaker[Session]) -> list[uuid.UUID]:
    """Queue a run for every enabled, unpaused pipeline whose latest tick is not yet fired.

    A runner's unit of work, so it takes the session factory: each tick is claimed and its run
    queued in one short transaction per pipeline, and the claim makes each tick fire once across
    every runner."""
    with sessions() as session:
        now = session.scalar(select(func.now()))
        candidates = session.execute(
            select(Pipeline.id, Pipeline.schedule, Pipeline.schedule_last_tick)
            .where(Pipeline.schedule.is_not(None), Pipeline.enabled.is_(True), Pipeline.status != PipelineStatus.PAUSED)
            .order_by(Pipeline.id)
        ).all()
    fired = []
    for pipeline_id, schedule, last_tick in candidates:
        try:
            tick = croniter(schedule, now).get_prev(datetime)
        except (CroniterBadDateError, ValueError):
            continue  # an expression that never fires must not stop the others
        if last_tick is not None and tick <= last_tick:
            continue
        with sessions.begin() as session:
            claimed = session.execute(
                update(Pipeline)
                .where(
                    Pipeline.id == pipeline_id,
                    Pipeline.schedule == schedule,
                    or_(Pipeline.schedule_last_tick.is_(None), Pipeline.schedule_last_tick < tick),
                )
                .values(schedule_last_tick=tick)
                .returning(Pipeline.id)
            ).first()
            if claimed is None:
                continue  # another runner fired this tick
            _, queued = request_run(session, pipeline_id, trigger="schedule")
        if queued:
            fired.append(pipeline_id)
    return fired
