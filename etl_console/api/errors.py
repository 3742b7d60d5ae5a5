"""FastAPI-compatible error bodies: {"detail": "..."} and the 422 list, rendered in this one module
(the requests are parsed in api.parsing)."""
from __future__ import annotations

import math
import typing

import flask
from werkzeug.exceptions import HTTPException, UnprocessableEntity

from ..services import errors as domain

DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.PipelineNotFound: 404,
    domain.RunNotFound: 404,
    domain.NameTaken: 400,
    domain.TargetNotAllowed: 400,
    domain.InvalidSourceQuery: 400,
    domain.InvalidPipeline: 400,
    domain.PipelineBusy: 409,
    domain.InvalidSchedule: 400,
    domain.ReconcileFailed: 400,
    domain.ServiceBusy: 503,
    domain.ConnectionNotFound: 404,
    domain.ConnectionNameTaken: 400,
    domain.InvalidConnection: 400,
    domain.ConnectionInUse: 409,
    domain.UnknownSourceConnection: 400,
    domain.SourceUnreachable: 400,
    domain.AlertChannelNotFound: 404,
    domain.InvalidAlertChannel: 400,
    domain.UnknownUpstream: 400,
    domain.DependencyCycle: 409,
}

# FastAPI's own texts for routing errors.
HTTP_DETAIL = {404: "Not Found", 405: "Method Not Allowed", 413: "Request Entity Too Large"}


class RequestValidationFailed(UnprocessableEntity):
    def __init__(self, errors: list[dict]) -> None:
        super().__init__()
        self.errors = errors


def status_for(error: domain.DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 400


def json_error(detail: typing.Any, status: int, headers: dict | None = None) -> flask.Response:
    response = flask.current_app.json.response({"detail": detail})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def api_error_response(error: Exception) -> flask.Response:
    if isinstance(error, RequestValidationFailed):
        return json_error(_strict_json(error.errors), 422)
    if isinstance(error, domain.ServiceBusy):
        return json_error(str(error), 503, {"Retry-After": str(error.retry_after_s)})
    if isinstance(error, domain.DomainError):
        return json_error(str(error), status_for(error))
    if isinstance(error, HTTPException):
        headers = {"Allow": error.valid_methods and ", ".join(error.valid_methods)} if error.code == 405 else {}
        detail = HTTP_DETAIL.get(error.code, error.description or error.name)
        return json_error(detail, error.code or 500, {k: v for k, v in headers.items() if v})
    flask.current_app.logger.exception("unhandled API error", exc_info=error)
    return json_error("Internal Server Error", 500)


def _strict_json(value: typing.Any) -> typing.Any:
    """Echoed input that cannot be written as UTF-8 JSON (FastAPI answered 500 here): NaN and
    Infinity, which Python's json reads, become null as Pydantic serialises them; a lone surrogate
    ("\\ud800" in the request) becomes U+FFFD."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_strict_json(key): _strict_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_strict_json(item) for item in value]
    return value


def validation_error(type_: str, loc: list, msg: str, value: typing.Any, ctx: dict | None = None) -> dict:
    item = {"type": type_, "loc": loc, "msg": msg, "input": value}
    if ctx:
        item["ctx"] = ctx
    return item


# Write-only inputs (connection passwords, URLs that may carry one): a 422 echoes input, never these.
SECRET_FIELDS = ("password", "url")
REDACTED = "**********"


def redact_secrets(value: typing.Any, field: str | None = None) -> typing.Any:
    """The echoed input with secrets masked: a password field whole, the password inside a URL."""
    if field == "password" and value is not None:
        return REDACTED
    if field == "url" and isinstance(value, str):
        import re

        return re.sub(r"(://[^/@:]*:)[^/]*@", r"\1" + REDACTED + "@", value)
    if isinstance(value, dict):
        return {key: redact_secrets(item, key if key in SECRET_FIELDS else None) for key, item in value.items()}
    return value
