"""A PYTHON pipeline's tasks and the installed transforms (beyond the v1 contract):
GET/PUT /api/v1/pipelines/{id}/tasks and GET /api/v1/transforms."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from ..services import tasks as task_service
from . import Blueprint, fields
from .context import current_etl, db_session, source_access
from .schemas import DetailErrorSchema, _Input

blp = Blueprint(
    "pipeline-tasks",
    __name__,
    url_prefix="/api/v1",
    description="PYTHON pipelines: the ordered tasks applied to every batch, and the installed transforms.",
)


class TaskInSchema(_Input):
    kind = fields.String(required=True, min_length=1, max_length=32,
                         metadata={"description": "An installed transform (GET /api/v1/transforms)"})
    config = ma.fields.Dict(load_default=dict, metadata={"description": "Checked against the transform's schema"})


class TaskOutSchema(ma.Schema):
    position = ma.fields.Integer(metadata={"description": "1-based order of application"})
    kind = ma.fields.String()
    config = ma.fields.Dict()


class TasksInSchema(_Input):
    """The whole ordered list (an object, as every body here: FastAPI's body is a model)."""

    tasks = ma.fields.List(ma.fields.Nested(TaskInSchema), required=True,
                           metadata={"description": "Applied in this order to every batch; [] removes all"})


class TasksOutSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    tasks = ma.fields.List(ma.fields.Nested(TaskOutSchema))


class TransformOutSchema(ma.Schema):
    kind = ma.fields.String()
    doc = ma.fields.String()
    source = ma.fields.String(metadata={"description": "module:class of the installed code"})
    config_schema = ma.fields.Dict()


NOT_FOUND = {"description": "Pipeline not found", "schema": DetailErrorSchema}
VALIDATION = {"description": "FastAPI-style validation errors", "schema": DetailErrorSchema}


@blp.route("/pipelines/<pipeline_id>/tasks")
class Tasks(MethodView):
    @blp.response(200, TasksOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """The pipeline's tasks, in the order they run"""
        return {"pipeline_id": pipeline_id, "tasks": task_service.list_tasks(db_session(), pipeline_id)}

    @blp.arguments(TasksInSchema)
    @blp.response(200, TasksOutSchema)
    @blp.alt_response(400, description="Unknown kind, invalid config, columns that do not fit, or a SQL pipeline",
                      schema=DetailErrorSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, description="Cannot update pipeline while it is RUNNING", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def put(self, body, pipeline_id):
        """Replace the whole ordered list; checked against the source's columns and the target table"""
        tasks = task_service.replace_tasks(db_session(), pipeline_id, body["tasks"], source_access=source_access(),
                                           default_source_dsn=current_etl().database.source_dsn)
        return {"pipeline_id": pipeline_id, "tasks": tasks}


@blp.route("/transforms", methods=["GET"])
@blp.response(200, TransformOutSchema(many=True))
def list_transforms():
    """Installed transforms (entry-point group etl_console.transforms) with their docs and config schemas"""
    from ..transforms import describe_transforms  # pyarrow loads when transforms are first needed

    return describe_transforms()
