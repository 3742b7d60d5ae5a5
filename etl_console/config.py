"""One Config object, read from ETL_* environment variables (overrides win)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

DEFAULT_ALLOWED_TARGETS = ("analytics.film_dim", "analytics.film_rating_agg")


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _tuple(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Config:
    """Every setting, its ETL_* variable and its default; the README's table mirrors this."""

    database_url: str | None = None  # ETL_DATABASE_URL; None starts the embedded server
    warehouse_url: str | None = None  # ETL_WAREHOUSE_URL; None means the metadata database
    data_dir: str = "./.etl-console"  # ETL_DATA_DIR; the embedded server's home
    allowed_target_tables: tuple[str, ...] = DEFAULT_ALLOWED_TARGETS  # ETL_ALLOWED_TARGET_TABLES
    runner: str = "thread"  # ETL_RUNNER: thread | off
    target_max_concurrent_runs: int = 0  # ETL_TARGET_MAX_CONCURRENT_RUNS: runs writing one target table at once, across all runners (0: no limit)
    runner_threads: int = 4  # ETL_RUNNER_THREADS: runs one runner executes at once
    # ETL_THREADS: request threads per web worker (gunicorn.conf.py reads the same variable); the
    # request pool keeps as many connections, so a busy worker never opens and closes extra ones
    threads: int = 8
    run_lease_s: float = 30.0  # ETL_RUN_LEASE_S: heartbeat age after which a run is lost
    heartbeat_s: float = 0.5  # ETL_HEARTBEAT_S: progress, heartbeat and pause-check period
    poll_s: float = 1.0  # ETL_POLL_S: how often an idle runner looks for queued runs
    runner_labels: tuple[str, ...] = ()  # ETL_RUNNER_LABELS: this process's runner takes runs requiring these labels (and unlabelled ones)
    load_path: str = "auto"  # ETL_LOAD_PATH: auto (in-database INSERT … SELECT when the source is the warehouse) | copy (always the COPY stream)
    listen: bool = True  # ETL_LISTEN: runners LISTEN for queued runs (off behind a transaction-pooling proxy; polling remains)
    statement_timeout_s: float = 300.0  # ETL_STATEMENT_TIMEOUT_S: source query limit
    source_url: str | None = field(default=None, repr=False)  # ETL_SOURCE_URL: the least-privilege login user SQL runs as; None: provisioned on the embedded server, else the service's own login (flagged by health)
    source_schemas: tuple[str, ...] = ("content", "ugc")  # ETL_SOURCE_SCHEMAS: what the provisioned source login may read (plus the allowed targets)
    source_role: str | None = None  # ETL_SOURCE_ROLE: after connecting, SET LOCAL ROLE to this role (narrows, never a boundary)
    request_timeout_s: float = 50.0  # ETL_REQUEST_TIMEOUT_S: database work inside a web request (reconcile now); under gunicorn's timeout
    reconcile_concurrency: int = 2  # ETL_RECONCILE_CONCURRENCY: reconcile-now requests one web process computes at once (more get 503)
    reconcile_after_run: bool = True  # ETL_RECONCILE_AFTER_RUN: compare source and target after each success
    secret_key: str | None = None  # ETL_SECRET_KEY: signs console sessions and CSRF tokens
    # ETL_CONNECTION_KEY: Fernet key(s) encrypting connection passwords, newest first, comma-separated
    # (rotation: see the README); unset: derived from ETL_SECRET_KEY, else from ETL_DATA_DIR's secret
    connection_key: str | None = field(default=None, repr=False)
    # ETL_DEFAULT_SOURCE_CONNECTION: a connection's name; pipelines that name none read through it
    # instead of the warehouse (the demo sets it to its "production" database)
    default_source_connection: str | None = None
    connection_test_timeout_s: float = 5.0  # ETL_CONNECTION_TEST_TIMEOUT_S: bound of a connection test (and reachability checks)
    log_level: str = "INFO"  # ETL_LOG_LEVEL
    log_format: str = "text"  # ETL_LOG_FORMAT: text | json (one JSON object a line, with request_id and run_id)
    api_tokens: str | None = field(default=None, repr=False)  # ETL_API_TOKENS: "token:operator,token:viewer"
    console_users: str | None = field(default=None, repr=False)  # ETL_CONSOLE_USERS: "name[:role]=<hash>,..."
    allow_open: bool = False  # ETL_ALLOW_OPEN: serve without auth on a non-loopback address (auth done elsewhere)
    # ETL_ALLOWED_HOSTS: host names the service answers as ("etl.example.org,.example.org", "*" any);
    # other Host headers get 400 (DNS rebinding). The loopback names always pass; unset, so do, over
    # a non-loopback address, that address and the machine's host name (etl_console/web_security.py).
    allowed_hosts: str | None = None
    max_body_bytes: int = 1 << 20  # ETL_MAX_BODY_BYTES: larger request bodies get 413
    audit_retention_days: int = 365  # ETL_AUDIT_RETENTION_DAYS: the daily prune deletes audit rows older than this (at least 1)
    metrics_port: int = 0  # ETL_METRICS_PORT: `etl-console worker` serves /metrics on this port (0: off)
    # Alerts (README "Alerts"): console links in alerts start with ETL_PUBLIC_URL
    public_url: str = "http://127.0.0.1:8000"  # ETL_PUBLIC_URL: the console's address as receivers should open it
    alert_max_age_s: float = 86400.0  # ETL_ALERT_MAX_AGE_S: a delivery is retried (exponential backoff) this long, then FAILED
    alert_backoff_initial_s: float = 5.0  # ETL_ALERT_BACKOFF_INITIAL_S: delay after the first failed attempt (doubles, ±20% jitter)
    alert_backoff_max_s: float = 900.0  # ETL_ALERT_BACKOFF_MAX_S: the longest delay between attempts
    alert_connect_timeout_s: float = 3.0  # ETL_ALERT_CONNECT_TIMEOUT_S: webhook/SMTP connect bound
    alert_read_timeout_s: float = 5.0  # ETL_ALERT_READ_TIMEOUT_S: webhook answer bound
    alert_poll_s: float = 1.0  # ETL_ALERT_POLL_S: how often a runner's sender looks for due deliveries
    freshness_check_s: float = 30.0  # ETL_FRESHNESS_CHECK_S: how often runners look for stale pipelines (one at a time)
    alert_retention_days: int = 30  # ETL_ALERT_RETENTION_DAYS: delivered and failed deliveries are deleted after this
    smtp_host: str | None = None  # ETL_SMTP_HOST: email channels need it (unset: creating one is refused)
    smtp_port: int = 587  # ETL_SMTP_PORT
    smtp_user: str | None = None  # ETL_SMTP_USER
    smtp_password: str | None = field(default=None, repr=False)  # ETL_SMTP_PASSWORD
    smtp_from: str = "etl-console@localhost"  # ETL_SMTP_FROM
    smtp_starttls: bool = True  # ETL_SMTP_STARTTLS: STARTTLS before login (off for a local relay)
    extra: Mapping[str, Any] = field(default_factory=dict)  # Flask settings from overrides

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"ETL_{f.name.upper()}")
            if raw is None or f.name == "extra":
                continue
            if f.type in ("int",):
                values[f.name] = int(raw)
            elif f.type in ("float",):
                values[f.name] = float(raw)
            elif f.type == "bool":
                values[f.name] = _bool(raw)
            elif f.name in ("allowed_target_tables", "source_schemas", "runner_labels"):
                values[f.name] = _tuple(raw)
            elif f.name.endswith("_url"):
                values[f.name] = raw or None  # an empty URL means "not set"
            else:
                values[f.name] = raw
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in overrides.items() if k not in known}
        values.update({k: v for k, v in overrides.items() if k in known})
        config = cls(**values)
        if extra:
            config = replace(config, extra={**config.extra, **extra})
        config.validate()
        return config

    def validate(self) -> None:
        if self.log_format not in ("text", "json"):
            raise ValueError(f"ETL_LOG_FORMAT must be 'text' or 'json', not {self.log_format!r}")
        if self.load_path not in ("auto", "copy"):
            raise ValueError(f"ETL_LOAD_PATH must be 'auto' or 'copy', not {self.load_path!r}")
        if self.runner not in ("thread", "off"):
            raise ValueError(f"ETL_RUNNER must be 'thread' or 'off', not {self.runner!r}")
        if self.audit_retention_days < 1:
            raise ValueError(f"ETL_AUDIT_RETENTION_DAYS must be at least 1, not {self.audit_retention_days}")
        for table in self.allowed_target_tables:
            if table.count(".") != 1:
                raise ValueError(f"ETL_ALLOWED_TARGET_TABLES entry {table!r} must be schema.table")

    @property
    def in_request_timeout_s(self) -> float:
        """Statement timeout for work done while a web request waits: never past the worker's timeout."""
        return min(self.statement_timeout_s, self.request_timeout_s)
