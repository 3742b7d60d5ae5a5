"""Console pages. Views are thin: parse the request, call services, render a page or an htmx fragment.

Every page reads without JavaScript (forms post and redirect); htmx only swaps the part that
changed: a list row after Run/Pause, the pipeline head while a run is live, the history after a run
ends, one panel (reconciliation, state, schedule) after its form. Domain errors become HTML error
pages in etl_console.web_errors, like every other error; a panel's own refusal (an invalid schedule,
a reset while RUNNING, a failed reconciliation) is shown inside the panel, with its status code.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import flask
from werkzeug.exceptions import BadRequest, NotFound

from ..api.context import allowed_targets, db_session, source_access, wake_runner
from ..api.context import current_etl
from ..db.models import PipelineStatus, RunStatus
from ..services import connections as connection_service
from ..services import overview
from ..services import pipelines as pipeline_service
from ..services import runs as run_service
from ..services.errors import PipelineBusy
from . import forms, panels
from .charts import phase_timings, run_chart
from .format import decode_cursor

bp = flask.Blueprint("console", __name__)

POLL_INTERVAL = "1s"
MAX_LIVE_ROWS = 500


# helpers ---------------------------------------------------------------------------------------
def _pipeline_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("Pipeline not found") from None


def _htmx() -> bool:
    return flask.request.headers.get("HX-Request") == "true" and not flask.request.headers.get(
        "HX-History-Restore-Request"
    )


def _inline(body: str, status: int = 200) -> flask.Response:
    """A panel for htmx to swap. A refusal keeps its status (409, 400); the header tells
    console.js to swap it in place anyway rather than report a failed request."""
    response = flask.make_response(body, status)
    if status >= 400:
        response.headers["X-Inline-Error"] = "true"
    return response


def _settings() -> panels.EtlSettings:
    app_state = current_etl()
    return panels.EtlSettings(
        source_dsn=app_state.database.source_dsn,
        reconcile_slots=app_state.reconcile_slots,
        statement_timeout_s=app_state.config.statement_timeout_s,
        in_request_timeout_s=app_state.config.in_request_timeout_s,
        source_role=app_state.config.source_role,
        reconcile_after_run=app_state.config.reconcile_after_run,
        source_access=source_access(),
    )


def _htmx_target() -> str | None:
    return flask.request.headers.get("HX-Target") if _htmx() else None


def _cursors() -> tuple:
    try:
        return decode_cursor(flask.request.args.get("before")), decode_cursor(flask.request.args.get("after"))
    except ValueError:
        raise BadRequest("That history page link is not valid; start again from the newest runs.") from None


def _safe_next(default: str) -> str:
    from ..web_security import safe_redirect_target

    return safe_redirect_target(flask.request.form.get("next"), default)


@bp.after_request
def _vary_on_htmx(response: flask.Response) -> flask.Response:
    # The same URL answers a page or a fragment: caches must keep them apart.
    response.vary.add("HX-Request")
    return response


# the pipeline list (its page and bulk actions: list_page.py) ---------------------------------------
@bp.get("/pipelines/live")
def live_rows():
    """Fresh rows for the list's running pipelines: one request and one query, however many run."""
    ids = []
    for value in flask.request.args.getlist("running")[:MAX_LIVE_ROWS]:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    summaries = overview.get_summaries(db_session(), ids)
    return flask.render_template("console/_live_rows.html", pipelines=summaries)


# create and edit -------------------------------------------------------------------------------
@bp.route("/pipelines/new", methods=["GET", "POST"])
def new_pipeline():
    if flask.request.method == "GET":
        return _form_page(forms.PipelineForm.blank(), None)
    form = forms.PipelineForm.submitted(flask.request.form)
    pipeline = forms.create(db_session(), allowed_targets(), form, source_access())
    if pipeline is None:
        return _form_page(form, None), 400
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pipeline.id), 303)


@bp.route("/pipelines/<pipeline_id>/edit", methods=["GET", "POST"])
def edit_pipeline(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    session = db_session()
    if flask.request.method == "GET":
        pipeline = pipeline_service.get_pipeline(session, pid)
        source = pipeline_service.pipeline_settings(session, pid)["source_connection"]
        return _form_page(forms.PipelineForm.of(pipeline, source["name"] if source else ""), pipeline)
    form = forms.PipelineForm.submitted(flask.request.form)
    saved = forms.update(session, allowed_targets(), pid, form, source_access())
    if saved is None:
        return _form_page(form, pipeline_service.get_pipeline(session, pid)), 400
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pid), 303)


