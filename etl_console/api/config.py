"""/api/v1/config: pipelines as code (beyond the v1 contract).

The body of plan and apply is the YAML document itself (as `etl-console plan FILE` reads it), sent
with Content-Type application/yaml (or text/yaml, application/x-yaml, text/plain); `?prune=true`
also deletes what the document does not name. JSON is YAML too, so a JSON document is accepted
with application/json. Export answers YAML; the schema answers JSON Schema for editors.
"""
from __future__ import annotations

import flask
import marshmallow as ma

from ..services import config as config_service
from . import Blueprint, fields
from .config_schemas import ConfigDocumentSchema, load_document
from .context import current_etl, db_session
from .errors import RequestValidationFailed, json_error, validation_error
from .schemas import DetailErrorSchema, _Input

blp = Blueprint(
    "config",
    __name__,
    url_prefix="/api/v1/config",
    description="Pipelines as code: export the configuration as YAML, plan and apply a YAML document.",
)

YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/plain", "application/json")
YAML_MIMETYPE = "application/yaml"
# The document's own schema, as GET /api/v1/config/schema gives it: a body it describes is parsed
# (text/yaml, application/x-yaml and text/plain are read as YAML too, and left undocumented: a
# string schema could not say that the text must be such a document).
YAML_BODY = {
    "required": True,
    "description": "The YAML document (version: 1; see GET /api/v1/config/schema). JSON is YAML too.",
    "content": {media_type: {"schema": ConfigDocumentSchema} for media_type in ("application/yaml", "application/json")},
}


class PruneQuerySchema(_Input):
    prune = fields.Boolean(load_default=False, metadata={
        "description": "Also delete pipelines and connections the document does not name"})


class FieldChangeSchema(ma.Schema):
    field = ma.fields.String()
    old = ma.fields.Raw(allow_none=True, metadata={"description": "A password is only 'set' / 'not set'"})
    new = ma.fields.Raw(allow_none=True)


class ChangeSchema(ma.Schema):
    kind = ma.fields.String(metadata={"enum": ["connection", "alert_channel", "pipeline"]})
    name = ma.fields.String()
    action = ma.fields.String(metadata={"enum": ["create", "update", "delete"]})
    fields = ma.fields.List(ma.fields.Nested(FieldChangeSchema))


class PlanOutSchema(ma.Schema):
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema))
    summary = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(),
                             metadata={"description": "Counts of create, update, delete"})
    warnings = ma.fields.List(ma.fields.String())
    text = ma.fields.String(metadata={"description": "The plan as `etl-console plan` prints it"})
    applied = ma.fields.Boolean(metadata={"description": "true once apply committed it"})


class ExportQuerySchema(_Input):
    pipeline = ma.fields.List(ma.fields.String(), metadata={
        "description": "Only these pipelines (repeat the parameter), with the connections they read"})


ERRORS = {
    400: "A service refused an object (the message names it); nothing was changed",
    415: "The body is not sent as YAML",
    422: "Not YAML, unsafe YAML tags, fields the schemas refuse, or an object the services' own checks refuse "
         "(a name given twice, a target table not allowed, a cron expression, a pipeline or connection named "
         "but not defined); loc names the object and the field",
}


def _document() -> bytes:
    request = flask.request
    if request.mimetype not in YAML_TYPES:
        flask.abort(json_error(f"send the YAML document as the body, with Content-Type {YAML_MIMETYPE}", 415))
    return request.get_data(cache=False)


def _answer(result: config_service.Plan, *, applied: bool) -> dict:
    return {**result.as_dict(), "text": result.render(), "applied": applied}


def _context():
    return config_service.context_for(current_etl().config, current_etl().database, load_document)


def _run(action, target, query):
    """action(target, document, ...), its invalid document answered as FastAPI's 422 list."""
    try:
        return action(target, _document(), _context(), prune=query["prune"])
    except config_service.ConfigDocumentInvalid as invalid:
        raise RequestValidationFailed([
            validation_error("value_error", ["body", *loc], message, None) for loc, message in invalid.problems
        ]) from None


@blp.route("/plan", methods=["POST"])
@blp.arguments(PruneQuerySchema, location="query")
@blp.doc(requestBody=YAML_BODY)
@blp.response(200, PlanOutSchema)
@blp.alt_response(400, description=ERRORS[400], schema=DetailErrorSchema)
@blp.alt_response(415, description=ERRORS[415], schema=DetailErrorSchema)
@blp.alt_response(422, description=ERRORS[422], schema=DetailErrorSchema)
def plan(query):
    """What applying the document would create, change (field by field) and, with prune, delete.
    Changes nothing; a pipeline that is RUNNING is named in `warnings`."""
    # A dry run in a session of its own, never committed.
    return _answer(_run(config_service.plan, current_etl().database.engine, query), applied=False)


@blp.route("/apply", methods=["POST"])
@blp.arguments(PruneQuerySchema, location="query")
@blp.doc(requestBody=YAML_BODY)
@blp.response(200, PlanOutSchema)
@blp.alt_response(400, description=ERRORS[400], schema=DetailErrorSchema)
@blp.alt_response(409, description="A pipeline to change or delete is RUNNING; nothing was changed",
                  schema=DetailErrorSchema)
@blp.alt_response(415, description=ERRORS[415], schema=DetailErrorSchema)
@blp.alt_response(422, description=ERRORS[422], schema=DetailErrorSchema)
def apply(query):
    """Apply the document in one transaction: all of it, or nothing. Applying it twice changes nothing."""
    return _answer(_run(config_service.apply, db_session(), query), applied=True)  # the request's transaction


@blp.route("/export", methods=["GET"])
@blp.arguments(ExportQuerySchema, location="query")
@blp.response(200, description="The YAML document", content_type=YAML_MIMETYPE)
@blp.doc(responses={"200": {"description": "The YAML document (GET /api/v1/config/schema describes it)",
                            "content": {YAML_MIMETYPE: {"schema": {"type": "object"}}}}})
@blp.alt_response(404, description="A named pipeline does not exist", schema=DetailErrorSchema)
def export(query):
    """The configuration as YAML: sorted, without ids, runtime state or secrets"""
    names = flask.request.args.getlist("pipeline") or None  # every repetition (the parser keeps the last)
    document = config_service.export_document(db_session(), names)
    if names and (missing := sorted(set(names) - {p["name"] for p in document["pipelines"]})):
        return json_error(f"no pipeline named {', '.join(map(repr, missing))}", 404)
    return flask.Response(config_service.to_yaml(document), mimetype=YAML_MIMETYPE,
                          headers={"Content-Disposition": 'inline; filename="etl.yaml"'})


@blp.route("/schema", methods=["GET"])
@blp.response(200, description="JSON Schema (2020-12) of the document")
@blp.doc(responses={"200": {"description": "JSON Schema (2020-12) of the document",
                            "content": {"application/json": {"schema": {"type": "object"}}}}})
def schema():
    """JSON Schema of the YAML document, generated from the API's own schemas (for editors)"""
    from .config_json_schema import document_json_schema

    return flask.current_app.json.response(document_json_schema(ConfigDocumentSchema))
