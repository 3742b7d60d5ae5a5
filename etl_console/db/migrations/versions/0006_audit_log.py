"""the append-only audit log of state-changing actions

Revision ID: 0006
Revises: 0005

Append-only is enforced by the database, not by the service's good manners: a trigger refuses every
UPDATE and TRUNCATE, and every DELETE except of rows older than the cutoff that etl_audit_prune()
sets for its own transaction (the daily prune, services/audit.py).
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Each refused statement names itself; the prune's cutoff must be at least a day old, so a session
# that sets the variable by hand still cannot erase today's rows.
GUARD_FUNCTION = """
CREATE FUNCTION etl_audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cutoff text := current_setting('etl.audit_prune_before', true);
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(cutoff, '') <> ''
       AND cutoff::timestamptz <= now() - interval '1 day' AND OLD.at < cutoff::timestamptz THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'etl_audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$
"""

PRUNE_FUNCTION = """
CREATE FUNCTION etl_audit_prune(retention_days integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz;
    removed bigint;
BEGIN
    IF retention_days IS NULL OR retention_days < 1 THEN
        RAISE EXCEPTION 'audit retention must be at least 1 day, not %', retention_days;
    END IF;
    cutoff := now() - make_interval(days => retention_days);
    PERFORM set_config('etl.audit_prune_before', cutoff::text, true);
    DELETE FROM etl_audit_log WHERE at < cutoff;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('etl.audit_prune_before', '', true);
    RETURN removed;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "etl_audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("client_addr", sa.Text(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=True),
        sa.Column("object_name", sa.Text(), nullable=True),
        sa.Column("before", postgresql.JSONB(), nullable=True),
        sa.Column("after", postgresql.JSONB(), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(
            "actor_kind IN ('token', 'console', 'anonymous', 'system')", name="ck_etl_audit_log_actor_kind"
        ),
    )
    # Pages are newest first by (at, id); filters narrow by object, actor or action.
    op.create_index("ix_etl_audit_log_at", "etl_audit_log", [sa.text("at DESC"), sa.text("id DESC")])
    op.create_index("ix_etl_audit_log_object", "etl_audit_log", ["object_id", sa.text("at DESC"), sa.text("id DESC")])
    op.create_index("ix_etl_audit_log_object_name", "etl_audit_log",
                    ["object_name", sa.text("at DESC"), sa.text("id DESC")])
    op.create_index("ix_etl_audit_log_actor", "etl_audit_log", ["actor", sa.text("at DESC"), sa.text("id DESC")])
    op.create_index("ix_etl_audit_log_action", "etl_audit_log", ["action", sa.text("at DESC"), sa.text("id DESC")])
    op.execute(GUARD_FUNCTION)
    op.execute(PRUNE_FUNCTION)
    op.execute(
        "CREATE TRIGGER etl_audit_log_no_change BEFORE UPDATE OR DELETE ON etl_audit_log "
        "FOR EACH ROW EXECUTE FUNCTION etl_audit_log_guard()"
    )
    op.execute(
        "CREATE TRIGGER etl_audit_log_no_truncate BEFORE TRUNCATE ON etl_audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION etl_audit_log_guard()"
    )


def downgrade() -> None:
    op.drop_table("etl_audit_log")  # its triggers go with it
    op.execute("DROP FUNCTION IF EXISTS etl_audit_prune(integer)")
    op.execute("DROP FUNCTION IF EXISTS etl_audit_log_guard()")
