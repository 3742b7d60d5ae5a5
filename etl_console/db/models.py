"""SQLAlchemy 2.x models of the metadata tables."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..lifecycle import DeliveryStatus, PipelineStatus, RunStatus  # noqa: F401 - models are where most code looks for them


class Base(DeclarativeBase):
    pass


class Pipeline(Base):
    __tablename__ = "etl_pipelines"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default="SQL")
    mode: Mapped[str] = mapped_column(String(16), default="full")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default=PipelineStatus.IDLE)
    target_table: Mapped[str] = mapped_column(String(255))
    batch_size: Mapped[int] = mapped_column(Integer, default=1000)
    source_query: Mapped[str] = mapped_column(Text)
    incremental_key: Mapped[str | None] = mapped_column(String(255))
    schedule: Mapped[str | None] = mapped_column(String(255))
    # The last cron tick a runner claimed for this pipeline; a tick fires once, across all runners.
    schedule_last_tick: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the source query runs; None: the deployment's default source. RESTRICT: a connection in
    # use cannot disappear under a pipeline (the API answers 409 before the database would refuse).
    source_connection_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_connections.id", ondelete="RESTRICT"), index=True
    )
    required_label: Mapped[str | None] = mapped_column(String(64))  # only runners with this label run it
    # Retry policy (services/retries.py): a failed run is retried up to max_retries times, the n-th
    # retry min(max_delay, initial * factor^(n-1)) * (1 ± jitter) seconds after the failure.
    max_retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_initial_delay_s: Mapped[float] = mapped_column(Float, default=60.0, server_default="60")
    retry_backoff_factor: Mapped[float] = mapped_column(Float, default=2.0, server_default="2")
    retry_max_delay_s: Mapped[float] = mapped_column(Float, default=3600.0, server_default="3600")
    retry_jitter: Mapped[float] = mapped_column(Float, default=0.1, server_default="0.1")
    # Pause after this many consecutive final failures (retries exhausted); None: never.
    auto_pause_after_failures: Mapped[int | None] = mapped_column(Integer)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Freshness (services/freshness.py): a successful run at least every freshness_minutes; counted
    # from freshness_set_at (or created_at) until the first success. freshness_breached_at is set
    # while stale, so breach and restore alerts fire once each. last_success_at is kept by the runner.
    freshness_minutes: Mapped[int | None] = mapped_column(Integer)
    freshness_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    freshness_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        Index("ix_etl_pipelines_status", "status"),
        Index("ix_etl_pipelines_created", "created_at", "id"),
    )


class PipelineRun(Base):
    __tablename__ = "etl_pipeline_runs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_written: Mapped[int] = mapped_column(BigInteger, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    # Runner bookkeeping, never part of the v1 shapes.
    worker_id: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[str | None] = mapped_column(String(32))
    config_snapshot: Mapped[dict | None] = mapped_column(JSONB)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    details: Mapped[dict | None] = mapped_column(JSONB)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # 2 and up: a retry
    retry_of: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipeline_runs.id", ondelete="SET NULL")
    )
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a queued retry waits until then

    __table_args__ = (
        # Run history, newest first, stays an index scan at 100k runs per pipeline.
        Index("ix_etl_pipeline_runs_history", "pipeline_id", text("started_at DESC"), text("id DESC")),
        # At most one RUNNING run per pipeline, whatever process created it.
        Index(
            "uq_etl_pipeline_runs_one_running",
            "pipeline_id",
            unique=True,
            postgresql_where=text(f"status = '{RunStatus.RUNNING}'"),
        ),
        Index("ix_etl_pipeline_runs_running", "started_at", postgresql_where=text(f"status = '{RunStatus.RUNNING}'")),
    )


class PipelineUpstream(Base):
    """An edge of the dependency graph: pipeline_id runs after upstream_id succeeds
    (services/dependencies.py). pending_run_id is the upstream's latest success not yet followed
    by a run of the downstream."""

    __tablename__ = "etl_pipeline_upstreams"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    upstream_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    pending_run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    pending_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_etl_pipeline_upstreams_upstream", "upstream_id"),)


class PipelineState(Base):
    """Incremental watermark of a pipeline (used by incremental mode)."""

    __tablename__ = "etl_state"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    watermark: Mapped[str | None] = mapped_column(Text)  # the key's value, as PostgreSQL prints it
    incremental_key: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PipelineStateChange(Base):
    """Audit trail of watermark changes: by runs, by the API, by the console."""

    __tablename__ = "etl_state_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE")
    )
    old_watermark: Mapped[str | None] = mapped_column(Text)
    new_watermark: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())

    __table_args__ = (Index("ix_etl_state_changes_pipeline", "pipeline_id", text("changed_at DESC")),)


class PipelineTask(Base):
    """Ordered task descriptions of a pipeline (reserved for PYTHON pipelines)."""

    __tablename__ = "etl_pipeline_tasks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PipelineChecks(Base):
    """A pipeline's quality gates (etl_console.warehouse.gates): one document, read whole by the
    claim's configuration snapshot and by services.checks."""

    __tablename__ = "etl_pipeline_checks"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    checks: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RunnerHeartbeat(Base):
    """One row per live runner process, so health checks can tell a dead runner."""

    __tablename__ = "etl_runners"

    worker_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str | None] = mapped_column(Text)  # comma-separated (etl-console worker --label)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsoleSession(Base):
    """A signed-in console session. The browser holds only a random id; deleting the row (logout,
    expiry) ends the session however long the cookie would have lived."""

    __tablename__ = "etl_console_sessions"

    id_digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's id, hex
    user_name: Mapped[str] = mapped_column(String(255))
    data: Mapped[str] = mapped_column(Text)  # Flask's tagged-JSON session dict (the user, the CSRF secret)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class LoginThrottleCounter(Base):
    """Fixed-window counters of failed console logins (per user, per client address), shared by every
    web process. Flask-Limiter keeps them here through etl_console.services.login_attempts."""

    __tablename__ = "etl_login_throttle"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SourceConnection(Base):
    """A named PostgreSQL source (production, UGC) with its own login and limits.

    The password is stored only as a Fernet token (etl_console.db.secret_box); nothing that reads
    this row for display ever decrypts it."""

    __tablename__ = "etl_connections"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5432)
    database: Mapped[str] = mapped_column(String(255))
    user: Mapped[str] = mapped_column(String(255))
    sslmode: Mapped[str | None] = mapped_column(String(32))
    options: Mapped[str | None] = mapped_column(Text)  # libpq's `options` (e.g. "-c search_path=content")
    password_token: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet token, never the password
    statement_timeout_s: Mapped[float | None] = mapped_column(Float)  # None: ETL_STATEMENT_TIMEOUT_S
    max_concurrent_runs: Mapped[int | None] = mapped_column(Integer)  # None: no limit
    # Only runners started with this label read it (a source reachable from some hosts only).
    required_label: Mapped[str | None] = mapped_column(String(64))
    last_test: Mapped[dict | None] = mapped_column(JSONB)  # the last POST .../test answer
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class AlertChannel(Base):
    """Where alerts go: a webhook (signed with a write-only secret, stored as a Fernet token) or an
    email address."""

    __tablename__ = "etl_alert_channels"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # webhook | email
    url: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    secret_token: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet token, never the secret
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (CheckConstraint("kind IN ('webhook', 'email')", name="ck_etl_alert_channels_kind"),)


