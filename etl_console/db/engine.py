"""Engines and sessions. Nothing connects until asked."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
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
    """The metadata database (pooled, for requests) plus DSNs for the runner and warehouse."""

    url: str
    warehouse_url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def connect(cls, config: Config) -> "Database":
        url = resolve_database_url(config)
        warehouse = sqlalchemy_url(config.warehouse_url) if config.warehouse_url else url
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        return cls(url, warehouse, engine, sessionmaker(engine, expire_on_commit=False))

    def unpooled_engine(self) -> Engine:
        """For the runner: it must hold no connection while idle."""
        return create_engine(self.url, poolclass=NullPool)

    @property
    def warehouse_dsn(self) -> str:
        return libpq_dsn(self.warehouse_url)

    @property
    def dsn(self) -> str:
        return libpq_dsn(self.url)

    def dispose(self) -> None:
        self.engine.dispose()
