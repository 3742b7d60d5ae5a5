"""The operator console: server-rendered pages with htmx."""
from __future__ import annotations


def init_console(app) -> None:
    from .format import FILTERS
    from .views import bp

    app.register_blueprint(bp)
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals["can_operate"] = can_operate
    app.jinja_env.globals["pipeline_href"] = pipeline_href


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