class PipelineAlert(Base):
    """A pipeline's subscription of one channel to some event kinds."""

    __tablename__ = "etl_pipeline_alerts"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_alert_channels.id", ondelete="CASCADE"), primary_key=True
    )
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))

    __table_args__ = (Index("ix_etl_pipeline_alerts_channel", "channel_id"),)


class AlertDelivery(Base):
    """The outbox: one row per (event, channel), written in the event's transaction, sent by runners."""

    __tablename__ = "etl_alert_outbox"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    event_key: Mapped[str] = mapped_column(String(255))  # the idempotency key (X-Etl-Delivery)
    event_kind: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("etl_alert_channels.id", ondelete="CASCADE")
    )
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # no FK: outlives its pipeline
    run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payload: Mapped[dict] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16))  # PENDING | SENDING | DELIVERED | FAILED
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_http_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_key", "channel_id", name="uq_etl_alert_outbox_event_channel"),
        Index("ix_etl_alert_outbox_due", "next_attempt_at", postgresql_where=text(f"status IN ('{DeliveryStatus.PENDING}', '{DeliveryStatus.SENDING}')")),
        Index("ix_etl_alert_outbox_listing", text("created_at DESC"), text("id DESC")),
        Index("ix_etl_alert_outbox_channel", "channel_id", text("created_at DESC")),
    )


class AuditEntry(Base):
    """One state-changing action: who, from where, what, and the object before and after (secrets
    redacted). Append-only: a trigger refuses UPDATE, TRUNCATE and DELETE except the daily prune
    (migration 0006, services/audit.py)."""

    __tablename__ = "etl_audit_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)  # the token's name, the console user, 'anonymous', 'system'
    actor_kind: Mapped[str] = mapped_column(String(16))  # token | console | anonymous | system
    client_addr: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))  # e.g. pipeline.patch, login.failure, audit.prune
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(Text)
    object_name: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict | None] = mapped_column(JSONB)
    after: Mapped[dict | None] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_etl_audit_log_at", text("at DESC"), text("id DESC")),
        Index("ix_etl_audit_log_object", "object_id", text("at DESC"), text("id DESC")),
        Index("ix_etl_audit_log_object_name", "object_name", text("at DESC"), text("id DESC")),
        Index("ix_etl_audit_log_actor", "actor", text("at DESC"), text("id DESC")),
        Index("ix_etl_audit_log_action", "action", text("at DESC"), text("id DESC")),
    )
