"""watermarks as text with their audit trail; schedule ticks

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("etl_pipelines", sa.Column("schedule_last_tick", sa.DateTime(timezone=True), nullable=True))
    op.alter_column(
        "etl_state", "watermark", type_=sa.Text(), existing_type=postgresql.JSONB(), postgresql_using="watermark #>> '{}'"
    )
    op.add_column("etl_state", sa.Column("incremental_key", sa.String(length=255), nullable=True))
    op.create_table(
        "etl_state_changes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("old_watermark", sa.Text(), nullable=True),
        sa.Column("new_watermark", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.ForeignKeyConstraint(["pipeline_id"], ["etl_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_etl_state_changes_pipeline", "etl_state_changes", ["pipeline_id", sa.literal_column("changed_at DESC")]
    )
    # Pipeline list filters and keyset pagination.
    op.create_index("ix_etl_pipelines_created", "etl_pipelines", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_etl_pipelines_created", table_name="etl_pipelines")
    op.drop_index("ix_etl_state_changes_pipeline", table_name="etl_state_changes")
    op.drop_table("etl_state_changes")
    op.drop_column("etl_state", "incremental_key")
    op.alter_column(
        "etl_state", "watermark", type_=postgresql.JSONB(), existing_type=sa.Text(), postgresql_using="to_jsonb(watermark)"
    )
    op.drop_column("etl_pipelines", "schedule_last_tick")
