"""The v1 shapes, field for field and in the contract's order. Nothing may be added to the Out shapes."""
from __future__ import annotations

from datetime import datetime, timezone

import marshmallow as ma

from .. import pagination
from ..lifecycle import PipelineStatus, RunStatus
from . import fields

PIPELINE_TYPES = ("SQL", "PYTHON")  # PYTHON: the source query, then its tasks (GET/PUT .../tasks)
PIPELINE_MODES = ("full", "incremental")
MAX_BATCH_SIZE = 1_000_000
LABEL_PATTERN = r"^[A-Za-z0-9_.-]+$"  # runner labels (etl-console worker --label eu)
LABEL_ERROR = "a label is letters, digits, '_', '.' and '-'"


class _Input(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # Pydantic ignores unknown fields; so do we


class PipelineCreateSchema(_Input):
    name = fields.String(required=True, min_length=1, max_length=255)
    description = fields.String(allow_none=True, load_default=None)
    type = fields.Literal(PIPELINE_TYPES, load_default="SQL")
    mode = fields.Literal(PIPELINE_MODES, load_default="full")
    enabled = fields.Boolean(load_default=True)
    target_table = fields.String(required=True)
    batch_size = fields.Integer(load_default=1000, ge=1, le=MAX_BATCH_SIZE)
    source_query = fields.String(required=True, min_length=1)
    # Accepted (incremental mode's key column) but, as the contract says, never returned.
    incremental_key = fields.String(allow_none=True, load_default=None, min_length=1, max_length=255)
    # Beyond v1, accepted and never returned here (see GET /api/v1/pipelines/{id}/settings): the name or
    # id of a named source connection the source query reads; absent or null: the deployment's default.
    source_connection = fields.String(allow_none=True, load_default=None, min_length=1, max_length=255)
    required_label = fields.String(allow_none=True, load_default=None, min_length=1, max_length=64,
                                   validate=ma.validate.Regexp(LABEL_PATTERN, error=LABEL_ERROR))


class PipelineUpdateSchema(_Input):
    """All optional; only the keys sent are changed. null is refused where the column needs a value."""

    name = fields.String(min_length=1, max_length=255)
    description = fields.String(allow_none=True)
    type = fields.Literal(PIPELINE_TYPES)
    mode = fields.Literal(PIPELINE_MODES)
    enabled = fields.Boolean()
    target_table = fields.String()
    batch_size = fields.Integer(ge=1, le=MAX_BATCH_SIZE)
    source_query = fields.String(min_length=1)
    incremental_key = fields.String(allow_none=True, min_length=1, max_length=255)
    source_connection = fields.String(allow_none=True, min_length=1, max_length=255)  # null: the default source
    required_label = fields.String(allow_none=True, min_length=1, max_length=64,
                                   validate=ma.validate.Regexp(LABEL_PATTERN, error=LABEL_ERROR))


class UtcDateTime(ma.fields.Field):
    """ISO-8601 in UTC with a Z suffix, as Pydantic v2 renders an aware UTC datetime."""

    def _serialize(self, value: datetime | None, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class PipelineOutSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    description = ma.fields.String(allow_none=True)
    type = ma.fields.String()
    mode = ma.fields.String()
    enabled = ma.fields.Boolean()
    status = ma.fields.String(metadata={"enum": [status.value for status in PipelineStatus]})
    target_table = ma.fields.String()
    batch_size = ma.fields.Integer()


class PipelineRunOutSchema(ma.Schema):
    id = ma.fields.UUID()
    status = ma.fields.String(metadata={"enum": [status.value for status in RunStatus]})
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    rows_read = ma.fields.Integer()
    rows_written = ma.fields.Integer()
    error_message = ma.fields.String(allow_none=True)


class RunsQuerySchema(_Input):
    limit = fields.Integer(load_default=50, ge=1, le=500)


class DetailErrorSchema(ma.Schema):
    detail = ma.fields.Raw(metadata={"description": "A message, or FastAPI's list of validation errors"})


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    checks = ma.fields.Dict()


class PipelineListQuerySchema(_Input):
    """Optional filters and keyset pagination; with none of them the plain v1 list is returned."""

    status = fields.Literal(tuple(status.value for status in PipelineStatus))
    enabled = fields.Boolean()
    target_table = fields.String()
    q = fields.String(metadata={"description": "Name contains (case-insensitive)"})
    limit = fields.Integer(ge=1, le=500, metadata={"description": "Page size; the next page's link is in Link"})
    cursor = fields.String(min_length=1, metadata={"description": "Opaque cursor from a previous page's Link header",
                                                   "pattern": pagination.UUID_CURSOR_PATTERN})


class StateChangeSchema(ma.Schema):
    old_watermark = ma.fields.String(allow_none=True)
    new_watermark = ma.fields.String(allow_none=True)
    changed_by = ma.fields.String()
    run_id = ma.fields.UUID(allow_none=True)
    changed_at = UtcDateTime()


class StateOutSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    incremental_key = ma.fields.String(allow_none=True)
    watermark = ma.fields.String(allow_none=True)
    updated_at = UtcDateTime(allow_none=True)
    changes = ma.fields.List(ma.fields.Nested(StateChangeSchema))


class StateInSchema(_Input):
    watermark = fields.String(required=True, allow_none=True, metadata={"description": "The key's value as text"})


class ScheduleInSchema(_Input):
    schedule = fields.String(required=True, allow_none=True, metadata={"description": "Cron, UTC; null removes"})


class ScheduleOutSchema(ma.Schema):
    pipeline_id = ma.fields.UUID(attribute="id")
    schedule = ma.fields.String(allow_none=True)
    next_run_at = UtcDateTime(allow_none=True)
    last_tick = UtcDateTime(attribute="schedule_last_tick", allow_none=True)


class ReconciliationSchema(ma.Schema):
    key = ma.fields.List(ma.fields.String())
    source_rows = ma.fields.Integer()
    target_rows = ma.fields.Integer()
    missing_in_target = ma.fields.Integer()
    extra_in_target = ma.fields.Integer()
    missing_sample = ma.fields.List(ma.fields.Raw())
    extra_sample = ma.fields.List(ma.fields.Raw())
    match = ma.fields.Boolean()


class RunDetailSchema(ma.Schema):
    id = ma.fields.UUID()
    pipeline_id = ma.fields.UUID()
    status = ma.fields.String()
    trigger = ma.fields.String()
    started_at = UtcDateTime()
    claimed_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    duration_s = ma.fields.Float(allow_none=True)
    rows_read = ma.fields.Integer()
    rows_written = ma.fields.Integer()
    error_message = ma.fields.String(allow_none=True)
    worker_id = ma.fields.String(allow_none=True)
    heartbeat_at = UtcDateTime(allow_none=True)
    config = ma.fields.Dict(attribute="config_snapshot", allow_none=True)
    batches = ma.fields.Dict(allow_none=True)
    timings = ma.fields.Dict(allow_none=True)
    reconciliation = ma.fields.Dict(allow_none=True)
    gates = ma.fields.List(ma.fields.Dict(), allow_none=True)  # quality gates, pass or fail
    publish = ma.fields.Dict(allow_none=True)  # exchange taken, lock waits, lock held
    path = ma.fields.Dict(allow_none=True)  # how the rows moved ("in-database", "copy" or "python") and why
    tasks = ma.fields.List(ma.fields.Dict(), allow_none=True)  # PYTHON pipelines: per task rows in/out, seconds
    progress = ma.fields.String(allow_none=True)  # "approximate …" while an in-database statement runs, then "exact"
    queue = ma.fields.Dict(allow_none=True)  # a queued run waiting for a slot of its source connection
    lock_wait = ma.fields.Dict(allow_none=True)  # a run waiting for a lock on its target: what, how long, held by whom
    attempt = ma.fields.Integer(metadata={"description": "1 for a first run; 2 and up for its retries"})
    retry_of = ma.fields.UUID(allow_none=True, metadata={"description": "The failed run this run retries"})
    not_before = UtcDateTime(allow_none=True, metadata={
        "description": "A queued retry is not started before this"})
    retried_by = ma.fields.UUID(allow_none=True, metadata={"description": "The run that retries this failed run"})
    triggered_by = ma.fields.List(ma.fields.Dict(), allow_none=True, metadata={
        "description": "Upstream successes that queued this run (pipeline_id, pipeline, run_id)"})
