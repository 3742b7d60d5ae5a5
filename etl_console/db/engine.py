"""Engines and sessions. Nothing connects until asked."""
from __future__ import annotations

import contextvars
import functools
import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine, Select, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from ..config import Config


def sqlalchemy_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def libpq_dsn(url: str) -> str:
    """The same URL in the form psycopg2.connect takes (no +driver)."""
    parsed = make_url(sqlalchemy_url(url)).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def resolve_database_url(config: Config) -> str:
    if config.database_url:
        return sqlalchemy_url(config.database_url)
    from .embedded import start_embedded

    return start_embedded(config.data_dir)


@dataclass
class Database:
    """The metadata database (pooled, for requests) plus DSNs for the runner, warehouse and user SQL."""

    url: str
    warehouse_url: str
    engine: Engine
    sessions: sessionmaker[Session]
    # The least-privilege login user SQL runs as; None means the service's own login (health flags it).
    source_url: str | None = field(default=None, repr=False)
    owns_source_login: bool = False  # provisioned by us (embedded): re-granted when the demo adds tables

    @classmethod
    def connect(cls, config: Config) -> "Database":
        url = resolve_database_url(config)
        warehouse = sqlalchemy_url(config.warehouse_url) if config.warehouse_url else url
        # One pooled connection per request thread: with fewer, every burst opened overflow connections
        # and closed them at check-in (a new server backend each time, for nothing).
        # _ping_on_checkout is pool_pre_ping's check: a pooled connection the server ended is replaced
        # before a request gets it. A cheaper check (ping only when the socket looked closed) lost that
        # race on TCP: a 500. read_one alone skips it, and reads again on a new connection instead.
        engine = create_engine(url, pool_size=max(5, config.threads), max_overflow=10)
        event.listen(engine, "checkout", _ping_on_checkout(engine.dialect))
        event.listen(engine, "checkin", _end_autocommit)
        database = cls(url, warehouse, engine, sessionmaker(engine, expire_on_commit=False))
        if config.source_url:
            database.source_url = sqlalchemy_url(config.source_url)
        elif config.database_url is None and config.warehouse_url is None:
            database.owns_source_login = True
            database.source_url = database.provision_source_login(config)
        return database

    def provision_source_login(self, config: Config) -> str:
        """(Re)create the embedded server's source login and its grants; return its URL."""
        from .source_login import DEFAULT_LOGIN, local_password, login_url, provision_source_login

        password = local_password(config.data_dir)
        provision_source_login(
            libpq_dsn(self.warehouse_url),
            login=DEFAULT_LOGIN,
            password=password,
            schemas=config.source_schemas,
            tables=config.allowed_target_tables,
            revoke_public_functions=True,
        )
        return login_url(self.warehouse_url, DEFAULT_LOGIN, password)

    def read_one(self, statement: Select, parameters: dict) -> dict | None:
        """The row of a one-statement read as {column: value}, or None, on the driver's connection:
        SQLAlchemy's execution machinery cost more CPU than the query. Autocommit (the statement is its
        own transaction) saves the BEGIN and COMMIT round trips, and no ping precedes it: a pooled
        connection the server ended fails the statement instead, and it is read again after a ping."""
        query = _driver_query(statement, self.engine.dialect)
        skip_ping = _skip_ping.set(True)
        try:
            return _read_one_autocommit(self.engine, query, parameters)
        except _Disconnected:
            pass
        finally:
            _skip_ping.reset(skip_ping)
        return _read_one_autocommit(self.engine, query, parameters)

    def unpooled_engine(self) -> Engine:
        """For the runner: it must hold no connection while idle."""
        return create_engine(self.url, poolclass=NullPool)

    @property
    def warehouse_dsn(self) -> str:
        return libpq_dsn(self.warehouse_url)

    @property
    def source_dsn(self) -> str:
        """Where user SQL runs: the source login, or (flagged as unsafe) the warehouse's own login."""
        return libpq_dsn(self.source_url or self.warehouse_url)

    def dispose(self) -> None:
        self.engine.dispose()


_skip_ping: contextvars.ContextVar[bool] = contextvars.ContextVar("etl_skip_ping", default=False)


def _ping_on_checkout(dialect):
    def ping(dbapi_connection, _record, _proxy) -> None:
        if _skip_ping.get():
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise InvalidatePoolError() from error  # as pool_pre_ping: reconnect, drop older connections
            raise

    return ping


class _Disconnected(Exception):
    pass


@dataclass(frozen=True)
class _DriverQuery:
    sql: str
    keys: tuple[str, ...]


@functools.lru_cache(maxsize=32)
def _driver_query(statement: Select, dialect) -> _DriverQuery:
    """The statement's SQL for the driver; only for types the driver converts alone, as SQLAlchemy would."""
    compiled = statement.compile(dialect=dialect)
    processed = [bind.key for bind in compiled.binds.values() if bind.type.dialect_impl(dialect).bind_processor(dialect)]
    processed += [column.key for column in statement.selected_columns
                  if column.type.dialect_impl(dialect).result_processor(dialect, None)]
    if processed:
        raise TypeError(f"read_one cannot convert {processed}: read them through a Session or Connection")
    return _DriverQuery(compiled.string, tuple(statement.selected_columns.keys()))


def _read_one_autocommit(engine: Engine, query: _DriverQuery, parameters: dict) -> dict | None:
    pooled = engine.raw_connection()
    try:
        dbapi_connection = pooled.dbapi_connection
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute(query.sql, parameters)
            row = cursor.fetchone()
    except engine.dialect.loaded_dbapi.Error as error:
        if engine.dialect.is_disconnect(error, dbapi_connection, None):
            pooled.invalidate(error)
            raise _Disconnected() from error
        raise
    finally:
        pooled.close()
    return None if row is None else dict(zip(query.keys, row))


def _end_autocommit(dbapi_connection, _record) -> None:
    """Back in the pool, a connection read_one used opens transactions again."""
    if dbapi_connection is not None and dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


class LazyDatabase:
    """A Database that connects (starting the embedded server if that is the default) on first use.

    create_app builds one and does no I/O: the first request, runner or command that needs the
    database resolves it, once per process."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._database: Database | None = None
        self._lock = threading.Lock()

    def resolve(self) -> Database:
        if self._database is None:
            with self._lock:
                if self._database is None:
                    self._database = Database.connect(self._config)
        return self._database

    @property
    def connected(self) -> bool:
        return self._database is not None

    def __getattr__(self, name: str):
        return getattr(self.resolve(), name)

    def dispose(self) -> None:
        if self._database is not None:
            self._database.dispose()
