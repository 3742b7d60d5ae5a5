"""GET /api/v1/pipelines/{id}/settings: what PipelineOut may not carry (beyond the v1 contract)."""
from __future__ import annotations

import marshmallow as ma

from ..services import pipelines as pipeline_service
from . import Blueprint
from .context import db_session
from .schemas import DetailErrorSchema, UtcDateTime

blp = Blueprint(
    "pipeline-settings",
    __name__,
    url_prefix="/api/v1/pipelines",
    description="A pipeline's full settings, including its source connection (beyond the v1 contract).",
)


class SourceConnectionRefSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()


class PipelineSettingsSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    name = ma.fields.String()
    source_connection = ma.fields.Nested(SourceConnectionRefSchema, allow_none=True, metadata={
        "description": "The named source the query reads; null: the deployment's default source"})
    source_query = ma.fields.String()
    incremental_key = ma.fields.String(allow_none=True)
    schedule = ma.fields.String(allow_none=True)
    required_label = ma.fields.String(allow_none=True, metadata={
        "description": "Only runners started with this label run it (etl-console worker --label)"})
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


@blp.route("/<pipeline_id>/settings", methods=["GET"])
@blp.response(200, PipelineSettingsSchema)
@blp.alt_response(404, description="Pipeline not found", schema=DetailErrorSchema)
@blp.alt_response(422, description="FastAPI-style validation errors", schema=DetailErrorSchema)
def pipeline_settings(pipeline_id):
    """Settings PipelineOut does not show: the source connection, the query, the key, the schedule"""
    return pipeline_service.pipeline_settings(db_session(), pipeline_id)
