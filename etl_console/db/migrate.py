"""Alembic, driven from code. Only `etl-console db upgrade`, `demo` and `serve` (once, before its
workers fork) migrate; every other process checks the revision with require_current_schema()."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).parent / "migrations"
# Serialises concurrent upgrades (several gunicorn workers starting at once).
_UPGRADE_LOCK_KEY = 0x45544C4D  # "ETLM"


def alembic_config(connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


class SchemaBehind(RuntimeError):
    """The metadata database is not at this version's revision; the message says what to run."""


def require_current_schema(engine: Engine) -> None:
    """For processes that must not migrate (web workers, `worker`, `run`, `demo`): refuse to start on
    a schema other than this code's, instead of failing on the first query that needs it. Quietly:
    a check, unlike a migration, has nothing to report."""
    from alembic.script import ScriptDirectory

    expected = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with engine.connect() as connection:
        has_version = connection.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar()
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar() if has_version else None
    if current != expected:
        raise SchemaBehind(
            f"the metadata database is at revision {current or 'none (empty)'}, this version needs {expected}: "
            "run `etl-console db upgrade` (or `etl-console serve`, which migrates before it starts)"
        )


class MigrationLockTimeout(RuntimeError):
    """Another session held the migration lock for longer than we wait; the message names it."""


def upgrade(engine: Engine, revision: str = "head", lock_timeout_s: float = 60.0) -> None:
    """Migrate under an advisory lock, waiting at most lock_timeout_s for it: anything may hold that
    key (a stuck migration, or a session someone opened by hand), and a start must not hang forever."""
    with engine.connect() as connection:
        connection.execute(text("SELECT set_config('lock_timeout', :t, false)"), {"t": f"{int(lock_timeout_s * 1000)}ms"})
        try:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
        except OperationalError as error:
            if getattr(error.orig, "pgcode", None) != "55P03":  # lock_not_available
                raise
            connection.rollback()
            raise MigrationLockTimeout(
                f"waited {lock_timeout_s:g} s for the migration lock (advisory lock {_UPGRADE_LOCK_KEY}), "
                f"held by {_lock_holder(connection)}"
            ) from None
        finally:
            connection.execute(text("RESET lock_timeout"))
        connection.commit()
        try:
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _UPGRADE_LOCK_KEY})
            connection.commit()


def _lock_holder(connection) -> str:
    row = connection.execute(
        text(
            "SELECT a.pid, a.usename, a.application_name, a.state, left(a.query, 200) "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :k AND l.objsubid = 1"
        ),
        {"k": _UPGRADE_LOCK_KEY},
    ).first()
    connection.rollback()
    if row is None:
        return "a session that has released it since"
    pid, user, application, state, query = row
    return f"pid {pid} (user {user}, application {application or '-'}, {state}: {query})"


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
