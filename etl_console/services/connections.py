"""Named source connections: their settings, their write-only passwords, their tests. No HTTP here.

A password enters through create/update, is encrypted at once (etl_console.db.secret_box) and leaves
this module only inside a libpq DSN handed to the code that connects: never in a view, a log line
or an error message.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Pipeline, SourceConnection
from ..db.secret_box import SecretBox, SecretKeyMismatch
from ..warehouse.source_probe import check_reachable, first_line, probe_source
from . import audit
from .savepoint import savepoint
from .errors import (
    ConnectionInUse,
    ConnectionNameTaken,
    ConnectionNotFound,
    InvalidConnection,
    SourceUnreachable,
    UnknownSourceConnection,
)

SETTINGS_FIELDS = (
    "name", "description", "host", "port", "database", "user", "sslmode", "options",
    "statement_timeout_s", "max_concurrent_runs", "required_label",
)
# What a URL may carry, and the column each part goes to.
_URL_PARTS = {"host": "host", "port": "port", "dbname": "database", "user": "user", "sslmode": "sslmode",
              "options": "options"}
_ADDRESS_FIELDS = ("host", "port", "database", "user", "sslmode", "options")


@dataclass(frozen=True)
class SourceAccess:
    """What reaching a connection needs besides its row: the key that opens passwords, and a bound."""

    box: SecretBox
    timeout_s: float
    default_connection: str | None = None  # ETL_DEFAULT_SOURCE_CONNECTION: read when a pipeline names none


@dataclass(frozen=True)
class ResolvedSource:
    """A connection ready to use: its DSN (with the password) and its own statement timeout."""

    connection_id: uuid.UUID
    name: str
    dsn: str
    statement_timeout_s: float | None
    max_concurrent_runs: int | None

    def __repr__(self) -> str:  # the DSN holds the password: never let a repr carry it into a log
        return f"ResolvedSource(name={self.name!r}, id={self.connection_id})"


# reading ---------------------------------------------------------------------------------------
def list_connections(session: Session) -> list[SourceConnection]:
    return list(session.scalars(select(SourceConnection).order_by(SourceConnection.name)))


def get_connection(session: Session, connection_id: uuid.UUID, *, for_update: bool = False) -> SourceConnection:
    query = select(SourceConnection).where(SourceConnection.id == connection_id)
    if for_update:
        query = query.with_for_update()
    connection = session.scalars(query).one_or_none()
    if connection is None:
        raise ConnectionNotFound()
    return connection


def find_connection(session: Session, name_or_id: str | uuid.UUID) -> SourceConnection:
    """By id when it parses as a UUID, else by name."""
    if isinstance(name_or_id, uuid.UUID):
        return get_connection(session, name_or_id)
    try:
        return get_connection(session, uuid.UUID(name_or_id))
    except (ValueError, ConnectionNotFound):
        connection = session.scalars(select(SourceConnection).where(SourceConnection.name == name_or_id)).one_or_none()
        if connection is None:
            raise ConnectionNotFound() from None
        return connection


def pipelines_using(session: Session, connection_id: uuid.UUID) -> list[str]:
    return list(session.scalars(
        select(Pipeline.name).where(Pipeline.source_connection_id == connection_id).order_by(Pipeline.name)
    ))


def usage_counts(session: Session) -> dict[uuid.UUID, int]:
    rows = session.execute(
        select(Pipeline.source_connection_id, func.count())
        .where(Pipeline.source_connection_id.is_not(None))
        .group_by(Pipeline.source_connection_id)
    )
    return {connection_id: count for connection_id, count in rows}


def connection_view(connection: SourceConnection, pipelines: list[str] | None = None) -> dict[str, Any]:
    """What the API and the console show: everything but the password, which is only `password_set`."""
    return {
        "id": connection.id,
        "name": connection.name,
        "description": connection.description,
        "host": connection.host,
        "port": connection.port,
        "database": connection.database,
        "user": connection.user,
        "sslmode": connection.sslmode,
        "options": connection.options,
        "password_set": connection.password_token is not None,
        "statement_timeout_s": connection.statement_timeout_s,
        "max_concurrent_runs": connection.max_concurrent_runs,
        "required_label": connection.required_label,
        "url": display_url(connection),
        "pipelines": pipelines,
        "last_test": connection.last_test,
        "created_at": connection.created_at,
        "updated_at": connection.updated_at,
    }


def display_url(connection: SourceConnection) -> str:
    """postgresql://user@host:port/database?..., without the password (it is never shown)."""
    from urllib.parse import quote, urlencode

    query = {key: value for key, value in (("sslmode", connection.sslmode), ("options", connection.options)) if value}
    user, database = quote(connection.user, safe=""), quote(connection.database, safe="")
    if connection.host.startswith("/"):  # a Unix socket directory goes in the query, as libpq's URIs write it
        query = {"host": connection.host, "port": connection.port, **query}
        return f"postgresql://{user}@/{database}?{urlencode(query)}"
    host = f"[{connection.host}]" if ":" in connection.host else connection.host
    url = f"postgresql://{user}@{host}:{connection.port}/{database}"
    return url + (f"?{urlencode(query)}" if query else "")


