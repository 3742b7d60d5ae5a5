"""Path ids, validated together with the query and body so that a 422 lists every error at once,
path errors first, as FastAPI does.

Every path parameter under /api/v1 is an id (a UUID). The API's Blueprint parses them as the URL is
matched (parse_path_ids); one that is not a UUID is replaced in the view arguments by an
InvalidPathId carrying its errors. The arguments parser reports those with its own errors; a view
that parses no arguments reports them before it runs (raise_path_errors_unless_parsing)."""
from __future__ import annotations

import flask

from .errors import FastAPIStyleParser, RequestValidationFailed, path_uuid

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
    def parse(self, *args, **kwargs):
        try:
            parsed = super().parse(*args, **kwargs)
        except RequestValidationFailed as failed:
            raise RequestValidationFailed(path_errors() + failed.errors) from None
        if errors := path_errors():
            raise RequestValidationFailed(errors)
        return parsed
