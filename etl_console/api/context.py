"""What API views need from the application: a request-scoped session and the runner's doorbell."""
from __future__ import annotations

import flask
from sqlalchemy.orm import Session

from ..extensions import current_etl




def db_session() -> Session:
    """One session per request, closed (and rolled back if left open) at teardown."""
    if "db_session" not in flask.g:
        flask.g.db_session = current_etl().database.sessions()
    return flask.g.db_session


def close_db_session(_exc=None) -> None:
    session = flask.g.pop("db_session", None)
    if session is not None:
        session.close()


def allowed_targets() -> tuple[str, ...]:
    return current_etl().config.allowed_target_tables


def wake_runner() -> None:
    runner = current_etl().runner
    if runner is not None:
        runner.wake()


def secret_box():
    """The key that encrypts connection passwords (etl_console.db.secret_box)."""
    from ..db.secret_box import box_for

    return box_for(current_etl().config)


def source_access():
    """What reaching a named source connection needs: the password key and a time bound."""
    from ..services.connections import SourceAccess

    config = current_etl().config
    return SourceAccess(secret_box(), config.connection_test_timeout_s, config.default_source_connection)
