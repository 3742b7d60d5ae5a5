"""Alembic migrations: idempotent, and exactly what the models declare."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from etl_console.db.migrate import current_revision, upgrade
from etl_console.db.models import Base


def test_upgrade_twice_is_a_no_op_and_matches_the_models(app):
    engine = app.extensions["etl"].database.engine
    before = current_revision(engine)
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == before == "0002"
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
