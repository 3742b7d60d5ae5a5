"""Pause or run many pipelines at once, through the very services a single Pause or Run calls
(pipelines.pause_pipeline, runs.request_run): the same checks, transitions and records apply to
each one. Each pipeline is its own transaction, as a single action is (so hundreds of row locks
are never held at once), and what happened to each is counted so the operator reads "3 paused,
1 already paused". That is why these take the session factory, not the caller's session. No Flask here.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Pipeline, PipelineStatus
from .errors import PipelineNotFound
from .pipelines import pause_pipeline
from .runs import request_run

MAX_SELECTED = 500  # the largest list page

# Outcomes in the order the summary names them.
PAUSED, ALREADY_PAUSED = "paused", "already paused"
STARTED, ALREADY_RUNNING, STOPPING = "started", "already running", "still stopping after a pause (try again in a moment)"
NOT_FOUND = "not found"


@dataclass
class BulkOutcome:
    counts: dict[str, int] = field(default_factory=dict)  # outcome -> how many, in first-seen order

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    @property
    def queued_runs(self) -> int:
        return self.counts.get(STARTED, 0)

    def summary(self) -> str:
        return ", ".join(f"{count} {outcome}" for outcome, count in self.counts.items())


def pause_many(sessions: sessionmaker[Session], pipeline_ids: Iterable[uuid.UUID]) -> BulkOutcome:
    outcome = BulkOutcome()
    for pipeline_id in _distinct(pipeline_ids):
        try:
            with sessions.begin() as session:
                before = session.scalar(select(Pipeline.status).where(Pipeline.id == pipeline_id))
                pause_pipeline(session, pipeline_id)
        except PipelineNotFound:
            outcome.add(NOT_FOUND)
            continue
        outcome.add(ALREADY_PAUSED if before == PipelineStatus.PAUSED else PAUSED)
    return outcome


def run_many(sessions: sessionmaker[Session], pipeline_ids: Iterable[uuid.UUID]) -> BulkOutcome:
    """Queue a run of each; a run that a pause is still stopping is not waited for (a single Run
    waits up to a few seconds; hundreds of them would hold the request for minutes)."""
    outcome = BulkOutcome()
    for pipeline_id in _distinct(pipeline_ids):
        try:
            with sessions.begin() as session:
                pipeline, queued = request_run(session, pipeline_id)
                status = pipeline.status
        except PipelineNotFound:
            outcome.add(NOT_FOUND)
            continue
        if queued:
            outcome.add(STARTED)
        else:
            outcome.add(ALREADY_RUNNING if status == PipelineStatus.RUNNING else STOPPING)
    return outcome


def _distinct(pipeline_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(pipeline_ids))
