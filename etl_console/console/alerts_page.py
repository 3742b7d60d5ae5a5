"""Console pages for alerts: the Alerts page (channels with a Test button, a create form, the
delivery list) and the alerts panel of the pipeline page (its channels, events and freshness).

A webhook secret is only ever typed in: no page or fragment receives it back. Validation is the
API's (its marshmallow schemas) and the service's, so the console says what the API would.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import flask
import marshmallow as ma
from werkzeug.exceptions import NotFound

from ..api.alerts import ChannelCreateSchema
from ..api.context import current_etl, db_session, secret_box
from ..services import alert_channels as alert_service
from ..services import errors
from ..services.alert_events import EVENT_KINDS
from . import views

bp = flask.Blueprint("console_alerts", __name__)

CHANNEL_FIELDS = ("name", "kind", "url", "email")
_create_schema = ChannelCreateSchema()


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what} not found") from None


# the Alerts page -------------------------------------------------------------------------------
@bp.get("/alerts")
def alerts():
    return _alerts_page({"kind": "webhook"}, {})


def _alerts_page(values: dict, form_errors: dict, status: int = 200):
    session = db_session()
    shown_status = flask.request.args.get("status")
    if shown_status not in alert_service.DELIVERY_STATUSES:
        shown_status = None
    deliveries = [alert_service.delivery_view(d, name)
                  for d, name in alert_service.list_deliveries(session, status=shown_status, limit=100)]
    channels = [alert_service.channel_view(c) for c in alert_service.list_channels(session)]
    return flask.render_template(
        "console/alerts.html", channels=channels, deliveries=deliveries, values=values, errors=form_errors,
        statuses=alert_service.DELIVERY_STATUSES, shown_status=shown_status,
        smtp_configured=bool(current_etl().config.smtp_host)), status


@bp.post("/alerts/channels")
def create_channel():
    form = flask.request.form
    values = {name: form.get(name, "").strip() for name in CHANNEL_FIELDS}
    data = {name: value for name, value in values.items() if value}
    if form.get("secret"):
        data["secret"] = form["secret"]
    form_errors: dict[str, str] = {}
    try:
        loaded = _create_schema.load(data)
        alert_service.create_channel(db_session(), secret_box(), loaded, smtp_configured=bool(current_etl().config.smtp_host))
    except ma.ValidationError as error:
        for name, messages in error.normalized_messages().items():
            form_errors[name] = str(messages[0] if isinstance(messages, list) else messages)
    except errors.DomainError as error:
        form_errors[error.field if error.field in (*CHANNEL_FIELDS, "secret") else "__form__"] = str(error)
    if form_errors:
        return _alerts_page(values, form_errors, 400)
    return flask.redirect(flask.url_for(".alerts"), 303)


@bp.post("/alerts/channels/<channel_id>/test")
def test_channel(channel_id: str):
    """Send a test event now; htmx gets the row's result cell, a plain form post the page again."""
    cid = _uuid(channel_id, "Alert channel")
    result = alert_service.test_channel(current_etl().database.sessions, current_etl().config, cid)
    if views._htmx():
        return flask.render_template("console/_alert_test.html", test=result, channel_id=cid)
    return flask.redirect(flask.url_for(".alerts"), 303)


@bp.post("/alerts/channels/<channel_id>/delete")
def delete_channel(channel_id: str):
    alert_service.delete_channel(db_session(), _uuid(channel_id, "Alert channel"))
    return flask.redirect(flask.url_for(".alerts"), 303)


# the pipeline page's panel ---------------------------------------------------------------------
@dataclass
class AlertsPanel:
    pipeline_id: uuid.UUID
    settings: dict
    channels: list[dict]
    error: str | None = None
    saved: bool = False
    typed_minutes: str | None = None
    events: tuple[str, ...] = field(default=EVENT_KINDS)

    def subscribed(self, channel_id, event: str) -> bool:
        return any(str(s["channel_id"]) == str(channel_id) and event in s["events"] for s in self.settings["channels"])

    def minutes(self) -> str:
        if self.typed_minutes is not None:
            return self.typed_minutes
        return "" if self.settings["freshness_minutes"] is None else str(self.settings["freshness_minutes"])


def _panel(pid: uuid.UUID, **kwargs) -> AlertsPanel:
    session = db_session()
    channels = [alert_service.channel_view(c) for c in alert_service.list_channels(session)]
    return AlertsPanel(pid, alert_service.pipeline_alerts(session, pid), channels, **kwargs)


@bp.app_context_processor
def _panel_function() -> dict:
    def alerts_panel_for(pipeline_id) -> AlertsPanel:
        shown = flask.g.get("alerts_panel")
        if shown is not None and shown.pipeline_id == pipeline_id:
            return shown
        return _panel(pipeline_id)

    return {"alerts_panel_for": alerts_panel_for}


@bp.get("/pipelines/<pipeline_id>/alerts")
def alerts_panel(pipeline_id: str):
    return flask.render_template("console/_alerts_panel.html", alerts_panel=_panel(views._pipeline_uuid(pipeline_id)))


@bp.post("/pipelines/<pipeline_id>/alerts")
def save_alerts(pipeline_id: str):
    pid = views._pipeline_uuid(pipeline_id)
    form = flask.request.form
    subscriptions: dict[str, list[str]] = {}
    for value in form.getlist("subscription"):  # "<channel id>|<event>"
        channel_id, _, event = value.partition("|")
        if event in EVENT_KINDS:
            subscriptions.setdefault(channel_id, []).append(event)
    minutes_text = form.get("freshness_minutes", "").strip()
    status, panel = 200, None
    try:
        minutes = int(minutes_text) if minutes_text else None
        if minutes is not None and not 1 <= minutes <= 525600:
            raise ValueError
    except ValueError:
        status = 400
        panel = _panel(pid, error=f"freshness must be a whole number of minutes from 1 to 525600, not {minutes_text!r}",
                       typed_minutes=minutes_text)
    if panel is None:
        data = {"channels": [{"channel_id": uuid.UUID(cid), "events": events} for cid, events in subscriptions.items()],
                "freshness_minutes": minutes}
        try:
            alert_service.put_pipeline_alerts(db_session(), pid, data)
            panel = _panel(pid, saved=True)
        except (errors.InvalidAlertChannel, ValueError) as error:
            status, panel = 400, _panel(pid, error=str(error))
    if views._htmx():
        return views._inline(flask.render_template("console/_alerts_panel.html", alerts_panel=panel), status)
    if panel.error:
        flask.g.alerts_panel = panel
        return views._pipeline_page(pid, status=status)
    return flask.redirect(flask.url_for("console.pipeline", pipeline_id=pid) + "#alerts", 303)
