"""Beyond the v1 contract, in new endpoints only: state, schedule, reconciliation, run detail."""
from __future__ import annotations

from flask.views import MethodView

from ..services import reconciliations
from ..services import runs as run_service
from ..services import schedules as schedule_service
from ..services import state as state_service
from ..services.pipelines import get_pipeline
from . import Blueprint
from .context import current_etl, db_session, source_access
from .schemas import (
    DetailErrorSchema,
    ReconciliationSchema,
    RunDetailSchema,
    ScheduleInSchema,
    ScheduleOutSchema,
    StateInSchema,
    StateOutSchema,
)

blp = Blueprint(
    "pipeline-extras",
    __name__,
    url_prefix="/api/v1/pipelines",
    description="Incremental state, schedules, reconciliation and run detail (beyond the v1 contract).",
)



NOT_FOUND = {"description": "Pipeline (or run) not found", "schema": DetailErrorSchema}
BUSY = {"description": "The pipeline is RUNNING", "schema": DetailErrorSchema}
VALIDATION = {"description": "FastAPI-style validation errors", "schema": DetailErrorSchema}


@blp.route("/<pipeline_id>/state")
class State(MethodView):
    @blp.response(200, StateOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """The incremental watermark and its recent changes"""
        return state_service.get_state(db_session(), pipeline_id)

    @blp.arguments(StateInSchema)
    @blp.response(200, StateOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    @blp.alt_response(409, **BUSY)
    def put(self, body, pipeline_id):
        """Set the watermark (the key's value as text); refused while RUNNING"""
        return state_service.set_watermark(db_session(), pipeline_id, body["watermark"], changed_by="api")

    @blp.response(200, StateOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    @blp.alt_response(409, **BUSY)
    def delete(self, pipeline_id):
        """Reset the watermark: the next incremental run reads everything"""
        return state_service.set_watermark(db_session(), pipeline_id, None, changed_by="api")


def _schedule_view(pipeline):
    from datetime import datetime, timezone

    return {
        "id": pipeline.id,
        "schedule": pipeline.schedule,
        "next_run_at": schedule_service.next_run_at(pipeline, datetime.now(timezone.utc)),
        "schedule_last_tick": pipeline.schedule_last_tick,
    }


@blp.route("/<pipeline_id>/schedule")
class Schedule(MethodView):
    @blp.response(200, ScheduleOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """The pipeline's cron schedule (UTC) and its next fire time"""
        return _schedule_view(get_pipeline(db_session(), pipeline_id))

    @blp.arguments(ScheduleInSchema)
    @blp.response(200, ScheduleOutSchema)
    @blp.alt_response(400, description="Not a valid cron expression", schema=DetailErrorSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def put(self, body, pipeline_id):
        """Set (or with null remove) the cron schedule"""
        return _schedule_view(schedule_service.set_schedule(db_session(), pipeline_id, body["schedule"]))

    @blp.response(200, ScheduleOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def delete(self, pipeline_id):
        """Remove the schedule"""
        return _schedule_view(schedule_service.set_schedule(db_session(), pipeline_id, None))


@blp.route("/<pipeline_id>/reconcile", methods=["POST"])
@blp.response(200, ReconciliationSchema)
@blp.alt_response(400, description="Cannot reconcile (no primary key, failing query)", schema=DetailErrorSchema)
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(503, description="Too many reconciliations in flight in this process; retry later", schema=DetailErrorSchema)
@blp.alt_response(422, **VALIDATION)
def reconcile(pipeline_id):
    """Compare the source query with the target over the target's primary key, read-only"""
    app_state = current_etl()
    return reconciliations.reconcile_pipeline(
        app_state.database.sessions, pipeline_id, app_state.database.source_dsn, app_state.config.in_request_timeout_s,
        app_state.config.source_role, slots=app_state.reconcile_slots, source_access=source_access(),
    ).as_dict()


@blp.route("/<pipeline_id>/runs/<run_id>", methods=["GET"])
@blp.response(200, RunDetailSchema)
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(422, **VALIDATION)
def run_detail(pipeline_id, run_id):
    """The full record of one run: configuration, batches, timings, reconciliation"""
    return run_service.run_detail(db_session(), pipeline_id, run_id, current_etl().config.target_max_concurrent_runs)
