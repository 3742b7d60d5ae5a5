"""A pipeline's quality gates: GET/PUT /api/v1/pipelines/{id}/checks (beyond the v1 contract)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from ..services import checks as check_service
from . import Blueprint, fields
from .context import db_session
from .schemas import DetailErrorSchema, UtcDateTime, _Input

blp = Blueprint(
    "pipeline-checks",
    __name__,
    url_prefix="/api/v1/pipelines",
    description="Quality gates a full load must pass before it replaces the target (beyond the v1 contract).",
)


class AssertionSchema(_Input):
    name = fields.String(required=True, min_length=1, max_length=100)
    sql = fields.String(required=True, min_length=1, max_length=20_000, metadata={
        "description": "A SELECT that must return no rows; the loaded rows are the relation `loaded`"})


class ChecksInSchema(_Input):
    """The whole set of checks; omitted keys take their defaults (PUT replaces)."""

    min_rows = fields.Integer(allow_none=True, load_default=None, ge=0,
                              metadata={"description": "At least this many rows must be loaded"})
    max_drop_percent = ma.fields.Float(allow_none=True, load_default=None, validate=ma.validate.Range(0, 100),
                                       metadata={"description": "Largest allowed shrink of the current target, in %"})
    allow_empty = fields.Boolean(load_default=False, metadata={
        "description": "Let an empty load replace a non-empty target (refused by default)"})
    not_null_columns = ma.fields.List(fields.String(min_length=1, max_length=255), load_default=list)
    unique_keys = ma.fields.List(ma.fields.List(fields.String(min_length=1, max_length=255)), load_default=list,
                                 metadata={"description": "Column lists that must be unique in the load"})
    assertions = ma.fields.List(ma.fields.Nested(AssertionSchema), load_default=list)


class ChecksOutSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    min_rows = ma.fields.Integer(allow_none=True)
    max_drop_percent = ma.fields.Float(allow_none=True)
    allow_empty = ma.fields.Boolean()
    not_null_columns = ma.fields.List(ma.fields.String())
    unique_keys = ma.fields.List(ma.fields.List(ma.fields.String()))
    assertions = ma.fields.List(ma.fields.Nested(AssertionSchema))
    updated_at = UtcDateTime(allow_none=True)


NOT_FOUND = {"description": "Pipeline not found", "schema": DetailErrorSchema}
VALIDATION = {"description": "FastAPI-style validation errors", "schema": DetailErrorSchema}


@blp.route("/<pipeline_id>/checks")
class Checks(MethodView):
    @blp.response(200, ChecksOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """The quality gates of the pipeline's loads"""
        return check_service.get_checks(db_session(), pipeline_id)

    @blp.arguments(ChecksInSchema)
    @blp.response(200, ChecksOutSchema)
    @blp.alt_response(400, description="An assertion that is not one SELECT, or a bad value", schema=DetailErrorSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, description="The pipeline is RUNNING", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def put(self, body, pipeline_id):
        """Replace the quality gates; refused while the pipeline is RUNNING"""
        return check_service.set_checks(db_session(), pipeline_id, body)
