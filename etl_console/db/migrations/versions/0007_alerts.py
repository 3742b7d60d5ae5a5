"""alert channels, per-pipeline alert settings, the delivery outbox and freshness

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "etl_alert_channels",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),  # webhook | email
        sa.Column("url", sa.Text(), nullable=True),  # webhook
        sa.Column("email", sa.String(length=320), nullable=True),  # email
        # A Fernet token (etl_console.db.secret_box) of the HMAC secret: never the secret itself.
        sa.Column("secret_token", sa.LargeBinary(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.CheckConstraint("kind IN ('webhook', 'email')", name="ck_etl_alert_channels_kind"),
    )
    op.create_table(
        "etl_pipeline_alerts",
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("channel_id", sa.UUID(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["pipeline_id"], ["etl_pipelines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["channel_id"], ["etl_alert_channels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pipeline_id", "channel_id"),
    )
    op.create_index("ix_etl_pipeline_alerts_channel", "etl_pipeline_alerts", ["channel_id"])
    op.create_table(
        "etl_alert_outbox",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=False),  # the idempotency key
        sa.Column("event_kind", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.UUID(), nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=True),  # no FK: a delivery outlives its pipeline
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["channel_id"], ["etl_alert_channels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_key", "channel_id", name="uq_etl_alert_outbox_event_channel"),
    )
    # What a sender claims: due rows not yet delivered or given up on.
    op.create_index("ix_etl_alert_outbox_due", "etl_alert_outbox", ["next_attempt_at"],
                    postgresql_where=sa.text("status IN ('PENDING', 'SENDING')"))
    op.create_index("ix_etl_alert_outbox_listing", "etl_alert_outbox", [sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_etl_alert_outbox_channel", "etl_alert_outbox", ["channel_id", sa.text("created_at DESC")])
    # Freshness: "a successful run at least every N minutes". last_success_at is kept by the runner
    # so the stale predicate is a column comparison (the list page filters on it).
    op.add_column("etl_pipelines", sa.Column("freshness_minutes", sa.Integer(), nullable=True))
    op.add_column("etl_pipelines", sa.Column("freshness_set_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("etl_pipelines", sa.Column("freshness_breached_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("etl_pipelines", sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE etl_pipelines p SET last_success_at = s.finished_at FROM "
        "(SELECT pipeline_id, max(finished_at) AS finished_at FROM etl_pipeline_runs "
        " WHERE status = 'SUCCESS' GROUP BY pipeline_id) s WHERE s.pipeline_id = p.id"
    )


def downgrade() -> None:
    op.drop_column("etl_pipelines", "last_success_at")
    op.drop_column("etl_pipelines", "freshness_breached_at")
    op.drop_column("etl_pipelines", "freshness_set_at")
    op.drop_column("etl_pipelines", "freshness_minutes")
    op.drop_table("etl_alert_outbox")
    op.drop_table("etl_pipeline_alerts")
    op.drop_table("etl_alert_channels")
