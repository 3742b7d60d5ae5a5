"""`etl-console connections ...`: list and test named source connections, re-encrypt their passwords."""
from __future__ import annotations

import sys

import click

from .config import Config


@click.group("connections")
def connections() -> None:
    """Named source connections (see also /api/v1/connections)."""


def _open():
    from .cli import _database

    config = Config.from_env()
    return config, _database(config)


@connections.command("list")
def list_connections() -> None:
    """One line per connection: address, limits, pipelines using it, last test. Never a password."""
    from .services import connections as service

    _, database = _open()
    with database.sessions() as session:
        rows = service.list_connections(session)
        used = service.usage_counts(session)
        if not rows:
            click.echo("no connections (create one with POST /api/v1/connections/ or in the console)")
        for connection in rows:
            test = connection.last_test
            verdict = "never tested" if test is None else (
                f"ok, PostgreSQL {test.get('server_version')}, {test.get('round_trip_ms')} ms" if test.get("ok")
                else f"FAILED: {test.get('error')}")
            limit = connection.max_concurrent_runs or "unlimited"
            click.echo(
                f"{connection.name}\t{service.display_url(connection)}\tpassword {'set' if connection.password_token else 'not set'}"
                f"\tmax runs {limit}\tpipelines {used.get(connection.id, 0)}\t{verdict}"
            )
    database.dispose()


@connections.command("test")
@click.argument("name_or_id")
def test_connection(name_or_id: str) -> None:
    """Connect to NAME_OR_ID now: server version, round trip, privilege check. Exit 1 when it fails."""
    from .db.secret_box import box_for
    from .services import connections as service
    from .services.errors import ConnectionNotFound

    config, database = _open()
    try:
        with database.sessions() as session:
            try:
                connection = service.find_connection(session, name_or_id)
            except ConnectionNotFound:
                raise click.ClickException(f"no connection named or with id {name_or_id!r}") from None
        result = service.test_connection(
            database.sessions, service.SourceAccess(box_for(config), config.connection_test_timeout_s), connection.id
        )
    finally:
        database.dispose()
    if result["ok"]:
        click.echo(f"{result['name']}: ok, PostgreSQL {result['server_version']}, connect {result['connect_ms']} ms, "
                   f"round trip {result['round_trip_ms']} ms, least-privilege login")
        return
    click.echo(f"{result['name']}: FAILED: {result['error']}", err=True)
    for problem in result["privilege_problems"]:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)


@connections.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every stored password with the first key of ETL_CONNECTION_KEY (see the README)."""
    from .db.models import SourceConnection
    from .db.secret_box import SecretKeyMismatch, box_for
    from .services import audit

    config, database = _open()
    box = box_for(config)
    try:
        with database.sessions.begin() as session:
            rows = session.query(SourceConnection).filter(SourceConnection.password_token.is_not(None)).with_for_update().all()
            try:
                for connection in rows:
                    connection.password_token = box.rotate(connection.password_token)
                    audit.record(session, "connection.rotate", object_type="connection", object_id=connection.id,
                                 object_name=connection.name, after={"encrypted_with": "the first key of ETL_CONNECTION_KEY"},
                                 actor=audit.command_line_actor())
            except SecretKeyMismatch as error:
                raise click.ClickException(f"connection {connection.name}: {error}; nothing was changed") from None
    finally:
        database.dispose()
    click.echo(f"{len(rows)} password(s) now encrypted with the first key; older keys may be dropped")
