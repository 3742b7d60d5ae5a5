"""The v1 shapes, field for field and in the contract's order. Nothing may be added to the Out shapes."""
from __future__ import annotations

from datetime import datetime, timezone

import marshmallow as ma

from . import fields

PIPELINE_TYPES = ("SQL",)
PIPELINE_MODES = ("full",)
MAX_BATCH_SIZE = 1_000_000


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
    status = ma.fields.String(metadata={"enum": ["IDLE", "RUNNING", "PAUSED", "FAILED"]})
    target_table = ma.fields.String()
    batch_size = ma.fields.Integer()


class PipelineRunOutSchema(ma.Schema):
    id = ma.fields.UUID()
    status = ma.fields.String(metadata={"enum": ["RUNNING", "SUCCESS", "FAILED"]})
    started_at = UtcDateTime(metadata={"type": "string", "format": "date-time"})
    finished_at = UtcDateTime(allow_none=True, metadata={"type": "string", "format": "date-time"})
    rows_read = ma.fields.Integer()
    rows_written = ma.fields.Integer()
    error_message = ma.fields.String(allow_none=True)


class PipelinePathSchema(ma.Schema):
    pipeline_id = fields.Uuid(required=True)


class RunsQuerySchema(_Input):
    limit = fields.Integer(load_default=50, ge=1, le=500)


class DetailErrorSchema(ma.Schema):
    detail = ma.fields.Raw(metadata={"description": "A message, or FastAPI's list of validation errors"})


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    checks = ma.fields.Dict()
