"""Alembic migrations: idempotent, and exactly what the models declare."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import psycopg2
import pytest
from alembic.script import ScriptDirectory

from etl_console.db.migrate import MigrationLockTimeout, _UPGRADE_LOCK_KEY, alembic_config, current_revision, upgrade
from etl_console.db.models import Base


def test_upgrade_twice_is_a_no_op_and_matches_the_models(etl):
    engine = etl.database.engine
    before = current_revision(engine)
    upgrade(engine)
    upgrade(engine)
    head = ScriptDirectory.from_config(alembic_config(None)).get_current_head()
    assert current_revision(engine) == before == head
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_a_held_migration_lock_is_waited_for_with_a_bound_and_named(etl, dsn):
    """Any session can take an advisory lock; a start must not hang on one forever."""
    holder = psycopg2.connect(dsn, application_name="someone-holding-the-lock")
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_UPGRADE_LOCK_KEY,))
        with pytest.raises(MigrationLockTimeout, match="someone-holding-the-lock"):
            upgrade(etl.database.engine, lock_timeout_s=0.3)
    finally:
        holder.close()
    upgrade(etl.database.engine, lock_timeout_s=5)  # free again
