"""Request parsing for the API, as FastAPI parsed: bodies, query strings, path ids and cursors, with
every error reported at once in its 422 list (rendered by api.errors).

Path ids: every path parameter under /api/v1 is an id (a UUID). The API's Blueprint parses them as
the URL is matched (parse_path_ids); one that is not a UUID is replaced in the view arguments by an
InvalidPathId carrying its errors. The arguments parser reports those with its own errors, path
first; a view that parses no arguments reports them before it runs (raise_path_errors_unless_parsing).
"""
from __future__ import annotations

import json
import typing

import flask
import marshmallow as ma
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest

from .. import pagination
from .errors import SECRET_FIELDS, RequestValidationFailed, redact_secrets, validation_error
from .fields import FieldError, parse_uuid

_LOCATION = {"json": "body", "query": "query", "querystring": "query", "path": "path", "view_args": "path"}


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


PARSES_ARGUMENTS = "etl_parses_arguments"  # set on views by Blueprint.arguments


class InvalidPathId:
    def __init__(self, errors: list) -> None:
        self.errors = errors


def parse_path_ids(values: dict | None) -> None:
    """url_value_preprocessor body: UUIDs in place of the strings, or the errors they raise."""
    for name, value in (values or {}).items():
        if name.endswith("_id") and isinstance(value, str):
            try:
                values[name] = path_uuid(value, name)
            except RequestValidationFailed as failed:
                values[name] = InvalidPathId(failed.errors)


def path_errors() -> list:
    return [error for value in (flask.request.view_args or {}).values() if isinstance(value, InvalidPathId)
            for error in value.errors]


def raise_path_errors_unless_parsing() -> None:
    """before_request body: a view that parses no arguments reports its path errors now."""
    errors = path_errors()
    if errors and not getattr(_current_view(), PARSES_ARGUMENTS, False):
        raise RequestValidationFailed(errors)


def _current_view():
    view = flask.current_app.view_functions.get(flask.request.endpoint)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, flask.request.method.lower(), None)
    return view


class PathAwareParser(FastAPIStyleParser):
    """The API's parser: path id errors first, then the query's and the body's."""

    def parse(self, *args, **kwargs):
        try:
            parsed = super().parse(*args, **kwargs)
        except RequestValidationFailed as failed:
            raise RequestValidationFailed(path_errors() + failed.errors) from None
        if errors := path_errors():
            raise RequestValidationFailed(errors)
        return parsed


def query_cursor(value: str, key: typing.Callable[[str], typing.Any] = pagination.uuid_key):
    """The (time, id) position a cursor from a Link header names, or a 422 on ["query", "cursor"]."""
    try:
        return pagination.decode_cursor(value, key)
    except ValueError:
        raise RequestValidationFailed(
            [validation_error("value_error", ["query", "cursor"], "Value error, not a cursor from a Link header", value)]
        ) from None


def _query_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(getattr(value, "value", value))  # enums by their contract string


def next_page_link(parsed: dict, at, key) -> dict:
    """The Link header of a keyset page: this request's parameters as parsed (a repeated one
    counts once), with the cursor after the page's last row, whose position is (at, key)."""
    args = {name: _query_text(value) for name, value in parsed.items() if value is not None}
    args["cursor"] = pagination.encode_cursor(at, key)
    return {"Link": f'<{flask.url_for(flask.request.endpoint, _external=True, **args)}>; rel="next"'}
