"""Alerts (beyond the v1 contract): /api/v1/alert-channels, /api/v1/alert-deliveries and
/api/v1/pipelines/{id}/alerts. A channel's secret is write-only."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from .. import pagination
from ..services import alert_channels as alert_service
from ..services.alert_events import EVENT_KINDS
from . import Blueprint, fields
from .context import current_etl, db_session, secret_box
from .parsing import next_page_link, query_cursor
from .schemas import DetailErrorSchema, UtcDateTime, _Input

blp = Blueprint(
    "alerts",
    __name__,
    url_prefix="/api/v1",
    description="Alert channels (signed webhooks, email), per-pipeline alert settings and freshness, "
                "and the delivery outbox (beyond the v1 contract).",
)

SECRET_DOC = ("Write-only: the HMAC-SHA256 key of the X-Signature header (see the README); never returned "
              "(see secret_set). Required for webhooks.")


# What the validators below accept, as the OpenAPI document's `format` and `pattern` (ECMA-262 and
# Python alike) describe it: every string the pattern matches is accepted (the document names a
# subset of what the validators take, e.g. ASCII host names only), so a schema-valid value is never
# refused with a 422.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}\.)+[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]"  # the last label of two characters or more
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:{_DOMAIN}|{_LABEL})(?::[0-9]{{1,5}})?(?:/|[/?#][!-~]+)?$"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@{_DOMAIN}$"


class ChannelCreateSchema(_Input):
    name = fields.String(required=True, min_length=1, max_length=255)
    kind = fields.Literal(("webhook", "email"), required=True)
    url = fields.String(min_length=1, max_length=2000, validate=ma.validate.URL(schemes={"http", "https"}, require_tld=False),
                        metadata={"description": "webhook: where deliveries are POSTed (http or https)",
                                  "format": "uri", "pattern": URL_PATTERN})
    email = fields.String(min_length=3, max_length=320, validate=ma.validate.Email(),
                          metadata={"description": "email: the address (needs ETL_SMTP_HOST)",
                                    "format": "email", "pattern": EMAIL_PATTERN})
    secret = fields.String(min_length=16, max_length=1000, load_only=True, metadata={"description": SECRET_DOC})
    enabled = fields.Boolean(load_default=True)


class ChannelUpdateSchema(ChannelCreateSchema):
    """All optional; only the keys sent change. The kind cannot change."""

    class Meta:
        exclude = ("kind",)
        unknown = ma.EXCLUDE

    name = fields.String(min_length=1, max_length=255)
    enabled = fields.Boolean()


class ChannelOutSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    kind = ma.fields.String()
    url = ma.fields.String(allow_none=True)
    email = ma.fields.String(allow_none=True)
    enabled = ma.fields.Boolean()
    secret_set = ma.fields.Boolean()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class ChannelTestSchema(ma.Schema):
    delivery_id = ma.fields.UUID()
    channel_id = ma.fields.UUID()
    delivered = ma.fields.Boolean(metadata={"description": "The receiver answered 2xx (or the mail server accepted it)"})
    status = ma.fields.String(metadata={"description": "The delivery's status: DELIVERED or FAILED (a test is not retried)"})
    http_status = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)


class SubscriptionSchema(_Input):
    channel_id = ma.fields.UUID(required=True)
    events = ma.fields.List(fields.Literal(EVENT_KINDS), required=True, validate=ma.validate.Length(min=1))


class PipelineAlertsInSchema(_Input):
    channels = ma.fields.List(ma.fields.Nested(SubscriptionSchema), required=True)
    freshness_minutes = fields.Integer(allow_none=True, ge=1, le=525600, metadata={
        "description": "A successful run at least every N minutes, else freshness.breached; null: no limit. "
                       "Absent: unchanged."})


class SubscriptionOutSchema(ma.Schema):
    channel_id = ma.fields.UUID()
    channel = ma.fields.String()
    events = ma.fields.List(ma.fields.String())


class PipelineAlertsOutSchema(ma.Schema):
    pipeline_id = ma.fields.UUID()
    channels = ma.fields.List(ma.fields.Nested(SubscriptionOutSchema))
    freshness_minutes = ma.fields.Integer(allow_none=True)
    stale = ma.fields.Boolean()
    freshness_breached_at = UtcDateTime(allow_none=True)
    last_success_at = UtcDateTime(allow_none=True)


class DeliveryQuerySchema(_Input):
    status = fields.Literal(alert_service.DELIVERY_STATUSES)
    channel = ma.fields.UUID(metadata={"description": "A channel's id"})
    limit = fields.Integer(load_default=50, ge=1, le=500)
    cursor = fields.String(metadata={"description": "From the previous page's Link header",
                                     "pattern": pagination.UUID_CURSOR_PATTERN})


class DeliveryOutSchema(ma.Schema):
    id = ma.fields.UUID()
    event = ma.fields.String()
    idempotency_key = ma.fields.String()
    channel_id = ma.fields.UUID()
    channel = ma.fields.String()
    pipeline_id = ma.fields.UUID(allow_none=True)
    pipeline = ma.fields.String(allow_none=True)
    run_id = ma.fields.UUID(allow_none=True)
    status = ma.fields.String()
    attempts = ma.fields.Integer()
    next_attempt_at = UtcDateTime(allow_none=True)
    last_http_status = ma.fields.Integer(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    created_at = UtcDateTime()
    delivered_at = UtcDateTime(allow_none=True)


NOT_FOUND = {"description": "Alert channel not found", "schema": DetailErrorSchema}
VALIDATION = {"description": "FastAPI-style validation errors", "schema": DetailErrorSchema}
BAD = {"description": "Name taken, a webhook without a secret, or email without an SMTP server", "schema": DetailErrorSchema}


def _smtp_configured() -> bool:
    return bool(current_etl().config.smtp_host)


@blp.route("/alert-channels/")
class Channels(MethodView):
    @blp.response(200, ChannelOutSchema(many=True))
    def get(self):
        """List alert channels, by name"""
        return [alert_service.channel_view(channel) for channel in alert_service.list_channels(db_session())]

    @blp.arguments(ChannelCreateSchema)
    @blp.response(201, ChannelOutSchema)
    @blp.alt_response(400, **BAD)
    @blp.alt_response(422, **VALIDATION)
    def post(self, data):
        """Create a channel (its secret is encrypted at rest and never returned)"""
        channel = alert_service.create_channel(db_session(), secret_box(), data, smtp_configured=_smtp_configured())
        return alert_service.channel_view(channel)


@blp.route("/alert-channels/<channel_id>")
class ChannelById(MethodView):
    @blp.response(200, ChannelOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, channel_id):
        """Get a channel"""
        return alert_service.channel_view(alert_service.get_channel(db_session(), channel_id))

    @blp.arguments(ChannelUpdateSchema)
    @blp.response(200, ChannelOutSchema)
    @blp.alt_response(400, **BAD)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def patch(self, changes, channel_id):
        """Change a channel; `secret` replaces its secret"""
        channel = alert_service.update_channel(db_session(), secret_box(), channel_id, changes,
                                               smtp_configured=_smtp_configured())
        return alert_service.channel_view(channel)

    @blp.response(204)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def delete(self, channel_id):
        """Delete a channel, its subscriptions and its deliveries"""
        alert_service.delete_channel(db_session(), channel_id)


@blp.route("/alert-channels/<channel_id>/test", methods=["POST"])
@blp.response(200, ChannelTestSchema)
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(422, **VALIDATION)
def test_channel(channel_id):
    """Send a test event (`alert.test`) now, bounded by ETL_ALERT_CONNECT_TIMEOUT_S + ETL_ALERT_READ_TIMEOUT_S.

    A receiver that is down answers 200 with `delivered: false` and says why: the test ran."""
    return alert_service.test_channel(current_etl().database.sessions, current_etl().config, channel_id)


@blp.route("/pipelines/<pipeline_id>/alerts")
class PipelineAlerts(MethodView):
    @blp.response(200, PipelineAlertsOutSchema)
    @blp.alt_response(404, description="Pipeline not found", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def get(self, pipeline_id):
        """A pipeline's alert channels and events, its freshness limit and whether it is stale now"""
        return alert_service.pipeline_alerts(db_session(), pipeline_id)

    @blp.arguments(PipelineAlertsInSchema)
    @blp.response(200, PipelineAlertsOutSchema)
    @blp.alt_response(400, description="An unknown channel", schema=DetailErrorSchema)
    @blp.alt_response(404, description="Pipeline not found", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def put(self, data, pipeline_id):
        """Replace the pipeline's subscriptions: each channel with the events it gets
        (run.failed, run.recovered, pipeline.auto_paused, freshness.breached, freshness.restored);
        and, when sent, its freshness limit"""
        return alert_service.put_pipeline_alerts(db_session(), pipeline_id, data)


@blp.route("/alert-deliveries")
@blp.arguments(DeliveryQuerySchema, location="query")
@blp.response(200, DeliveryOutSchema(many=True))
@blp.alt_response(422, **VALIDATION)
def list_deliveries(query):
    """Deliveries, newest first: status, attempts, the last HTTP status and error. When more
    follow, a `Link: <...&cursor=...>; rel="next"` header gives the next page."""
    parsed = dict(query)
    after = query_cursor(query["cursor"]) if "cursor" in query else None
    rows = alert_service.list_deliveries(db_session(), status=query.get("status"), channel_id=query.get("channel"),
                                         after=after, limit=query["limit"])
    deliveries = [alert_service.delivery_view(delivery, name) for delivery, name in rows]
    if len(rows) == query["limit"]:
        last = rows[-1][0]
        return deliveries, next_page_link(parsed, last.created_at, last.id)
    return deliveries
