"""The application factory: create_app builds the app and registers its parts, and does nothing else.

No connection, no server start, no migration, no file, no thread: the database is resolved on first
use (db.engine.LazyDatabase), the generated secret key on first signature, and the processes that
serve (etl_console.serving.web_process_app) check the schema and start a runner thread themselves."""
from __future__ import annotations

import json
import logging
import threading
import weakref
from pathlib import Path
from typing import Any

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import RequestRedirect
from flask_wtf.csrf import CSRFProtect

from .config import Config
from .local_secrets import local_secret
from .db.engine import LazyDatabase
from .extensions import EXTENSION_KEY, EtlExtension, etl_of

log = logging.getLogger(__name__)


def _asset_dir(name: str) -> str:
    """templates/ and static/ sit beside the package in a checkout, or under share/ when installed."""
    import sys

    in_checkout = Path(__file__).resolve().parent.parent / name
    if in_checkout.is_dir():
        return str(in_checkout)
    return str(Path(sys.prefix) / "share" / "etl-console" / name)


class ContractJSONProvider(DefaultJSONProvider):
    """Bytes as FastAPI's JSONResponse writes them: declared key order, compact, UTF-8, no newline."""

    sort_keys = False
    ensure_ascii = False
    compact = True

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        options = {"default": self.default, "ensure_ascii": False, "sort_keys": False, "separators": (",", ":")}
        options.update(kwargs)
        return json.dumps(obj, **options)

    def response(self, *args: Any, **kwargs: Any):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(self.dumps(obj), mimetype="application/json")


class _ApiSlashRedirect(RequestRedirect):
    """FastAPI's slash redirect: 307 and an empty body (werkzeug's is 308 with an HTML page)."""

    code = 307

    def get_response(self, environ=None, scope=None):
        return Response(status=307, headers={"Location": self.new_url})


class EtlFlask(Flask):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._known_sync: weakref.WeakSet = weakref.WeakSet()

    def ensure_sync(self, func):
        """Flask's answer, remembered per function: Flask asks it for every hook and view on every
        request, and inspecting a function for `async def` each time cost more than some hooks."""
        key = getattr(func, "__func__", func)  # a bound method is made anew per request: key on its function
        if key in self._known_sync:
            return func
        wrapped = super().ensure_sync(func)
        if wrapped is func:
            try:
                self._known_sync.add(key)
            except TypeError:  # cannot be weakly referenced: Flask is asked again next time
                pass
        return wrapped

    @property
    def secret_key(self):
        """ETL_SECRET_KEY, or the data directory's generated one, created on first use (not by create_app)."""
        key = self.config.get("SECRET_KEY")
        if key is None and EXTENSION_KEY in self.extensions:
            key = self.config["SECRET_KEY"] = local_secret(etl_of(self).config.data_dir, "secret_key")
        return key

    @secret_key.setter
    def secret_key(self, value) -> None:
        self.config["SECRET_KEY"] = value

    def dispatch_request(self):
        """The request edge owns the transaction: views and services only flush. A view answering
        below 400 commits (a refusal at commit still reaches the error handlers); any other
        answer, or an exception, rolls back."""
        from .api.context import end_request_transaction

        response = self.make_response(super().dispatch_request())
        end_request_transaction(response.status_code < 400)
        return response

    def raise_routing_exception(self, request):
        redirect = request.routing_exception
        if isinstance(redirect, RequestRedirect) and request.path.startswith("/api/"):
            raise _ApiSlashRedirect(redirect.new_url)
        super().raise_routing_exception(request)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    config = Config.from_env(**dict(overrides or {}))
    app = EtlFlask("etl_console", template_folder=_asset_dir("templates"), static_folder=_asset_dir("static"))
    app.json = ContractJSONProvider(app)
    app.config.update(
        SECRET_KEY=config.secret_key,  # None: EtlFlask.secret_key generates one on first use
        API_TITLE="etl-console",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/static/vendor/swagger-ui/",
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        PROVIDE_AUTOMATIC_OPTIONS=False,  # FastAPI answers OPTIONS with 405 (no CORS configured)
        WTF_CSRF_TIME_LIMIT=None,  # console CSRF tokens live as long as the session: no stale tabs after an hour
    )
    app.config.update(config.extra)
    from .logs import init_logging

    init_logging(app, config)  # first: every later hook and log line sees the request id

    database = LazyDatabase(config)
    from .db.source_login import SourcePrivilegeCheck

    state = EtlExtension(
        config,
        database,
        reconcile_slots=threading.BoundedSemaphore(max(1, config.reconcile_concurrency)),
        source_check=SourcePrivilegeCheck(database),
    )
    app.extensions[EXTENSION_KEY] = state

    from .api import init_api
    from .api.context import close_db_session
    from .console import init_console
    from .web_errors import init_error_handlers

    init_api(app, config)
    init_console(app)
    init_error_handlers(app)
    from .auth import init_auth
    from .metrics import init_metrics
    from .web_security import init_web_security

    init_metrics(app, config)
    init_web_security(app, config)  # Host, Origin, chunked bodies: before auth (its checks run in this order)
    init_auth(app, config)
    # CSRF on every state-changing console request (forms and htmx); the JSON API stays token-free.
    csrf = CSRFProtect(app)
    for blueprint in list(app.blueprints.values()):
        if (blueprint.url_prefix or "").startswith("/api/"):
            csrf.exempt(blueprint)
    if "auth" in app.blueprints:  # its views check the token themselves, to answer with the form again
        csrf.exempt(app.blueprints["auth"])
    app.teardown_appcontext(close_db_session)
    return app
