"""Path ids are validated together with the query and body, so a 422 lists every error at once, path
errors first, as FastAPI does. A url_value_preprocessor collects them; the argument parser (or, for
a view that parses no arguments, a before_request hook) raises them."""
from __future__ import annotations

import flask

from .errors import FastAPIStyleParser, RequestValidationFailed, path_uuid


def collect_path_ids(values: dict | None, names: tuple[str, ...] = ("pipeline_id", "run_id")) -> None:
    """url_value_preprocessor body: parse UUIDs in place, or remember their errors for later."""
    for name in names:
        if values and name in values:
            try:
                values[name] = path_uuid(values[name], name)
            except RequestValidationFailed as failed:
                flask.g.setdefault("path_errors", []).extend(failed.errors)


def raise_path_errors_unless_parsing() -> None:
    """before_request body: a view that parses no arguments reports its path errors now."""
    if flask.g.get("path_errors") and not _view_parses_arguments():
        raise RequestValidationFailed(flask.g.pop("path_errors"))


def _view_parses_arguments() -> bool:
    view = flask.current_app.view_functions.get(flask.request.endpoint)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, flask.request.method.lower(), None)
    return bool(getattr(view, "_apidoc", {}).get("arguments"))


class PathAwareParser(FastAPIStyleParser):
    def parse(self, *args, **kwargs):
        try:
            parsed = super().parse(*args, **kwargs)
        except RequestValidationFailed as failed:
            raise RequestValidationFailed(flask.g.pop("path_errors", []) + failed.errors) from None
        if flask.g.get("path_errors"):
            raise RequestValidationFailed(flask.g.pop("path_errors"))
        return parsed


def register(blueprint) -> None:
    blueprint.url_value_preprocessor(lambda endpoint, values: collect_path_ids(values))
    blueprint.before_request(raise_path_errors_unless_parsing)
