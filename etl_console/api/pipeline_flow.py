"""Retries, auto-pause and pipelines that trigger each other (beyond the v1 contract):
GET/PUT /api/v1/pipelines/{id}/retries, GET/PUT .../upstreams, GET .../lineage."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from ..services import dependencies as dependency_service
from ..services import retries as retry_service
from . import Blueprint, fields
from .context import db_session
from .schemas import DetailErrorSchema, UtcDateTime, _Input

blp = Blueprint(
    "pipeline-flow",
    __name__,
    url_prefix="/api/v1/pipelines",
    description="Retries with backoff, auto-pause, upstream pipelines and lineage (beyond the v1 contract).",
)

NOT_FOUND = {"description": "Pipeline not found", "schema": DetailErrorSchema}
VALIDATION = {"description": "FastAPI-style validation errors", "schema": DetailErrorSchema}
DAY_S = 86400.0


class RetryPolicyInSchema(_Input):
    """Fields left out keep their value."""

    max_retries = fields.Integer(ge=0, le=100, metadata={
        "description": "Retries of a failed run (not of a cancelled or paused one); 0: none"})
    retry_initial_delay_s = fields.Float(ge=0, le=DAY_S, metadata={"description": "Delay before the first retry"})
    retry_backoff_factor = fields.Float(ge=1, le=100, metadata={
        "description": "Each retry waits this many times longer than the one before"})
    retry_max_delay_s = fields.Float(ge=0, le=7 * DAY_S, metadata={"description": "No retry waits longer than this"})
    retry_jitter = fields.Float(ge=0, le=1, metadata={
        "description": "Each delay is spread by ± this fraction, so pipelines failing together retry apart"})
    auto_pause_after_failures = fields.Integer(ge=1, le=10000, allow_none=True, metadata={
        "description": "Pause the pipeline after this many consecutive failed runs (retries exhausted); null: never"})


class PendingRetrySchema(ma.Schema):
    run_id = ma.fields.UUID()
    attempt = ma.fields.Integer()
    not_before = UtcDateTime()


class RetryPolicyOutSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    max_retries = ma.fields.Integer()
    retry_initial_delay_s = ma.fields.Float()
    retry_backoff_factor = ma.fields.Float()
    retry_max_delay_s = ma.fields.Float()
    retry_jitter = ma.fields.Float()
    auto_pause_after_failures = ma.fields.Integer(allow_none=True)
    consecutive_failures = ma.fields.Integer(metadata={
        "description": "Failed runs (retries exhausted) since the last success or auto-pause"})
    pending_retry = ma.fields.Nested(PendingRetrySchema, allow_none=True, metadata={
        "description": "A retry queued and waiting out its backoff"})


class UpstreamsInSchema(_Input):
    upstreams = ma.fields.List(fields.String(min_length=1, max_length=255), required=True, metadata={
        "description": "Upstream pipelines by name or id; [] removes all. This pipeline runs after the last of "
                       "them succeeds in the same cycle"})


class PipelineRefSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()


class UpstreamsOutSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    upstreams = ma.fields.List(ma.fields.Nested(PipelineRefSchema))
    downstreams = ma.fields.List(ma.fields.Nested(PipelineRefSchema))


class LineageNodeSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    status = ma.fields.String()
    relation = ma.fields.String(metadata={"description": "self, upstream or downstream (transitively)"})


class LineageEdgeSchema(ma.Schema):
    from_ = ma.fields.UUID(data_key="from", attribute="from", metadata={"description": "The upstream"})
    to = ma.fields.UUID(metadata={"description": "The pipeline that runs after it"})
    from_name = ma.fields.String()
    to_name = ma.fields.String()


class LineageSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    nodes = ma.fields.List(ma.fields.Nested(LineageNodeSchema))
    edges = ma.fields.List(ma.fields.Nested(LineageEdgeSchema))


@blp.route("/<pipeline_id>/retries")
class Retries(MethodView):
    @blp.response(200, RetryPolicyOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """The retry policy (backoff) and auto-pause setting"""
        return retry_service.get_policy(db_session(), pipeline_id)

    @blp.arguments(RetryPolicyInSchema)
    @blp.response(200, RetryPolicyOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def put(self, body, pipeline_id):
        """Set the retry policy: retry n waits min(max_delay, initial × factor^(n-1)) × (1 ± jitter) s"""
        return retry_service.set_policy(db_session(), pipeline_id, body)


@blp.route("/<pipeline_id>/upstreams")
class Upstreams(MethodView):
    @blp.response(200, UpstreamsOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """The pipelines this one runs after, and those that run after it"""
        return dependency_service.get_upstreams(db_session(), pipeline_id)

    @blp.arguments(UpstreamsInSchema)
    @blp.response(200, UpstreamsOutSchema)
    @blp.alt_response(400, description="An upstream pipeline does not exist", schema=DetailErrorSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, description="The upstreams would form a cycle (named)", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def put(self, body, pipeline_id):
        """Replace the upstream pipelines; refused with the cycle named when they would form one"""
        return dependency_service.set_upstreams(db_session(), pipeline_id, body["upstreams"])


@blp.route("/<pipeline_id>/lineage", methods=["GET"])
@blp.response(200, LineageSchema)
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(422, **VALIDATION)
def lineage(pipeline_id):
    """Every pipeline upstream and downstream of this one, transitively, with the edges between them"""
    return dependency_service.lineage(db_session(), pipeline_id)