def _form_page(form: forms.PipelineForm, pipeline):
    return flask.render_template(
        "console/form.html",
        form=form,
        pipeline=pipeline,
        targets=allowed_targets(),
        connections=[connection.name for connection in connection_service.list_connections(db_session())],
        # The contract's refusal, shown before the operator types anything; saving still refuses.
        busy_message=str(PipelineBusy()) if pipeline is not None and pipeline.status == PipelineStatus.RUNNING else None,
    )


# the pipeline page -----------------------------------------------------------------------------
@bp.get("/pipelines/<pipeline_id>")
def pipeline(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    before, after = _cursors()
    return _pipeline_page(pid, before=before, after=after)


def _pipeline_page(pid: uuid.UUID, *, before=None, after=None, status: int = 200, **shown):
    """The whole page. `shown` replaces a panel with one a form post just produced (its answer or
    its error), which is how the page works without JavaScript."""
    session = db_session()
    pipeline = pipeline_service.get_pipeline(session, pid)
    reconciliation = shown.get("reconciliation") or panels.reconciliation_panel(session, pid, _settings())
    page = overview.run_history(session, pid, before=before, after=after)
    recent = page.runs[: overview.CHART_RUNS] if page.first else overview.recent_runs(session, pid)
    latest = recent[0] if recent else None
    body = flask.render_template(
        "console/pipeline.html",
        pipeline=pipeline,
        run=latest,
        page=page,
        chart=run_chart(recent),
        live_rows=page.first,
        reconcile_panel=reconciliation,
        state_panel=shown["state"] if "state" in shown else panels.state_panel(session, pipeline),
        schedule_panel=shown.get("schedule") or panels.schedule_panel(pipeline),
    )
    return body, status


@bp.get("/pipelines/<pipeline_id>/live")
def pipeline_live(pipeline_id: str):
    """The pipeline's head (badge, buttons, progress); polled every second while a run is live.

    `seen` is the run state the page shows; when the newest run differs, the response triggers
    `runs-changed` so the history table and the chart reload once.
    """
    summary = overview.get_summary(db_session(), _pipeline_uuid(pipeline_id))
    response = flask.make_response(_live_head(summary, flask.request.args.get("rows") == "1"))
    if flask.request.args.get("seen", "") != _run_state(summary.last_run):
        response.headers["HX-Trigger"] = "runs-changed"
    return response


def _live_head(summary: overview.PipelineSummary, live_rows: bool) -> str:
    return flask.render_template(
        "console/_pipeline_live.html", pipeline=summary, run=summary.last_run, live_rows=live_rows
    )


def _run_state(run: overview.RunView | None) -> str:
    return f"{run.id}:{run.status}" if run is not None else ""


@bp.get("/pipelines/<pipeline_id>/history")
def history(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    before, after = _cursors()
    session = db_session()
    pipeline = pipeline_service.get_pipeline(session, pid)
    page = overview.run_history(session, pid, before=before, after=after)
    return flask.render_template("console/_history.html", pipeline=pipeline, page=page)


@bp.get("/pipelines/<pipeline_id>/chart")
def chart(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    session = db_session()
    pipeline = pipeline_service.get_pipeline(session, pid)
    recent = overview.recent_runs(session, pid)
    return flask.render_template("console/_chart.html", pipeline=pipeline, chart=run_chart(recent))


# actions ----------------------------------------------------------------------------------------
@bp.post("/pipelines/<pipeline_id>/run")
def run_pipeline(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    _, queued = run_service.request_run(db_session(), pid, wait_for_stopping_s=run_service.STOPPING_RUN_WAIT_S)
    if queued:
        wake_runner()
    return _after_action(pid)


@bp.post("/pipelines/<pipeline_id>/pause")
def pause_pipeline(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    pipeline_service.pause_pipeline(db_session(), pid)
    return _after_action(pid)


def _after_action(pid: uuid.UUID):
    """htmx gets the fragment it swaps (the list row or the pipeline head); a plain form post is
    redirected back to the page it came from (post/redirect/get)."""
    if not _htmx():
        return flask.redirect(_safe_next(flask.url_for(".pipeline", pipeline_id=pid)), 303)
    summary = overview.get_summary(db_session(), pid)
    if _htmx_target() == "pipeline-live":
        # The page's history shows the new run (or the paused one) after this; let it reload.
        response = flask.make_response(_live_head(summary, flask.request.form.get("rows") == "1"))
        response.headers["HX-Trigger"] = "runs-changed"
        return response
    return flask.render_template(
        "console/_pipeline_row.html", pipeline=summary, list_url=_safe_next(flask.url_for(".pipelines"))
    )


# panels: reconciliation, incremental state, schedule --------------------------------------------
@bp.get("/pipelines/<pipeline_id>/reconciliation")
def reconciliation(pipeline_id: str):
    panel = panels.reconciliation_panel(db_session(), _pipeline_uuid(pipeline_id), _settings())
    return flask.render_template("console/_reconciliation.html", reconcile_panel=panel)


@bp.post("/pipelines/<pipeline_id>/reconcile")
def reconcile_now(pipeline_id: str):
    """Compare source and target now and show the answer in the panel (read-only on both sides;
    a POST because it is heavy work on the warehouse, not because it changes anything)."""
    pid = _pipeline_uuid(pipeline_id)
    panel = panels.reconcile_now(current_etl().database.sessions, pid, _settings())
    status = 400 if panel.error else 200
    if _htmx():
        return _inline(flask.render_template("console/_reconciliation.html", reconcile_panel=panel), status)
    return _pipeline_page(pid, status=status, reconciliation=panel)


@bp.get("/pipelines/<pipeline_id>/state")
def state_panel(pipeline_id: str):
    session = db_session()
    pipeline = pipeline_service.get_pipeline(session, _pipeline_uuid(pipeline_id))
    # A pipeline switched to full mode has no panel: the empty answer removes it from the page.
    return flask.render_template("console/_state.html", state_panel=panels.state_panel(session, pipeline))


@bp.route("/pipelines/<pipeline_id>/state/reset", methods=["GET", "POST"])
def reset_state(pipeline_id: str):
    """Reset needs a confirmation: htmx asks with hx-confirm and sends confirmed=yes; a plain form
    post (or a GET) gets a confirmation page whose form carries it."""
    pid = _pipeline_uuid(pipeline_id)
    session = db_session()
    pipeline = pipeline_service.get_pipeline(session, pid)
    if flask.request.method == "GET" or flask.request.form.get("confirmed") != "yes":
        current = panels.current_state(session, pipeline)
        return flask.render_template(
            "console/confirm_reset.html",
            pipeline=pipeline,
            state=current.state,
            busy_message=current.busy_message if current.busy else None,
        )
    panel = panels.reset_state(session, pipeline)
    return _panel_answer(pid, "state", panel, refused_status=409, template_name="state_panel")


@bp.post("/pipelines/<pipeline_id>/schedule")
def set_schedule(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    form = flask.request.form
    typed = "" if form.get("action") == "clear" else form.get("schedule", "")
    panel = panels.set_schedule(db_session(), pid, typed)
    return _panel_answer(pid, "schedule", panel, refused_status=400, template_name="schedule_panel")


def _panel_answer(pid: uuid.UUID, name: str, panel, *, refused_status: int, template_name: str):
    """A panel form's answer: the panel for htmx; without JavaScript the page (on a refusal, with
    the panel showing why) or a redirect back to the panel (post/redirect/get)."""
    status = refused_status if panel.error else 200
    if _htmx():
        return _inline(flask.render_template(f"console/_{name}.html", **{template_name: panel}), status)
    if panel.error:
        return _pipeline_page(pid, status=status, **{name: panel})
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pid) + f"#{name}", 303)


# run detail -------------------------------------------------------------------------------------
@bp.get("/pipelines/<pipeline_id>/runs/<run_id>")
def run_detail(pipeline_id: str, run_id: str):
    pid = _pipeline_uuid(pipeline_id)
    try:
        rid = uuid.UUID(run_id)
    except ValueError:
        raise NotFound("Run not found") from None
    session = db_session()
    pipeline = pipeline_service.get_pipeline(session, pid)
    run = run_service.run_detail(session, pid, rid, current_etl().config.target_max_concurrent_runs)
    context = {
        "pipeline": pipeline,
        "run": run,
        "timings": phase_timings(run["timings"], run["duration_s"]),
        "check_pending": _check_pending(run),
    }
    if _htmx_target() == "run-detail":
        return flask.render_template("console/_run_detail.html", **context)
    return flask.render_template("console/run.html", **context)


def _check_pending(run: dict) -> bool:
    """The runner records the check right after a SUCCESS; wait for it as long as it may take."""
    if run["status"] != RunStatus.SUCCESS or run["reconciliation"] or run["finished_at"] is None:
        return False
    settings = _settings()
    if not settings.reconcile_after_run:
        return False
    age = (datetime.now(timezone.utc) - run["finished_at"]).total_seconds()
    return age < settings.statement_timeout_s + 30


from . import checks_panel  # noqa: E402,F401 - its routes join this blueprint
from . import tasks_panel  # noqa: E402,F401 - its routes join this blueprint
from . import flow_panel  # noqa: E402,F401 - its routes join this blueprint
from . import list_page  # noqa: E402,F401 - its routes join this blueprint
from . import config_export  # noqa: E402,F401 - its route joins this blueprint
