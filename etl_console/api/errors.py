"""FastAPI-compatible error bodies: {"detail": "..."} and the 422 list, built in this one module."""
from __future__ import annotations

import json
import math
import typing

import flask
import marshmallow as ma
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, HTTPException, UnprocessableEntity

from ..services import errors as domain
from .fields import FieldError, parse_uuid

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

_LOCATION = {"json": "body", "query": "query", "querystring": "query", "path": "path", "view_args": "path"}


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


def messages_to_errors(messages: dict, body: typing.Any) -> list[dict]:
    """webargs' {location: {field: [message]}} into FastAPI's list, in schema field order."""
    errors = []
    body = redact_secrets(body)
    for location, fields_messages in messages.items():
        prefix = _LOCATION.get(location, location)
        source = body if prefix == "body" else None
        for field, field_messages in fields_messages.items():
            for message in field_messages if isinstance(field_messages, list) else [field_messages]:
                if isinstance(message, FieldError):
                    echoed = redact_secrets(message.input, field if field in SECRET_FIELDS else None)
                    errors.append(validation_error(message.type, [prefix, field], str(message), echoed, message.ctx))
                elif message == "Field required":
                    errors.append(validation_error("missing", [prefix, field], "Field required", source))
                else:
                    errors.append(validation_error("value_error", [prefix, field], str(message), None))
    return errors


class FastAPIStyleParser(FlaskParser):
    """Reads bodies and reports errors as FastAPI does, instead of webargs' defaults."""

    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req: flask.Request) -> typing.Any:
        data = req.get_data(cache=True)
        if not data:  # only a truly empty body is "missing"; whitespace is invalid JSON, as in FastAPI
            raise RequestValidationFailed([validation_error("missing", ["body"], "Field required", None)])
        if req.mimetype and not is_json_request(req):
            body = data.decode("utf-8", "replace")
            raise RequestValidationFailed(
                [
                    validation_error(
                        "model_attributes_type",
                        ["body"],
                        "Input should be a valid dictionary or object to extract fields from",
                        body,
                    )
                ]
            )
        try:
            # Starlette's request.json(): json.loads on the bytes (UTF-8/16/32, BOM allowed).
            parsed = json.loads(data)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError):
            # Not UTF-8, an integer over 4300 digits, nesting too deep: FastAPI's own 400.
            raise BadRequest("There was an error parsing the body") from None
        if not isinstance(parsed, dict):
            raise RequestValidationFailed(
                [
                    validation_error(
                        "model_attributes_type",
                        ["body"],
                        "Input should be a valid dictionary or object to extract fields from",
                        parsed,
                    )
                ]
            )
        return parsed

    def _handle_invalid_json_error(self, error, req, *args, **kwargs) -> typing.NoReturn:
        position = getattr(error, "pos", 0)
        reason = getattr(error, "msg", "Invalid UTF-8")
        raise RequestValidationFailed(
            [validation_error("json_invalid", ["body", position], "JSON decode error", {}, {"error": reason})]
        )

    def load_querystring(self, req: flask.Request, schema: ma.Schema) -> typing.Any:
        # Starlette, and so FastAPI, reads the last of repeated query parameters; werkzeug the first.
        return self._makeproxy(MultiDict([(key, values[-1]) for key, values in req.args.lists()]), schema)

    def handle_error(self, error: ma.ValidationError, req, schema, *, error_status_code, error_headers):
        body = None
        if req.get_data(cache=True):
            try:
                body = json.loads(req.get_data(cache=True))
            except ValueError:
                body = None
        raise RequestValidationFailed(messages_to_errors(error.messages, body))


def path_uuid(value: str, name: str = "pipeline_id"):
    """Path ids are UUIDs; anything else is a 422 on ["path", name], worded as Pydantic does."""
    try:
        return parse_uuid(value)
    except ma.ValidationError as error:
        (message,) = error.messages
        raise RequestValidationFailed(
            [validation_error(message.type, ["path", name], str(message), message.input, message.ctx)]
        ) from None


def encode_cursor(created_at, pipeline_id) -> str:
    import base64

    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{pipeline_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str):
    """The (created_at, id) a cursor names, or a 422 on ["query", "cursor"]."""
    import base64
    import uuid
    from datetime import datetime

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, pipeline_id = raw.split("|")
        return datetime.fromisoformat(created_at), uuid.UUID(pipeline_id)
    except (ValueError, UnicodeDecodeError):
        raise RequestValidationFailed(
            [validation_error("value_error", ["query", "cursor"], "Value error, not a cursor from a Link header", cursor)]
        ) from None
