"""run retries with backoff, auto-pause, and pipelines that trigger each other

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

def _policy_columns() -> tuple[sa.Column, ...]:
    return (
        # max_retries 0: a failed run is not retried (the behaviour before this revision).
        sa.Column("max_retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_initial_delay_s", sa.Float(), server_default="60", nullable=False),
        sa.Column("retry_backoff_factor", sa.Float(), server_default="2", nullable=False),
        sa.Column("retry_max_delay_s", sa.Float(), server_default="3600", nullable=False),
        sa.Column("retry_jitter", sa.Float(), server_default="0.1", nullable=False),
        sa.Column("auto_pause_after_failures", sa.Integer(), nullable=True),
        # Final failures (retries exhausted) since the last success or auto-pause.
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
    )


def upgrade() -> None:
    for column in _policy_columns():
        op.add_column("etl_pipelines", column)
    op.add_column("etl_pipeline_runs", sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))
    op.add_column("etl_pipeline_runs", sa.Column("retry_of", postgresql.UUID(), nullable=True))
    # A queued retry is not claimed before this moment.
    op.add_column("etl_pipeline_runs", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key("etl_pipeline_runs_retry_of_fkey", "etl_pipeline_runs", "etl_pipeline_runs",
                          ["retry_of"], ["id"], ondelete="SET NULL")
    op.create_table(
        "etl_pipeline_upstreams",
        sa.Column("pipeline_id", postgresql.UUID(), nullable=False),
        sa.Column("upstream_id", postgresql.UUID(), nullable=False),
        # The upstream's latest success this downstream has not yet run after (None: none pending).
        sa.Column("pending_run_id", postgresql.UUID(), nullable=True),
        sa.Column("pending_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["pipeline_id"], ["etl_pipelines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["upstream_id"], ["etl_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pipeline_id", "upstream_id"),
    )
    op.create_index("ix_etl_pipeline_upstreams_upstream", "etl_pipeline_upstreams", ["upstream_id"])


def downgrade() -> None:
    op.drop_index("ix_etl_pipeline_upstreams_upstream", table_name="etl_pipeline_upstreams")
    op.drop_table("etl_pipeline_upstreams")
    op.drop_constraint("etl_pipeline_runs_retry_of_fkey", "etl_pipeline_runs", type_="foreignkey")
    for name in ("not_before", "retry_of", "attempt"):
        op.drop_column("etl_pipeline_runs", name)
    for column in reversed(_policy_columns()):
        op.drop_column("etl_pipelines", column.name)