# writing ---------------------------------------------------------------------------------------
# What the audit log shows of a connection; password_token appears only as "***" (redacted by name).
AUDITED_FIELDS = ("name", "description", "host", "port", "database", "user", "sslmode", "options",
                  "password_token", "statement_timeout_s", "max_concurrent_runs", "required_label")
UNIQUE_NAME = {"etl_connections_name_key": ConnectionNameTaken}  # taken by a concurrent request after our check


def _record(session: Session, action: str, connection: SourceConnection, before: dict | None = None,
            after: dict | None = None) -> None:
    audit.record(session, action, object_type="connection", object_id=connection.id, object_name=connection.name,
                 before=before, after=after)


def create_connection(session: Session, box: SecretBox, data: dict[str, Any]) -> SourceConnection:
    values, password = _settings_from(data, creating=True)
    _check_name_free(session, values["name"])
    connection = SourceConnection(id=uuid.uuid4(), **values)
    if password:
        connection.password_token = box.encrypt(password)
    with savepoint(session, UNIQUE_NAME):
        session.add(connection)
    _record(session, "connection.create", connection, after=audit.snapshot(connection, AUDITED_FIELDS))
    return connection


def update_connection(
    session: Session, box: SecretBox, connection_id: uuid.UUID, changes: dict[str, Any]
) -> SourceConnection:
    """Change what was sent. `password`: a string sets it, null removes it, absent keeps it."""
    connection = get_connection(session, connection_id, for_update=True)
    before = audit.snapshot(connection, AUDITED_FIELDS)
    values, password = _settings_from(changes, creating=False)
    if "name" in values and values["name"] != connection.name:
        _check_name_free(session, values["name"], exclude_id=connection.id)
    with savepoint(session, UNIQUE_NAME):
        for key, value in values.items():
            setattr(connection, key, value)
        if "password" in changes or password is not None:
            connection.password_token = box.encrypt(password) if password else None
        if values or "password" in changes:
            connection.last_test = None  # it tested other settings
    _record(session, "connection.patch", connection,
            *audit.changed_only(before, audit.snapshot(connection, AUDITED_FIELDS)))
    return connection


def delete_connection(session: Session, connection_id: uuid.UUID) -> None:
    connection = get_connection(session, connection_id, for_update=True)
    users = pipelines_using(session, connection.id)
    if users:
        raise ConnectionInUse(users)
    _record(session, "connection.delete", connection, before=audit.snapshot(connection, AUDITED_FIELDS))
    try:
        with savepoint(session):
            session.delete(connection)
    except IntegrityError:  # a pipeline started using it between our check and the delete
        raise ConnectionInUse(pipelines_using(session, connection_id)) from None


