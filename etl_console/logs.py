"""Structured logs: every record carries the request id and the run id it belongs to.

- `ETL_LOG_FORMAT=text` (default): one readable line, `[req=… run=…]` when known.
- `ETL_LOG_FORMAT=json`: one JSON object a line: ts, level, logger, msg, request_id, run_id, exc.

The request id is the `X-Request-ID` the proxy sent (nginx sets it to `$request_id`), or a new one;
it is echoed in the response's `X-Request-ID`. The run id is bound by the runner in the thread that
executes the run, so every line a run logs names it. gunicorn's access log goes through
`GunicornLogger` (gunicorn.conf.py sets it), which writes the same JSON when asked and picks its
fields one by one: request headers such as Authorization are never written.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("etl_request_id", default=None)
run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("etl_run_id", default=None)

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HANDLER_TAG = "_etl_console_handler"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s %(message)s"


class ContextFilter(logging.Filter):
    """Adds request_id, run_id and a ready-made `context` suffix to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "run_id"):
            record.run_id = run_id_var.get()
        parts = [f"req={record.request_id}" if record.request_id else "", f"run={record.run_id}" if record.run_id else ""]
        joined = " ".join(p for p in parts if p)
        record.context = f" [{joined}]" if joined else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line. gunicorn's access records become fields, not a formatted string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if access is not None:
            entry["msg"] = "access"
            entry.update(access)
        else:
            entry["msg"] = record.getMessage()
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        run_id = getattr(record, "run_id", None) or run_id_var.get()
        if request_id and "request_id" not in entry:
            entry["request_id"] = request_id
        if run_id:
            entry["run_id"] = run_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(log_level: str = "INFO", log_format: str = "text") -> None:
    """Route the root logger to stderr in the chosen format (idempotent; replaces our own handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_TAG, True)
    handler.addFilter(ContextFilter())
    handler.setFormatter(make_formatter(log_format))
    root.addHandler(handler)
    root.setLevel(log_level.upper())


def bind_run_id(run_id: Any) -> None:
    """Called by the runner in a run's own thread: every record from that thread names the run."""
    run_id_var.set(str(run_id))


def clean_request_id(value: str | None) -> str:
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def init_logging(app, config) -> None:
    import flask

    configure_logging(config.log_level, config.log_format)

    # An app-level URL value preprocessor runs before everything else on a request (before the
    # blueprints' own preprocessors and every before_request), so even early refusals carry the id.
    @app.url_value_preprocessor
    def _bind_request_id(_endpoint=None, _values=None):
        request_id = clean_request_id(flask.request.headers.get("X-Request-ID"))
        flask.g.request_id = request_id
        flask.g.request_id_token = request_id_var.set(request_id)

    @app.after_request
    def _echo_request_id(response):
        request_id = flask.g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
        return response

    @app.teardown_request
    def _unbind_request_id(_exc=None):
        token = flask.g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)


try:  # gunicorn is a dependency, but keep this module importable without it
    from gunicorn.glogging import Logger as _GunicornBase
except ImportError:  # pragma: no cover
    _GunicornBase = object  # type: ignore[assignment,misc]


class GunicornLogger(_GunicornBase):  # type: ignore[misc,valid-type]
    """gunicorn's logger, writing JSON when ETL_LOG_FORMAT=json.

    The JSON access record holds chosen atoms only (never the request headers wholesale, so an
    Authorization header cannot reach the log).
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        import os

        if os.environ.get("ETL_LOG_FORMAT", "text") == "json":
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time) -> None:
        import os

        if os.environ.get("ETL_LOG_FORMAT", "text") != "json":
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return
        # The atoms gunicorn's `atoms()` would give for these fields, read directly: `atoms()` also
        # formats a timestamp and copies every header and environ entry, on every request.
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_headers = getattr(req, "headers", req)
        fields = {
            "remote": environ.get("REMOTE_ADDR", "-"),
            "forwarded_for": _last_header(request_headers, "x-forwarded-for"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": int(str(status).split()[0]) if status else None,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(((request_time.seconds * 1000000) + request_time.microseconds) / 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT", "-"),
            "request_id": _last_header(resp.headers, "x-request-id") or _last_header(request_headers, "x-request-id"),
        }
        try:
            self.access_log.info("access", extra={"access": fields})
        except Exception:  # noqa: BLE001 - as gunicorn does: a logging failure is not the request's
            self.error("could not write the access log record")


def _last_header(headers, lower_name: str):
    """The value gunicorn's atoms hold for `{name}i`/`{name}o`: the last header of that name, any case."""
    if hasattr(headers, "items"):
        headers = headers.items()
    value = None
    for name, header_value in headers:
        if name.lower() == lower_name:
            value = header_value
    return value
