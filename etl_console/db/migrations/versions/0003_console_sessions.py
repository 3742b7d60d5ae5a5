"""console sessions and login throttling

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "etl_console_sessions",
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_digest"),
    )
    op.create_index("ix_etl_console_sessions_expires_at", "etl_console_sessions", ["expires_at"])
    op.create_table(
        "etl_login_throttle",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_etl_login_throttle_expires_at", "etl_login_throttle", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_etl_login_throttle_expires_at", table_name="etl_login_throttle")
    op.drop_table("etl_login_throttle")
    op.drop_index("ix_etl_console_sessions_expires_at", table_name="etl_console_sessions")
    op.drop_table("etl_console_sessions")
