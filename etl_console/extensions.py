"""The application's own extension: what every request, panel and serving hook shares in one process.

create_app stores one EtlExtension as app.extensions["etl"]; code below the web layer never sees
it (services get a session, the runner gets a database and a config)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .config import Config
from .db.engine import LazyDatabase

EXTENSION_KEY = "etl"


@dataclass
class EtlExtension:
    config: Config
    database: LazyDatabase
    runner: Any = None  # a runner thread, started by the serving process (never by create_app)
    reconcile_slots: threading.Semaphore | None = None  # bounds reconcile-now per process
    source_check: Any = None  # SourcePrivilegeCheck: is user SQL running as a least-privilege login?


def etl_of(app) -> EtlExtension:
    return app.extensions[EXTENSION_KEY]


def current_etl() -> EtlExtension:
    """The extension of the app handling this request."""
    import flask

    return etl_of(flask.current_app)
