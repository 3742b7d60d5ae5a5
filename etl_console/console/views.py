"""Console views (placeholder until the console issue lands): a home page that links the API."""
from __future__ import annotations

import flask

bp = flask.Blueprint("console", __name__)


@bp.get("/")
def index():
    return flask.render_template("error.html", status=200, message="etl-console is running; see /api/v1/docs")
