"""/api/v1/pipelines: thin views over the services; every error is mapped in api.errors."""
from __future__ import annotations

from flask.views import MethodView
from ..services import pipelines as pipeline_service
from ..services import runs as run_service
from . import Blueprint
from .context import allowed_targets, current_etl, db_session, source_access, wake_runner
from .parsing import next_page_link, query_cursor
from .schemas import (
    DetailErrorSchema,
    PipelineCreateSchema,
    PipelineListQuerySchema,
    PipelineOutSchema,
    PipelineRunOutSchema,
    PipelineUpdateSchema,
    RunsQuerySchema,
)

blp = Blueprint(
    "pipelines",
    __name__,
    url_prefix="/api/v1/pipelines",
    description="Pipelines: configuration, run and pause, run history (the v1 contract).",
)


# What GET by id reads: the answer's columns only (services.pipelines.read_pipeline).
_OUT_COLUMNS = tuple(field.attribute or name for name, field in PipelineOutSchema().fields.items())
NOT_FOUND = {"description": "Pipeline not found", "schema": DetailErrorSchema}
VALIDATION = {"description": "FastAPI-style validation errors", "schema": DetailErrorSchema}


@blp.route("/")
class Pipelines(MethodView):
    @blp.arguments(PipelineListQuerySchema, location="query")
    @blp.response(200, PipelineOutSchema(many=True))
    @blp.alt_response(422, **VALIDATION)
    def get(self, query):
        """List pipelines, oldest first.

        With no parameters: every pipeline, as the v1 contract has it. Optional filters: `status`,
        `enabled`, `target_table`, `q` (name contains). With `limit`, a page of that size; when more
        follow, a `Link: <...&cursor=...>; rel="next"` header gives the next page.
        """
        parsed = dict(query)  # what this page was built from (a repeated parameter counts once, as parsed)
        after = query_cursor(query.pop("cursor")) if "cursor" in query else None
        limit = query.pop("limit", None)
        pipelines = pipeline_service.list_pipelines(
            db_session(), name_contains=query.pop("q", None), limit=limit, after=after, **query
        )
        if limit is not None and len(pipelines) == limit:
            return pipelines, next_page_link(parsed, pipelines[-1].created_at, pipelines[-1].id)
        return pipelines

    @blp.arguments(PipelineCreateSchema)
    @blp.response(201, PipelineOutSchema)
    @blp.alt_response(400, description="Target not allowed, name taken, or not a single SELECT", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def post(self, data):
        """Create a pipeline"""
        return pipeline_service.create_pipeline(db_session(), allowed_targets(), data, source_access=source_access())


@blp.route("/<pipeline_id>")
class PipelineById(MethodView):
    @blp.response(200, PipelineOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """Get a pipeline"""
        return pipeline_service.read_pipeline(current_etl().database, pipeline_id, _OUT_COLUMNS)

    @blp.arguments(PipelineUpdateSchema)
    @blp.response(200, PipelineOutSchema)
    @blp.alt_response(400, description="Target not allowed, name taken, or not a single SELECT", schema=DetailErrorSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, description="Cannot update pipeline while it is RUNNING", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def patch(self, changes, pipeline_id):
        """Update some fields of a pipeline; an empty body returns it unchanged"""
        return pipeline_service.update_pipeline(
            db_session(), allowed_targets(), pipeline_id, changes, source_access=source_access(),
            default_source_dsn=current_etl().database.source_dsn,  # re-checks a PYTHON pipeline's tasks
        )


@blp.route("/<pipeline_id>/run", methods=["POST"])
@blp.response(200, PipelineOutSchema)
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(422, **VALIDATION)
def run_pipeline(pipeline_id):
    """Start a run; while one is RUNNING this returns the pipeline unchanged"""
    pipeline, queued = run_service.request_run(
        db_session(), pipeline_id, wait_for_stopping_s=run_service.STOPPING_RUN_WAIT_S
    )
    if queued:
        wake_runner()
    return pipeline


@blp.route("/<pipeline_id>/pause", methods=["POST"])
@blp.response(200, PipelineOutSchema)
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(422, **VALIDATION)
def pause_pipeline(pipeline_id):
    """Pause; a run in flight stops at its next batch boundary and the target keeps its contents"""
    return pipeline_service.pause_pipeline(db_session(), pipeline_id)


@blp.route("/<pipeline_id>/runs", methods=["GET"])
@blp.arguments(RunsQuerySchema, location="query")
@blp.response(200, PipelineRunOutSchema(many=True))
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(422, **VALIDATION)
def list_runs(query, pipeline_id):
    """Run history, newest first (limit 1..500, default 50)"""
    return run_service.list_runs(db_session(), pipeline_id, query["limit"])
