"""Console pages. Views are thin: parse the request, call services, render a page or an htmx fragment.

Every page reads without JavaScript (forms post and redirect); htmx only swaps the part that
changed: a list row after Run/Pause, the pipeline head while a run is live, the history after a run
ends. Domain errors become HTML error pages in etl_console.web_errors, like every other error.
"""
from __future__ import annotations

import uuid

import flask
from werkzeug.exceptions import BadRequest, NotFound

from ..api.context import allowed_targets, db_session, wake_runner
from ..services import overview
from ..services import pipelines as pipeline_service
from ..services import runs as run_service
from ..services.errors import PipelineBusy
from . import forms
from .charts import run_chart
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


def _htmx_target() -> str | None:
    return flask.request.headers.get("HX-Target") if _htmx() else None


def _cursors() -> tuple:
    try:
        return decode_cursor(flask.request.args.get("before")), decode_cursor(flask.request.args.get("after"))
    except ValueError:
        raise BadRequest("That history page link is not valid; start again from the newest runs.") from None


def _safe_next(default: str) -> str:
    target = flask.request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


@bp.after_request
def _vary_on_htmx(response: flask.Response) -> flask.Response:
    # The same URL answers a page or a fragment: caches must keep them apart.
    response.vary.add("HX-Request")
    return response


# the pipeline list -----------------------------------------------------------------------------
@bp.get("/")
def pipelines():
    status = flask.request.args.get("status", "")
    status = status if status in overview.STATUSES else ""
    query = flask.request.args.get("q", "").strip()
    summaries = overview.list_summaries(db_session(), status=status or None, name=query or None)
    context = {
        "pipelines": summaries,
        "status": status,
        "q": query,
        "statuses": overview.STATUSES,
        "list_url": flask.request.full_path.rstrip("?"),  # where a no-JS Run/Pause comes back to
    }
    if _htmx_target() == "pipeline-table":
        return flask.render_template("console/_pipeline_table.html", **context)
    return flask.render_template("console/pipelines.html", **context)


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
    pipeline = forms.create(db_session(), allowed_targets(), form)
    if pipeline is None:
        return _form_page(form, None), 400
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pipeline.id), 303)


@bp.route("/pipelines/<pipeline_id>/edit", methods=["GET", "POST"])
def edit_pipeline(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    session = db_session()
    if flask.request.method == "GET":
        pipeline = pipeline_service.get_pipeline(session, pid)
        return _form_page(forms.PipelineForm.of(pipeline), pipeline)
    form = forms.PipelineForm.submitted(flask.request.form)
    saved = forms.update(session, allowed_targets(), pid, form)
    if saved is None:
        return _form_page(form, pipeline_service.get_pipeline(session, pid)), 400
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pid), 303)


def _form_page(form: forms.PipelineForm, pipeline):
    return flask.render_template(
        "console/form.html",
        form=form,
        pipeline=pipeline,
        targets=allowed_targets(),
        # The contract's refusal, shown before the operator types anything; saving still refuses.
        busy_message=str(PipelineBusy()) if pipeline is not None and pipeline.status == "RUNNING" else None,
    )


# the pipeline page -----------------------------------------------------------------------------
@bp.get("/pipelines/<pipeline_id>")
def pipeline(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    before, after = _cursors()
    session = db_session()
    pipeline = pipeline_service.get_pipeline(session, pid)
    page = overview.run_history(session, pid, before=before, after=after)
    recent = page.runs[: overview.CHART_RUNS] if page.first else overview.recent_runs(session, pid)
    latest = recent[0] if recent else None
    return flask.render_template(
        "console/pipeline.html",
        p=pipeline,
        pipeline=pipeline,
        run=latest,
        page=page,
        chart=run_chart(recent),
        live_rows=page.first,
    )


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
        "console/_pipeline_live.html", p=summary, run=summary.last_run, live_rows=live_rows
    )


def _run_state(run: overview.RunView | None) -> str:
    return f"{run.id}:{run.status}" if run is not None else ""


@bp.get("/pipelines/<pipeline_id>/history")
def history(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    before, after = _cursors()
    session = db_session()
    pipeline_service.get_pipeline(session, pid)
    page = overview.run_history(session, pid, before=before, after=after)
    return flask.render_template("console/_history.html", p={"id": pid}, page=page)


@bp.get("/pipelines/<pipeline_id>/chart")
def chart(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    session = db_session()
    pipeline_service.get_pipeline(session, pid)
    recent = overview.recent_runs(session, pid)
    return flask.render_template("console/_chart.html", p={"id": pid}, chart=run_chart(recent))


# actions ----------------------------------------------------------------------------------------
@bp.post("/pipelines/<pipeline_id>/run")
def run_pipeline(pipeline_id: str):
    pid = _pipeline_uuid(pipeline_id)
    _, queued = run_service.request_run(db_session(), pid)
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
        "console/_pipeline_row.html", p=summary, list_url=_safe_next(flask.url_for(".pipelines"))
    )
