"""Alembic environment: the connection comes from etl_console.db.migrate, never from an ini file."""
from alembic import context

from etl_console.db.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
