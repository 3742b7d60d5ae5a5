"""What web views need from the application: the request's transaction and the runner's doorbell.

The request owns its transaction: views hand `db_session()` to services, which flush and raise
domain errors but never commit or roll back. EtlFlask.dispatch_request ends it through
`end_request_transaction`: committed when the view answered below 400, rolled back otherwise (a
refused change leaves nothing behind), and at teardown whatever is left open is rolled back."""
from __future__ import annotations

import flask
from sqlalchemy.orm import Session

from ..extensions import current_etl


def db_session() -> Session:
    """The request's session; its transaction begins with the first statement."""
    if "db_session" not in flask.g:
        flask.g.db_session = current_etl().database.sessions()
    return flask.g.db_session


def end_request_transaction(succeeded: bool) -> None:
    """Commit (succeeded) or roll back the request's transaction; then ring what waited for the commit."""
    session = flask.g.get("db_session")
    if session is None:
        return
    if not succeeded:
        session.rollback()
        flask.g.pop("after_commit", None)
        return
    session.commit()
    for action in flask.g.pop("after_commit", ()):
        action()


def close_db_session(_exc=None) -> None:
    session = flask.g.pop("db_session", None)
    if session is not None:
        session.close()


def allowed_targets() -> tuple[str, ...]:
    return current_etl().config.allowed_target_tables


def wake_runner() -> None:
    """Wake this process's runner once the request's transaction commits (a run queued by it is
    invisible to the runner before then)."""
    runner = current_etl().runner
    if runner is None:
        return
    session = flask.g.get("db_session")
    if session is not None and session.in_transaction():
        flask.g.setdefault("after_commit", []).append(runner.wake)
    else:
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