def test_connection(sessions: sessionmaker[Session], access: SourceAccess, connection_id: uuid.UUID) -> dict[str, Any]:
    """Probe the source (bounded by access.timeout_s) and keep the answer as the connection's last test.

    Takes the session factory, not a session: it reads and records in two short transactions of its
    own, so no metadata transaction (nor pooled connection) is held while the network answers."""
    tested_at = datetime.now(timezone.utc)
    with sessions() as session:
        connection = get_connection(session, connection_id)
        try:
            dsn = connection_dsn(connection, access.box)
        except SecretKeyMismatch as error:
            dsn, result = None, {"ok": False, "server_version": None, "connect_ms": None, "round_trip_ms": None,
                                 "privilege_problems": [], "error": str(error)}
    if dsn is not None:
        result = probe_source(dsn, access.timeout_s).as_dict()
    result["tested_at"] = tested_at.isoformat().replace("+00:00", "Z")
    with sessions.begin() as session:
        connection = get_connection(session, connection_id, for_update=True)
        connection.last_test = result
        _record(session, "connection.test", connection, after={"ok": result.get("ok"), "error": result.get("error")})
        return {"connection_id": connection.id, "name": connection.name, **result}


# using -----------------------------------------------------------------------------------------
def connection_dsn(connection: SourceConnection, box: SecretBox) -> str:
    """The libpq DSN to connect with, password included: for connecting only, never for showing."""
    parts = {"host": connection.host, "port": connection.port, "dbname": connection.database,
             "user": connection.user}
    if connection.sslmode:
        parts["sslmode"] = connection.sslmode
    if connection.options:
        parts["options"] = connection.options
    if connection.password_token is not None:
        parts["password"] = box.decrypt(connection.password_token)
    return make_dsn(**parts)


def resolve_source(session: Session, access: SourceAccess, connection_id: uuid.UUID) -> ResolvedSource:
    """The connection's DSN and limits (check_resolved_reachable asks the network, outside any transaction)."""
    try:
        connection = get_connection(session, connection_id)
    except ConnectionNotFound:
        raise UnknownSourceConnection(f"source connection {connection_id} no longer exists") from None
    try:
        dsn = connection_dsn(connection, access.box)
    except SecretKeyMismatch as error:
        raise SourceUnreachable(f"source connection '{connection.name}': {error}") from None
    resolved = ResolvedSource(connection.id, connection.name, dsn, connection.statement_timeout_s,
                              connection.max_concurrent_runs)
    return resolved


def check_resolved_reachable(resolved: ResolvedSource, timeout_s: float) -> None:
    """SourceUnreachable, naming the connection, unless it answers within timeout_s."""
    try:
        check_reachable(resolved.dsn, timeout_s)
    except psycopg2.Error as error:
        raise SourceUnreachable(f"source connection '{resolved.name}' is unreachable: {first_line(error)}") from None


def check_pipeline_source(session: Session, access: SourceAccess, connection_id: uuid.UUID, query: str,
                          target_table: str, incremental_key: str | None = None, *, columns_fit: bool = True) -> None:
    """Save-time check of a pipeline reading a named source: the source answers, the query runs
    there (LIMIT 0, READ ONLY, as the connection's login), and its columns fit the target.

    columns_fit=False for a PYTHON pipeline: its tasks decide the columns loaded (checked when the
    tasks are saved, services.tasks), so the query's own columns need not fit the target."""
    from ..warehouse.source import describe, open_read_only
    from ..warehouse.source_probe import connect_source
    from ..warehouse.load import LoadError
    from ..warehouse.target import check_columns, target_columns
    from .errors import InvalidSourceQuery

    resolved = resolve_source(session, access, connection_id)
    try:
        source = connect_source(resolved.dsn, access.timeout_s, application_name="etl-console save check")
    except psycopg2.Error as error:
        raise SourceUnreachable(f"source connection '{resolved.name}' is unreachable: {first_line(error)}") from None
    try:
        cursor = open_read_only(source, min(access.timeout_s, resolved.statement_timeout_s or access.timeout_s))
        columns = [column.name for column in describe(cursor, query)]
    except LoadError as error:
        raise InvalidSourceQuery(f"{error} (on source connection '{resolved.name}')") from None
    finally:
        source.close()
    if not columns_fit:
        return
    # The target lives in the warehouse, which this session reaches when it is the metadata database
    # (the default); elsewhere the run checks the columns when it starts.
    cursor = session.connection().connection.cursor()
    try:
        target = target_columns(cursor, target_table)
        if incremental_key and incremental_key not in {column.name for column in target}:
            columns = [name for name in columns if name != incremental_key]  # it filters, it is not loaded
        check_columns(target_table, columns, target)
    except LoadError as error:
        if "does not exist" not in str(error):
            raise InvalidSourceQuery(str(error)) from None
    finally:
        cursor.close()


