"""The status vocabulary and the state machine, in one place.

A pipeline is IDLE, RUNNING (a run is queued or executing), PAUSED or FAILED (its last run failed);
a run is RUNNING (queued until a runner claims it), SUCCESS or FAILED. The transitions below are the
only statements that move them: the runner's (Core connections; each takes anything with .execute())
and the services' (a loaded Pipeline, flushed with the rest of their change). Alert deliveries have
their own small vocabulary.
"""
from __future__ import annotations

import enum
import uuid

from sqlalchemy import text


class PipelineStatus(enum.StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FAILED = "FAILED"


class RunStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class GateResult(enum.StrEnum):
    """A quality gate's result as the run page labels it (details.gates holds `passed`, a bool)."""

    PASSED = "passed"
    FAILED = "FAILED"

    @classmethod
    def of(cls, passed: bool) -> "GateResult":
        return cls.PASSED if passed else cls.FAILED


IDLE, RUNNING, PAUSED, FAILED = (PipelineStatus.IDLE, PipelineStatus.RUNNING, PipelineStatus.PAUSED,
                                 PipelineStatus.FAILED)
SUCCESS = RunStatus.SUCCESS

# Run ended (succeeded, failed, cancelled, lost): a PAUSED pipeline stays paused, a success of a
# disabled one pauses it, else the run's outcome decides. Only a pipeline that was RUNNING (or PAUSED
# with a run stopping) moves.
_END_PIPELINE = text(f"""
UPDATE etl_pipelines SET status = CASE WHEN status = '{PAUSED}' THEN '{PAUSED}'
                                       WHEN :pipeline_status = '{IDLE}' AND NOT enabled THEN '{PAUSED}'
                                       ELSE :pipeline_status END,
       updated_at = now()
WHERE id = :pipeline_id AND status IN ('{RUNNING}', '{PAUSED}')
""")

# Run claimed: a pipeline whose queued run waited as FAILED (a retry) or IDLE is RUNNING again.
_CLAIMED = text(f"UPDATE etl_pipelines SET status = '{RUNNING}', updated_at = now() "
                f"WHERE id = :pipeline_id AND status IN ('{FAILED}', '{IDLE}')")

# Run queued by the service itself (a downstream of a success): the pipeline is RUNNING.
_QUEUED = text(f"UPDATE etl_pipelines SET status = '{RUNNING}', updated_at = now() WHERE id = :pipeline_id")

_AUTO_PAUSED = text(f"UPDATE etl_pipelines SET status = '{PAUSED}', consecutive_failures = 0, updated_at = now() "
                    "WHERE id = :pipeline_id")


def run_outcome(succeeded: bool) -> RunStatus:
    return SUCCESS if succeeded else RunStatus.FAILED


def pipeline_after_run(executor, pipeline_id: uuid.UUID, succeeded: bool,
                       pipeline_status: PipelineStatus | str | None = None) -> None:
    """A run of the pipeline ended; pipeline_status overrides what its outcome says (a pause)."""
    status = pipeline_status or (IDLE if succeeded else FAILED)
    executor.execute(_END_PIPELINE, {"pipeline_id": pipeline_id, "pipeline_status": str(status)})


def pipeline_claimed(executor, pipeline_id: uuid.UUID) -> None:
    executor.execute(_CLAIMED, {"pipeline_id": pipeline_id})


def pipeline_queued(executor, pipeline_id: uuid.UUID) -> None:
    executor.execute(_QUEUED, {"pipeline_id": pipeline_id})


def pipeline_auto_paused(executor, pipeline_id: uuid.UUID) -> None:
    executor.execute(_AUTO_PAUSED, {"pipeline_id": pipeline_id})


# The services' transitions, on a loaded Pipeline ----------------------------------------------------
def status_when_created(enabled: bool | None) -> PipelineStatus:
    return PAUSED if enabled is False else IDLE


def run_requested(pipeline) -> None:
    """A run is queued (or waits for a runner): the pipeline is RUNNING until it ends."""
    pipeline.status = RUNNING


def paused(pipeline) -> None:
    """Paused at once; a run in flight is stopped by its cancel request, and its end keeps PAUSED."""
    pipeline.status = PAUSED


def enabled_changed(pipeline, enabled: bool) -> None:
    """Disabling pauses; enabling resumes a paused pipeline as IDLE (a FAILED one keeps its status)."""
    if enabled is False:
        pipeline.status = PAUSED
    elif enabled is True and pipeline.status == PAUSED:
        pipeline.status = IDLE
