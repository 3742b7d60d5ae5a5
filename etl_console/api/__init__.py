"""The JSON API under /api/v1, documented by flask-smorest."""
from __future__ import annotations

import flask_smorest

from .parsing import PARSES_ARGUMENTS, PathAwareParser, parse_path_ids, raise_path_errors_unless_parsing
from .schemas import DetailErrorSchema


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's, with path ids parsed as FastAPI did (see api.parsing)."""

    ARGUMENTS_PARSER = PathAwareParser()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.url_value_preprocessor(lambda _endpoint, values: parse_path_ids(values))
        self.before_request(raise_path_errors_unless_parsing)

    def arguments(self, *args, **kwargs):
        decorate = super().arguments(*args, **kwargs)

        def marked(func):
            view = decorate(func)
            setattr(view, PARSES_ARGUMENTS, True)  # copied to outer decorators by functools.wraps
            return view

        return marked


class Api(flask_smorest.Api):
    """flask-smorest without its app-wide JSON error handler: ours answers the API in FastAPI's
    shape and the console in HTML (see etl_console.web_errors). The documented default error is
    therefore ours too: {"detail": ...}."""

    ERROR_SCHEMA = DetailErrorSchema

    def _register_error_handlers(self):
        pass


def init_api(app, config) -> Api:
    from .audit import blp as audit_blp
    from .alerts import blp as alerts_blp
    from .checks import blp as checks_blp
    from .config import blp as config_blp
    from .connections import blp as connections_blp
    from .pipeline_settings import blp as settings_blp
    from .health import blp as health_blp
    from .pipeline_extras import blp as extras_blp
    from .pipeline_flow import blp as flow_blp
    from .pipelines import blp as pipelines_blp
    from .tasks import blp as tasks_blp

    from ..auth import PUBLIC_PATHS, settings_from_config
    from . import security_doc

    auth_enabled = settings_from_config(config).enabled
    api = Api(app, spec_kwargs=security_doc.spec_kwargs(auth_enabled, PUBLIC_PATHS))
    security_doc.declare_scheme(api, auth_enabled)
    from .schemas import UtcDateTime

    api.register_field(UtcDateTime, "string", "date-time")
    # Every path parameter under /api/v1 is an id (pipeline, run, connection, channel): a UUID, as
    # FastAPI documented it, so clients and fuzzers send UUIDs. Any string still reaches the view,
    # whose path parsing answers a 422 naming the field (api.parsing), as FastAPI did.
    from werkzeug.routing import UnicodeConverter

    api.register_converter(UnicodeConverter, lambda _converter: {"type": "string", "format": "uuid"})
    api.register_blueprint(pipelines_blp)
    api.register_blueprint(extras_blp)
    api.register_blueprint(checks_blp)
    api.register_blueprint(health_blp)
    api.register_blueprint(connections_blp)
    api.register_blueprint(settings_blp)
    api.register_blueprint(tasks_blp)
    api.register_blueprint(alerts_blp)
    api.register_blueprint(flow_blp)
    api.register_blueprint(audit_blp)
    api.register_blueprint(config_blp)
    return api
