"""Alert channels, per-pipeline alert settings and the delivery list. No HTTP here.

A webhook's secret enters through create/update, is encrypted at once (etl_console.db.secret_box)
and is decrypted only by the sender that signs a delivery: never in a view, a log line, an audit
row or an error message.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import AlertChannel, AlertDelivery, Pipeline, PipelineAlert
from ..lifecycle import DeliveryStatus
from ..db.secret_box import SecretBox
from . import alert_events, audit
from .errors import AlertChannelNotFound, InvalidAlertChannel, PipelineNotFound
from .savepoint import savepoint

KINDS = ("webhook", "email")
DELIVERY_STATUSES = tuple(status.value for status in DeliveryStatus)
AUDITED = ("name", "kind", "url", "email", "enabled")
NAME_TAKEN_MESSAGE = "Alert channel with this name already exists"
# Another request took the name between our check and our write.
UNIQUE_NAME = {"etl_alert_channels_name_key": lambda: InvalidAlertChannel(NAME_TAKEN_MESSAGE, field="name")}


# channels ----------------------------------------------------------------------------------------
def list_channels(session: Session) -> list[AlertChannel]:
    return list(session.scalars(select(AlertChannel).order_by(AlertChannel.name)))


def get_channel(session: Session, channel_id: uuid.UUID, *, for_update: bool = False) -> AlertChannel:
    query = select(AlertChannel).where(AlertChannel.id == channel_id)
    if for_update:
        query = query.with_for_update()
    channel = session.scalars(query).one_or_none()
    if channel is None:
        raise AlertChannelNotFound()
    return channel


def channel_view(channel: AlertChannel) -> dict[str, Any]:
    """What the API and console show: never the secret, only whether one is set."""
    return {"id": channel.id, "name": channel.name, "kind": channel.kind, "url": channel.url,
            "email": channel.email, "enabled": channel.enabled, "secret_set": channel.secret_token is not None,
            "created_at": channel.created_at, "updated_at": channel.updated_at}


def create_channel(session: Session, box: SecretBox, data: dict[str, Any], *, smtp_configured: bool) -> AlertChannel:
    kind = data["kind"]
    _check_target(kind, data.get("url"), data.get("email"), data.get("secret"), smtp_configured, creating=True)
    channel = AlertChannel(id=uuid.uuid4(), name=data["name"], kind=kind, enabled=data.get("enabled", True),
                           url=data.get("url") if kind == "webhook" else None,
                           email=data.get("email") if kind == "email" else None)
    if data.get("secret"):
        channel.secret_token = box.encrypt(data["secret"])
    _check_name_free(session, channel.name)
    with savepoint(session, UNIQUE_NAME):
        session.add(channel)
    _audit(session, "alert_channel.create", channel, after=audit.snapshot(channel, AUDITED))
    return channel


def update_channel(session: Session, box: SecretBox, channel_id: uuid.UUID, changes: dict[str, Any], *,
                   smtp_configured: bool) -> AlertChannel:
    """Change what was sent; `secret` replaces the secret (null removes it from an email channel)."""
    channel = get_channel(session, channel_id, for_update=True)
    before = audit.snapshot(channel, AUDITED)
    if "name" in changes and changes["name"] != channel.name:
        _check_name_free(session, changes["name"], exclude=channel.id)
    with savepoint(session, UNIQUE_NAME):  # a refused change leaves the channel as it was
        for key in ("name", "url", "email", "enabled"):
            if key in changes:
                setattr(channel, key, changes[key])
        secret_set = channel.secret_token is not None if "secret" not in changes else bool(changes["secret"])
        _check_target(channel.kind, channel.url, channel.email, "x" if secret_set else None,
                      smtp_configured, creating=False)
        if "secret" in changes:
            channel.secret_token = box.encrypt(changes["secret"]) if changes["secret"] else None
    after = audit.snapshot(channel, AUDITED)
    if "secret" in changes:
        after["secret_changed"] = True
    _audit(session, "alert_channel.patch", channel, *audit.changed_only(before, after))
    return channel


def delete_channel(session: Session, channel_id: uuid.UUID) -> None:
    """Its subscriptions and deliveries go with it."""
    channel = get_channel(session, channel_id, for_update=True)
    _audit(session, "alert_channel.delete", channel, before=audit.snapshot(channel, AUDITED))
    session.delete(channel)
    session.flush()


def enqueue_test(session: Session, channel_id: uuid.UUID) -> uuid.UUID:
    """Queue a test event for this one channel (in the caller's transaction); returns the delivery's id."""
    channel = get_channel(session, channel_id)
    delivery_id = uuid.uuid4()
    key = f"{alert_events.TEST}:{channel.id}:{delivery_id}"
    payload = {"event": alert_events.TEST, "idempotency_key": key,
               "occurred_at": alert_events._iso(datetime.now(timezone.utc)),
               "pipeline": None, "run": None, "error": None, "links": {"alerts": "/alerts"},
               "channel": {"id": str(channel.id), "name": channel.name}}
    session.execute(text(
        "INSERT INTO etl_alert_outbox (id, event_key, event_kind, channel_id, payload, status, attempts, next_attempt_at) "
        f"VALUES (:id, :key, :kind, :channel, CAST(:payload AS jsonb), '{DeliveryStatus.PENDING}', 0, "
        "clock_timestamp() + interval '1 hour')"),  # not due: test_channel sends it first
        {"id": delivery_id, "key": key, "kind": alert_events.TEST, "channel": channel.id,
         "payload": json.dumps(payload)})
    _audit(session, "alert_channel.test", channel, after={"delivery_id": str(delivery_id)})
    return delivery_id


def _check_target(kind, url, email, secret, smtp_configured: bool, *, creating: bool) -> None:
    if kind == "webhook":
        if not url:
            raise InvalidAlertChannel("a webhook channel needs a url")
        if not secret:
            raise InvalidAlertChannel("a webhook channel needs a secret (its deliveries are signed with it)")
    elif kind == "email":
        if not email:
            raise InvalidAlertChannel("an email channel needs an email address")
        if creating and not smtp_configured:
            raise InvalidAlertChannel("email channels need an SMTP server: set ETL_SMTP_HOST (and ETL_SMTP_PORT, "
                                      "ETL_SMTP_USER, ETL_SMTP_PASSWORD, ETL_SMTP_FROM)")


def _check_name_free(session: Session, name: str, exclude: uuid.UUID | None = None) -> None:
    query = select(AlertChannel.id).where(AlertChannel.name == name)
    if exclude is not None:
        query = query.where(AlertChannel.id != exclude)
    if session.scalars(query).first() is not None:
        raise InvalidAlertChannel(NAME_TAKEN_MESSAGE, field="name")


def _audit(session: Session, action: str, channel: AlertChannel, before: dict | None = None,
           after: dict | None = None) -> None:
    audit.record(session, action, object_type="alert_channel", object_id=channel.id, object_name=channel.name,
                 before=before, after=after)


# per-pipeline settings ---------------------------------------------------------------------------
def pipeline_alerts(session: Session, pipeline_id: uuid.UUID) -> dict[str, Any]:
    pipeline = session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise PipelineNotFound()
    # The subscriptions and the database clock (staleness is judged by it) in one statement: a row
    # with the clock alone when there are none.
    clock = select(func.now().label("now")).subquery()
    rows = session.execute(
        select(clock.c.now, PipelineAlert.channel_id, PipelineAlert.events, AlertChannel.name)
        .select_from(clock)
        .outerjoin(PipelineAlert, PipelineAlert.pipeline_id == pipeline_id)
        .outerjoin(AlertChannel, AlertChannel.id == PipelineAlert.channel_id)
        .order_by(AlertChannel.name)).all()
    from . import freshness

    return {
        "pipeline_id": pipeline.id,
        "channels": [{"channel_id": row.channel_id, "channel": row.name, "events": list(row.events)}
                     for row in rows if row.channel_id is not None],
        "freshness_minutes": pipeline.freshness_minutes,
        "stale": freshness.is_stale(pipeline, rows[0].now),
        "freshness_breached_at": pipeline.freshness_breached_at,
        "last_success_at": pipeline.last_success_at,
    }


def put_pipeline_alerts(session: Session, pipeline_id: uuid.UUID, data: dict[str, Any]) -> dict[str, Any]:
    """Replace the pipeline's subscriptions (and its freshness limit, when sent)."""
    pipeline = session.get(Pipeline, pipeline_id, with_for_update=True)
    if pipeline is None:
        raise PipelineNotFound()
    before = pipeline_alerts(session, pipeline_id)
    wanted: dict[uuid.UUID, list[str]] = {}
    for item in data.get("channels", []):
        channel_id = item["channel_id"]
        if session.get(AlertChannel, channel_id) is None:
            raise InvalidAlertChannel(f"alert channel {channel_id} does not exist")
        events = sorted(set(item["events"]), key=alert_events.EVENT_KINDS.index)
        wanted[channel_id] = sorted(set(wanted.get(channel_id, []) + events), key=alert_events.EVENT_KINDS.index)
    session.execute(delete(PipelineAlert).where(PipelineAlert.pipeline_id == pipeline_id))
    for channel_id, events in wanted.items():
        session.add(PipelineAlert(pipeline_id=pipeline_id, channel_id=channel_id, events=events))
    if "freshness_minutes" in data and data["freshness_minutes"] != pipeline.freshness_minutes:
        pipeline.freshness_minutes = data["freshness_minutes"]
        pipeline.freshness_set_at = datetime.now(timezone.utc)
        if pipeline.freshness_minutes is None:
            pipeline.freshness_breached_at = None  # no limit: nothing to restore
    session.flush()
    after = pipeline_alerts(session, pipeline_id)
    audit.record(session, "pipeline.alerts.put", object_type="pipeline", object_id=pipeline.id,
                 object_name=pipeline.name, before=_audited(before), after=_audited(after))
    return pipeline_alerts(session, pipeline_id)


def _audited(view: dict) -> dict:
    return {"channels": [{"channel": c["channel"], "events": c["events"]} for c in view["channels"]],
            "freshness_minutes": view["freshness_minutes"]}


# deliveries --------------------------------------------------------------------------------------
def list_deliveries(session: Session, *, status: str | None = None, channel_id: uuid.UUID | None = None,
                    after: tuple[datetime, uuid.UUID] | None = None, limit: int = 50) -> list[tuple[AlertDelivery, str]]:
    """Newest first, keyset-paged on (created_at, id)."""
    query = (select(AlertDelivery, AlertChannel.name).join(AlertChannel, AlertChannel.id == AlertDelivery.channel_id)
             .order_by(AlertDelivery.created_at.desc(), AlertDelivery.id.desc()).limit(limit))
    if status:
        query = query.where(AlertDelivery.status == status)
    if channel_id:
        query = query.where(AlertDelivery.channel_id == channel_id)
    if after is not None:
        from sqlalchemy import tuple_

        query = query.where(tuple_(AlertDelivery.created_at, AlertDelivery.id) < tuple_(*after))
    return list(session.execute(query).all())


def delivery_view(delivery: AlertDelivery, channel_name: str) -> dict[str, Any]:
    return {"id": delivery.id, "event": delivery.event_kind, "idempotency_key": delivery.event_key,
            "channel_id": delivery.channel_id, "channel": channel_name, "pipeline_id": delivery.pipeline_id,
            "pipeline": (delivery.payload.get("pipeline") or {}).get("name"), "run_id": delivery.run_id,
            "status": delivery.status, "attempts": delivery.attempts, "next_attempt_at": delivery.next_attempt_at,
            "last_http_status": delivery.last_http_status, "last_error": delivery.last_error,
            "created_at": delivery.created_at, "delivered_at": delivery.delivered_at}


def test_channel(sessions: sessionmaker[Session], config, channel_id: uuid.UUID) -> dict[str, Any]:
    """Queue a test event for the channel and send it now (bounded by the alert timeouts); the
    answer is the attempt's outcome, and the delivery stays in the list. A failed test is not retried.

    Takes the session factory: queued and claimed in one short transaction, recorded in another, and
    no transaction held while the receiver answers."""
    from ..runner import alert_sender

    worker = f"test-request:{uuid.uuid4().hex[:8]}"
    with sessions.begin() as session:
        delivery_id = enqueue_test(session, channel_id)
        claimed = alert_sender.claim(session.connection(), worker, 60.0, limit=1, only=delivery_id)
    outcome = alert_sender.send(claimed[0], config)
    with sessions.begin() as session:
        status = alert_sender.record(session.connection(), claimed[0], worker, outcome, config, retry=False)
    return {"delivery_id": delivery_id, "channel_id": channel_id, "delivered": outcome.delivered,
            "status": status, "http_status": outcome.http_status, "error": outcome.error}
