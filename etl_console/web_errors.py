"""The one place errors become responses: JSON under /api, HTML pages in the console."""
from __future__ import annotations

import flask
from werkzeug.exceptions import HTTPException, InternalServerError

from .api.errors import api_error_response
from .services.errors import DomainError


def _wants_json() -> bool:
    return flask.request.path.startswith("/api/")


def _handle(error: Exception):
    if _wants_json():
        return api_error_response(error)
    if isinstance(error, DomainError):
        from .api.errors import status_for

        status = status_for(error)
        message = str(error)
    elif isinstance(error, HTTPException):
        status, message = error.code or 500, error.description
    else:
        flask.current_app.logger.exception("unhandled console error", exc_info=error)
        status, message = 500, InternalServerError.description
    return flask.render_template("error.html", status=status, message=message), status


def init_error_handlers(app: flask.Flask) -> None:
    app.register_error_handler(HTTPException, _handle)
    app.register_error_handler(DomainError, _handle)
    app.register_error_handler(Exception, _handle)
