"""The pipelines-as-code document (YAML, version 1), as marshmallow schemas built from the API's own
input schemas: a field accepted by POST /pipelines/ is accepted, and refused in the same words, here.

Unlike the API's bodies, a document refuses unknown keys: a typo in a file under review must not
silently do nothing. The JSON Schema editors validate against is generated from these classes.
"""
from __future__ import annotations

import marshmallow as ma

from ..services.alert_events import EVENT_KINDS
from . import fields
from .alerts import ChannelCreateSchema, PipelineAlertsInSchema
from .checks import ChecksInSchema
from .connections import ConnectionCreateSchema
from .pipeline_flow import RetryPolicyInSchema
from .schemas import PipelineCreateSchema
from .tasks import TaskInSchema

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_NAME_ERROR = "an environment variable name is letters, digits and '_', not starting with a digit"


class _Strict:
    class Meta:
        unknown = ma.RAISE


class TaskDocumentSchema(_Strict, TaskInSchema):
    pass


class AssertionDocumentSchema(_Strict, ChecksInSchema._declared_fields["assertions"].inner.nested):
    pass


class ChecksDocumentSchema(_Strict, ChecksInSchema):
    assertions = ma.fields.List(ma.fields.Nested(AssertionDocumentSchema), load_default=list)


class AlertSubscriptionDocumentSchema(_Strict, ma.Schema):
    channel = fields.String(required=True, min_length=1, max_length=255,
                            metadata={"description": "An alert channel's name (in this document or already defined)"})
    events = ma.fields.List(fields.Literal(EVENT_KINDS), required=True, validate=ma.validate.Length(min=1))


class PipelineDocumentSchema(_Strict, PipelineCreateSchema, RetryPolicyInSchema):
    """Every configurable field of a pipeline; an absent field means its default (so deleting a line
    from the file resets that setting). The retry fields are PUT .../retries' own."""

    source_connection = fields.String(allow_none=True, load_default=None, min_length=1, max_length=255, metadata={
        "description": "A connection's name (in this document or already defined); absent: the default source"})
    schedule = fields.String(allow_none=True, load_default=None, max_length=255, metadata={
        "description": "Cron, UTC (e.g. '*/15 * * * *'); absent: not scheduled"})
    tasks = ma.fields.List(ma.fields.Nested(TaskDocumentSchema), load_default=list, metadata={
        "description": "PYTHON pipelines: transforms applied in this order to every batch"})
    checks = ma.fields.Nested(ChecksDocumentSchema, load_default=None, allow_none=True, metadata={
        "description": "Quality gates; absent: the defaults"})
    freshness_minutes = PipelineAlertsInSchema._declared_fields["freshness_minutes"]
    alerts = ma.fields.List(ma.fields.Nested(AlertSubscriptionDocumentSchema), load_default=list, metadata={
        "description": "Alert channels (by name) and the events each gets"})
    upstreams = ma.fields.List(fields.String(min_length=1, max_length=255), load_default=list, metadata={
        "description": "Pipelines (by name) this one runs after, once the last of them succeeds"})


class ConnectionDocumentSchema(_Strict, ConnectionCreateSchema):
    """A named source without its secret: the password is read from the environment variable
    `password_env` names when the document is applied."""

    class Meta:
        unknown = ma.RAISE
        exclude = ("password", "url")

    host = fields.String(required=True, min_length=1, max_length=255)
    database = fields.String(required=True, min_length=1, max_length=255)
    user = fields.String(required=True, min_length=1, max_length=255)
    port = fields.Integer(ge=1, le=65535, load_default=5432)
    password_env = fields.String(allow_none=True, load_default=None, min_length=1, max_length=255,
                                 validate=ma.validate.Regexp(ENV_NAME_PATTERN, error=ENV_NAME_ERROR), metadata={
        "description": "Environment variable holding the password (never the password itself); absent: no password"})


class AlertChannelDocumentSchema(_Strict, ChannelCreateSchema):
    """An alert channel without its secret: a webhook's signing secret is read from the environment
    variable `secret_env` names when the document is applied."""

    class Meta:
        unknown = ma.RAISE
        exclude = ("secret",)

    secret_env = fields.String(allow_none=True, load_default=None, min_length=1, max_length=255,
                               validate=ma.validate.Regexp(ENV_NAME_PATTERN, error=ENV_NAME_ERROR), metadata={
        "description": "Environment variable holding the webhook's signing secret (never the secret itself)"})


class ConfigDocumentSchema(_Strict, ma.Schema):
    version = fields.Integer(required=True, ge=1, le=1, metadata={"description": "Always 1"})
    connections = ma.fields.List(ma.fields.Nested(ConnectionDocumentSchema), load_default=list)
    alert_channels = ma.fields.List(ma.fields.Nested(AlertChannelDocumentSchema), load_default=list)
    pipelines = ma.fields.List(ma.fields.Nested(PipelineDocumentSchema), load_default=list)


def load_document(data) -> dict:
    """The document with every default filled in; ma.ValidationError with per-item messages."""
    return ConfigDocumentSchema().load(data)
