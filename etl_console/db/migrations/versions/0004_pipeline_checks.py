"""pipeline quality gates: one row of checks per pipeline

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The checks are one document (see etl_console.warehouse.gates): they are read whole, by the
    # runner's claim (into the run's configuration snapshot) and by the checks endpoint.
    op.create_table(
        "etl_pipeline_checks",
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("checks", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["pipeline_id"], ["etl_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pipeline_id"),
    )


def downgrade() -> None:
    op.drop_table("etl_pipeline_checks")
