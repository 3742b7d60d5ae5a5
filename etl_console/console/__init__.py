"""The operator console: server-rendered pages with htmx."""
from __future__ import annotations

import functools
import os


def init_console(app) -> None:
    from .format import FILTERS
    from .views import bp

    app.register_blueprint(bp)
    from .connections import bp as connections_bp

    app.register_blueprint(connections_bp)
    from .audit_page import bp as audit_bp

    app.register_blueprint(audit_bp)
    from .alerts_page import bp as alerts_bp

    app.register_blueprint(alerts_bp)
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals["can_operate"] = can_operate
    app.jinja_env.globals["pipeline_href"] = pipeline_href
    app.jinja_env.globals["run_href"] = run_href
    app.jinja_env.globals["asset_url"] = asset_url
    app.jinja_env.globals["source_privilege_problems"] = source_privilege_problems
    from ..lifecycle import GateResult, PipelineStatus, RunStatus

    app.jinja_env.globals.update(PipelineStatus=PipelineStatus, RunStatus=RunStatus, GateResult=GateResult)


def source_privilege_problems() -> list[str]:
    """Why user SQL is not confined to a least-privilege login (empty when it is); cached by the check."""
    from ..extensions import current_etl

    check = current_etl().source_check
    try:
        return check.problems()
    except Exception:  # noqa: BLE001 - a page must render even when the check cannot run
        return []


def can_operate() -> bool:
    """False for a console user whose role is viewer (etl_console.auth): hide what they may not do."""
    import flask

    return flask.g.get("auth_role") != "viewer"


_ID = "00000000-0000-0000-0000-000000000000"
_ENDPOINTS = {"": "console.pipeline", "run": "console.run_pipeline", "pause": "console.pause_pipeline",
              "edit": "console.edit_pipeline"}


def pipeline_href(pipeline_id, action: str = "") -> str:
    """url_for for a pipeline's pages, built once per request and endpoint then filled in: the
    list renders 500 rows with three links each, and werkzeug's URL builder is the slow part."""
    import flask

    cache = flask.g.setdefault("_pipeline_hrefs", {})
    template = cache.get(action)
    if template is None:
        template = cache[action] = flask.url_for(_ENDPOINTS[action], pipeline_id=_ID)
    return template.replace(_ID, str(pipeline_id))


_RUN_ID = "11111111-1111-1111-1111-111111111111"


def run_href(pipeline_id, run_id) -> str:
    """The run detail page's URL, built like pipeline_href: a history page links 50 runs."""
    import flask

    cache = flask.g.setdefault("_pipeline_hrefs", {})
    template = cache.get("run-detail")
    if template is None:
        template = cache["run-detail"] = flask.url_for("console.run_detail", pipeline_id=_ID, run_id=_RUN_ID)
    return template.replace(_ID, str(pipeline_id)).replace(_RUN_ID, str(run_id))


@functools.lru_cache(maxsize=64)
def _asset_version(folder: str, filename: str) -> str:
    try:
        stat = os.stat(os.path.join(folder, filename))
    except OSError:
        return "0"
    return f"{int(stat.st_mtime):x}{stat.st_size:x}"


def asset_url(filename: str) -> str:
    """A static file's URL with its version in the query: nginx may cache /static/ (deploy/nginx.conf
    says an hour), and a new release must not run with last release's CSS or JavaScript."""
    import flask

    version = _asset_version(flask.current_app.static_folder or "", filename)
    return flask.url_for("static", filename=filename, v=version)
