"""The pipeline list page: filtered, keyset-paged, with counts per status and bulk Pause/Run.

Its routes live on the console blueprint. Query parameters (all optional, all kept by the page's
links): `q` (part of the name), `status`, `target`, `failing=1` (the newest run failed), `stale=1`
(no success within its freshness window), `limit` (1..500, default 50), and one cursor: `after`
(the last name of the previous page) or `before` (the first name of the next one). A malformed
limit or cursor is a 400 page that says which; an unknown status is ignored as before.
"""
from __future__ import annotations

import uuid
from dataclasses import replace

import flask
from werkzeug.exceptions import BadRequest

from ..api.context import allowed_targets, current_etl, db_session, wake_runner
from ..services import bulk_actions
from ..services import overview
from ..services import pipeline_list
from .views import _htmx_target, _safe_next, bp

MAX_CURSOR_LENGTH = 255  # a pipeline name's length
_TRUE = ("1", "on", "true", "yes")


def _text(args, name: str) -> str | None:
    """A text parameter as given; PostgreSQL text cannot hold NUL, so one is a 400, not a 500."""
    value = args.get(name)
    if value is not None and "\x00" in value:
        raise BadRequest(f"'{name}' contains a NUL character, which no pipeline name or target has.")
    return value


def _filters(args) -> pipeline_list.ListFilters:
    status = args.get("status", "")
    return pipeline_list.ListFilters(
        status=status if status in overview.STATUSES else None,
        target_table=(_text(args, "target") or "").strip()[:MAX_CURSOR_LENGTH] or None,
        name=(_text(args, "q") or "").strip() or None,
        failing=args.get("failing", "").lower() in _TRUE,
        stale=args.get("stale", "").lower() in _TRUE,
    )


def _limit(args) -> int:
    raw = args.get("limit", "").strip()
    if not raw:
        return pipeline_list.DEFAULT_PAGE_SIZE
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= pipeline_list.MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be a whole number from 1 to {pipeline_list.MAX_PAGE_SIZE} (pipelines per page).")
    return limit


def _cursor(args) -> tuple[str | None, str | None]:
    after, before = _text(args, "after"), _text(args, "before")
    if after is not None and before is not None:
        raise BadRequest("A page link has either 'after' or 'before', not both; start again from the first page.")
    for value in (after, before):
        if value is not None and not 0 < len(value) <= MAX_CURSOR_LENGTH:
            raise BadRequest("That page link is not valid; start again from the first page.")
    return after, before


def _query_args(filters: pipeline_list.ListFilters, limit: int, **extra) -> dict:
    """The list URL's parameters for these filters (defaults left out), plus `extra`."""
    args = {
        "q": filters.name,
        "status": filters.status,
        "target": filters.target_table,
        "failing": "1" if filters.failing else None,
        "stale": "1" if filters.stale else None,
        "limit": limit if limit != pipeline_list.DEFAULT_PAGE_SIZE else None,
        **extra,
    }
    return {name: value for name, value in args.items() if value is not None}


@bp.get("/")
def pipelines():
    args = flask.request.args
    filters, limit = _filters(args), _limit(args)
    after, before = _cursor(args)
    session = db_session()
    page = pipeline_list.list_page(session, filters, after=after, before=before, limit=limit)
    counts = pipeline_list.status_counts(session, filters)

    def list_url(**extra) -> str:
        return flask.url_for(".pipelines", **_query_args(filters, limit, **extra))

    context = {
        "pipelines": page.pipelines,
        "page": page,
        "counts": counts,
        "filters": filters,
        "status": filters.status or "",
        "q": filters.name or "",
        "limit": limit,
        "default_limit": pipeline_list.DEFAULT_PAGE_SIZE,
        "statuses": overview.STATUSES,
        "targets": allowed_targets(),
        # A count's link: the same filters with that status (None: any status), from the first page.
        "status_url": lambda status: flask.url_for(".pipelines", **_query_args(replace(filters, status=status), limit)),
        "stale_url": flask.url_for(".pipelines", **_query_args(replace(filters, stale=True), limit)),
        "next_url": list_url(after=page.next_after) if page.next_after else None,
        "previous_url": list_url(before=page.previous_before) if page.previous_before else None,
        "first_url": list_url() if not page.first else None,
        "list_url": flask.request.full_path.rstrip("?"),  # where a no-JS Run/Pause comes back to
    }
    if _htmx_target() == "pipeline-table":
        return flask.render_template("console/_pipeline_table.html", **context)
    return flask.render_template("console/pipelines.html", **context)


# bulk actions -----------------------------------------------------------------------------------
@bp.post("/pipelines/bulk/pause")
def bulk_pause():
    outcome = bulk_actions.pause_many(current_etl().database.sessions, _selected_ids())
    return _after_bulk("Pause", outcome)


@bp.post("/pipelines/bulk/run")
def bulk_run():
    outcome = bulk_actions.run_many(current_etl().database.sessions, _selected_ids())
    if outcome.queued_runs:
        wake_runner()
    return _after_bulk("Run", outcome)


def _selected_ids() -> list[uuid.UUID]:
    values = flask.request.form.getlist("ids")
    if len(values) > bulk_actions.MAX_SELECTED:
        raise BadRequest(f"Select at most {bulk_actions.MAX_SELECTED} pipelines at once.")
    try:
        return [uuid.UUID(value) for value in values]
    except ValueError:
        raise BadRequest("The selection names something that is not a pipeline id; reload the page.") from None


def _after_bulk(action: str, outcome: bulk_actions.BulkOutcome):
    """Back to the list the operator was on (post/redirect/get), with what happened as a message."""
    if outcome.counts:
        flask.flash(f"{action} selected: {outcome.summary()}.", "ok")
    else:
        flask.flash(f"{action} selected: no pipeline was selected.", "warning")
    return flask.redirect(_safe_next(flask.url_for(".pipelines")), 303)