def effective_connection_id(session: Session, access: SourceAccess | None,
                            connection_id: uuid.UUID | None) -> uuid.UUID | None:
    """The connection a pipeline reads: its own, else the deployment's default one (if any)."""
    if connection_id is not None or access is None or not access.default_connection:
        return connection_id
    try:
        return find_connection(session, access.default_connection).id
    except ConnectionNotFound:
        raise UnknownSourceConnection(
            f"ETL_DEFAULT_SOURCE_CONNECTION names '{access.default_connection}', which does not exist"
        ) from None


def pipeline_source_connection(session: Session, value: str | None) -> uuid.UUID | None:
    """A pipeline's `source_connection` (a name or an id; null for the default source) as an id."""
    if value is None:
        return None
    try:
        return find_connection(session, value).id
    except ConnectionNotFound:
        raise UnknownSourceConnection(f"source_connection '{value}' does not exist") from None


# helpers ---------------------------------------------------------------------------------------
def _settings_from(data: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], str | None]:
    """Column values and the password from a request: separate fields, or a URL that replaces them."""
    values = {key: data[key] for key in SETTINGS_FIELDS if key in data}
    password = data.get("password")
    url = data.get("url")
    if url is not None:
        given = [key for key in _ADDRESS_FIELDS if key in data]
        if given:
            raise InvalidConnection(f"give either url or {', '.join(given)}, not both")
        address, url_password = parse_url(url)
        values.update(address)
        if url_password is not None:
            if password is not None:
                raise InvalidConnection("give the password in url or in password, not both")
            password = url_password
        if not creating:  # a URL replaces the whole address: what it leaves out goes back to defaults
            for key in ("sslmode", "options"):
                values.setdefault(key, None)
            values.setdefault("port", 5432)
    if creating:
        missing = [key for key in ("host", "database", "user") if not values.get(key)]
        if missing:
            raise InvalidConnection(f"a connection needs url, or {', '.join(missing)}", field=missing[0])
        values.setdefault("port", 5432)
    for key in ("host", "database", "user", "port"):
        if key in values and values[key] in (None, ""):
            raise InvalidConnection(f"{key} must not be empty", field=key)
    return values, password


def parse_url(url: str) -> tuple[dict[str, Any], str | None]:
    """postgresql://user:password@host:port/database?sslmode=...&options=... as columns and a password."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InvalidConnection("url must start with postgresql://")
    try:
        parsed = parse_dsn(url)
    except psycopg2.ProgrammingError:
        # Not echoed: a URL that fails to parse may still hold the password.
        raise InvalidConnection("url is not a valid PostgreSQL connection URL") from None
    password = parsed.pop("password", None)
    unsupported = sorted(set(parsed) - set(_URL_PARTS))
    if unsupported:
        raise InvalidConnection(f"url parameters not supported: {', '.join(unsupported)}")
    values: dict[str, Any] = {_URL_PARTS[key]: value for key, value in parsed.items()}
    if "port" in values:
        try:
            values["port"] = int(values["port"])
        except ValueError:
            raise InvalidConnection("url has a port that is not a number") from None
        if not 1 <= values["port"] <= 65535:
            raise InvalidConnection("url has a port outside 1..65535")
    if "," in values.get("host", ""):
        raise InvalidConnection("url names several hosts; give one")
    for key in ("host", "database", "user"):
        if not values.get(key):
            raise InvalidConnection(f"url has no {key}")
    return values, password


def _check_name_free(session: Session, name: str, exclude_id: uuid.UUID | None = None) -> None:
    clash = select(SourceConnection.id).where(SourceConnection.name == name)
    if exclude_id is not None:
        clash = clash.where(SourceConnection.id != exclude_id)
    if session.scalar(clash) is not None:
        raise ConnectionNameTaken()

