"""named source connections; a pipeline's optional source connection

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "etl_connections",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("database", sa.String(length=255), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("sslmode", sa.String(length=32), nullable=True),
        sa.Column("options", sa.Text(), nullable=True),
        # A Fernet token (etl_console.db.secret_box): the password itself is never stored.
        sa.Column("password_token", sa.LargeBinary(), nullable=True),
        sa.Column("statement_timeout_s", sa.Float(), nullable=True),
        sa.Column("max_concurrent_runs", sa.Integer(), nullable=True),
        sa.Column("required_label", sa.String(length=64), nullable=True),
        sa.Column("last_test", postgresql.JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    # Nullable: every existing pipeline keeps reading the deployment's default source.
    op.add_column("etl_pipelines", sa.Column("source_connection_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        "etl_pipelines_source_connection_id_fkey", "etl_pipelines", "etl_connections",
        ["source_connection_id"], ["id"], ondelete="RESTRICT",
    )
    op.create_index("ix_etl_pipelines_source_connection_id", "etl_pipelines", ["source_connection_id"])
    # Placement: a pipeline or its connection may require a runner label; runners say theirs.
    op.add_column("etl_pipelines", sa.Column("required_label", sa.String(length=64), nullable=True))
    op.add_column("etl_runners", sa.Column("labels", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("etl_runners", "labels")
    op.drop_column("etl_pipelines", "required_label")
    op.drop_index("ix_etl_pipelines_source_connection_id", table_name="etl_pipelines")
    op.drop_constraint("etl_pipelines_source_connection_id_fkey", "etl_pipelines", type_="foreignkey")
    op.drop_column("etl_pipelines", "source_connection_id")
    op.drop_table("etl_connections")
