"""The "Runs after / retries" panel of a pipeline's page: upstream and downstream links, the retry
policy and auto-pause, and two small forms to change them. Plain POST forms with their CSRF token
that htmx may send instead; both save through the same services (and checks: bounds, unknown
names, cycles) as PUT /api/v1/pipelines/{id}/retries and .../upstreams."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import flask
import marshmallow as ma

from ..api.context import db_session
from ..api.pipeline_flow import RetryPolicyInSchema
from ..services import dependencies as dependency_service
from ..services import retries as retry_service
from ..services.errors import DependencyCycle, UnknownUpstream
from . import views
from .views import bp

_LABELS = {
    "max_retries": "Retries", "retry_initial_delay_s": "First delay", "retry_backoff_factor": "Factor",
    "retry_max_delay_s": "Longest delay", "retry_jitter": "Jitter", "auto_pause_after_failures": "Auto-pause after",
}


@dataclass
class FlowPanel:
    pipeline_id: uuid.UUID
    graph: dict
    policy: dict
    error: str | None = None
    saved: str | None = None
    typed: dict[str, str] = field(default_factory=dict)  # refused input, shown again

    def value(self, name: str) -> str:
        if name in self.typed:
            return self.typed[name]
        if name == "upstreams":
            return ", ".join(p["name"] for p in self.graph["upstreams"])
        value = self.policy[name]
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _panel(session, pipeline, **extra) -> FlowPanel:
    """One statement beyond the pipeline the page has already read."""
    flow = dependency_service.flow_of(session, pipeline)
    policy = {name: getattr(pipeline, name) for name in retry_service.POLICY_FIELDS}
    policy.update(consecutive_failures=pipeline.consecutive_failures, pending_retry=flow["pending_retry"])
    return FlowPanel(pipeline.id, flow, policy, **extra)


def _panel_by_id(session, pid: uuid.UUID, **extra) -> FlowPanel:
    from ..services.pipelines import get_pipeline

    return _panel(session, get_pipeline(session, pid), **extra)


@bp.app_context_processor
def _panel_function() -> dict:
    def flow_panel_for(pipeline) -> FlowPanel:
        shown = flask.g.get("flow_panel")
        if shown is not None and shown.pipeline_id == pipeline.id:
            return shown
        return _panel(db_session(), pipeline)

    return {"flow_panel_for": flow_panel_for}


@bp.post("/pipelines/<pipeline_id>/upstreams")
def save_upstreams(pipeline_id: str):
    pid = views._pipeline_uuid(pipeline_id)
    session = db_session()
    typed = flask.request.form.get("upstreams", "")
    names = [name.strip() for name in typed.replace("\n", ",").split(",") if name.strip()]
    try:
        dependency_service.set_upstreams(session, pid, names)
        return _answer(pid, _panel_by_id(session, pid, saved="Upstreams saved."))
    except (UnknownUpstream, DependencyCycle) as error:
        return _answer(pid, _panel_by_id(session, pid, error=str(error), typed={"upstreams": typed}),
                       409 if isinstance(error, DependencyCycle) else 400)


@bp.post("/pipelines/<pipeline_id>/retries")
def save_retries(pipeline_id: str):
    pid = views._pipeline_uuid(pipeline_id)
    session = db_session()
    form = {name: flask.request.form.get(name, "").strip() for name in retry_service.POLICY_FIELDS}
    try:
        values = RetryPolicyInSchema().load({name: _number(name, text) for name, text in form.items()})
    except (ValueError, ma.ValidationError) as error:
        return _answer(pid, _panel_by_id(session, pid, error=_message(error), typed=form), 400)
    retry_service.set_policy(session, pid, values)
    return _answer(pid, _panel_by_id(session, pid, saved="Retry policy saved."))


def _number(name: str, text: str) -> float | int | None:
    if text == "":
        if name == "auto_pause_after_failures":
            return None  # empty: never auto-pause
        raise ValueError(f"{_LABELS[name]}: a number is needed")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{_LABELS[name]}: '{text}' is not a number") from None
    if name in ("max_retries", "auto_pause_after_failures"):
        if number != int(number):
            raise ValueError(f"{_LABELS[name]}: a whole number is needed")
        return int(number)
    return number


def _message(error: Exception) -> str:
    if isinstance(error, ma.ValidationError):
        return "; ".join(f"{_LABELS.get(name, name)}: {' '.join(map(str, messages))}"
                         for name, messages in error.normalized_messages().items())
    return str(error)


def _answer(pid: uuid.UUID, panel: FlowPanel, status: int = 200):
    if views._htmx():
        return views._inline(flask.render_template("console/_flow.html", flow_panel=panel), status)
    if panel.error:
        flask.g.flow_panel = panel
        return views._pipeline_page(pid, status=status)
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pid) + "#flow", 303)
