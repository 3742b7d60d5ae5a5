"""Delivering the alert outbox: each runner runs one sender thread beside its loop.

A sender claims due deliveries with FOR UPDATE SKIP LOCKED and a lease (claimed_by, claimed_until),
so any number of runners on any number of hosts send each delivery once; a sender that dies
mid-send leaves a lease that expires, and another sender takes the delivery again (receivers
drop a repeat by its X-Etl-Delivery key). The sender has its own connections and sends on its own
small thread pool with short timeouts: a receiver that hangs never delays a run or a request.

A failed attempt is retried with exponential backoff (ETL_ALERT_BACKOFF_INITIAL_S doubling up to
ETL_ALERT_BACKOFF_MAX_S, ±20 % jitter) until ETL_ALERT_MAX_AGE_S after the event; then FAILED.
"""
from __future__ import annotations

import logging
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine, text

from .. import metrics
from ..config import Config
from ..db.secret_box import SecretKeyMismatch, box_for
from ..lifecycle import DeliveryStatus
from ..services import freshness
from . import alert_transport
from .alert_transport import Outcome

log = logging.getLogger(__name__)

BATCH = 16  # deliveries one claim takes
JITTER = 0.2

_CLAIM = f"""
UPDATE etl_alert_outbox o
SET status = '{DeliveryStatus.SENDING}', claimed_by = :worker, attempts = o.attempts + 1,
    claimed_until = clock_timestamp() + make_interval(secs => :lease)
FROM etl_alert_channels c
WHERE c.id = o.channel_id AND o.id IN (
    SELECT id FROM etl_alert_outbox
    WHERE {{which}}
    ORDER BY next_attempt_at LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.event_kind, o.payload, o.attempts, o.created_at, c.kind, c.url, c.email, c.secret_token, c.enabled
"""
# Due rows (the partial index ix_etl_alert_outbox_due), or one named row: a test sent now, not when due.
_PENDING, _SENDING = DeliveryStatus.PENDING, DeliveryStatus.SENDING
_DUE = (f"status IN ('{_PENDING}', '{_SENDING}') AND next_attempt_at <= now() "
        f"AND (status = '{_PENDING}' OR claimed_until < now())")
_ONE = f"id = CAST(:only AS uuid) AND status = '{_PENDING}'"


_PRUNE = f"""
DELETE FROM etl_alert_outbox WHERE id IN (
    SELECT id FROM etl_alert_outbox
    WHERE status IN ('{DeliveryStatus.DELIVERED}', '{DeliveryStatus.FAILED}') AND created_at < now() - make_interval(days => :days)
    LIMIT 10000 FOR UPDATE SKIP LOCKED)
"""


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    payload: dict
    attempts: int
    kind: str
    url: str | None
    email: str | None
    secret_token: bytes | None
    enabled: bool


def claim(conn, worker_id: str, lease_s: float, limit: int = BATCH, only: uuid.UUID | None = None) -> list[Claimed]:
    rows = conn.execute(text(_CLAIM.format(which=_ONE if only else _DUE)), {"worker": worker_id, "lease": lease_s, "limit": limit,
                                       "only": str(only) if only else None}).all()
    return [Claimed(row.id, row.payload, row.attempts, row.kind, row.url, row.email, row.secret_token, row.enabled)
            for row in rows]


def backoff_s(attempts: int, config: Config, rand: random.Random | None = None) -> float:
    base = min(config.alert_backoff_max_s, config.alert_backoff_initial_s * 2 ** max(0, attempts - 1))
    return max(0.0, base * (1 + (rand or random).uniform(-JITTER, JITTER)))


def send(delivery: Claimed, config: Config) -> Outcome:
    """One attempt, with the channel's secret decrypted only here."""
    if not delivery.enabled:
        return Outcome(False, None, "channel disabled")
    payload = alert_transport.absolute_links(delivery.payload, config.public_url)
    if delivery.kind == "email":
        if not config.smtp_host:
            return Outcome(False, None, "ETL_SMTP_HOST is not set: email cannot be sent")
        smtp = {"host": config.smtp_host, "port": config.smtp_port, "user": config.smtp_user,
                "password": config.smtp_password, "sender": config.smtp_from, "starttls": config.smtp_starttls}
        return alert_transport.send_email(smtp, delivery.email, payload,
                                          timeout_s=config.alert_connect_timeout_s + config.alert_read_timeout_s)
    try:
        secret = box_for(config).decrypt(delivery.secret_token) if delivery.secret_token else None
    except SecretKeyMismatch as error:
        return Outcome(False, None, str(error))
    return alert_transport.post_webhook(delivery.url, secret, payload,
                                        connect_timeout_s=config.alert_connect_timeout_s,
                                        read_timeout_s=config.alert_read_timeout_s)


def record(conn, delivery: Claimed, worker_id: str, outcome: Outcome, config: Config, *, retry: bool = True) -> str:
    """Store an attempt's outcome if the claim is still ours; returns the delivery's new status."""
    if outcome.delivered:
        status, delay = DeliveryStatus.DELIVERED, 0.0
    else:
        delay = backoff_s(delivery.attempts, config)
        status = DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED
    row = conn.execute(text(
        f"""
        UPDATE etl_alert_outbox
        SET status = CASE WHEN :status = '{DeliveryStatus.PENDING}'
                           AND created_at + make_interval(secs => :max_age) < clock_timestamp() + make_interval(secs => :delay)
                          THEN '{DeliveryStatus.FAILED}' ELSE :status END,
            next_attempt_at = clock_timestamp() + make_interval(secs => :delay),
            last_http_status = :http_status, last_error = :error, claimed_by = NULL, claimed_until = NULL,
            delivered_at = CASE WHEN :status = '{DeliveryStatus.DELIVERED}' THEN clock_timestamp() END
        WHERE id = :id AND claimed_by = :worker AND status = '{DeliveryStatus.SENDING}'
        RETURNING status
        """),
        {"status": str(status), "delay": delay, "max_age": config.alert_max_age_s, "http_status": outcome.http_status,
         "error": outcome.error, "id": delivery.id, "worker": worker_id}).one_or_none()
    final = row.status if row is not None else "LOST"
    if final == DeliveryStatus.FAILED:
        metrics.alert_delivery_failed()
    return final


class AlertSender:
    """The sender thread of one runner: claim due deliveries, send them on a pool, record outcomes;
    and, every ETL_FRESHNESS_CHECK_S, the freshness step (one runner at a time does it)."""

    def __init__(self, engine: Engine, config: Config, worker_id: str, stopping: threading.Event) -> None:
        self.engine, self.config, self.worker_id, self._stopping = engine, config, worker_id, stopping
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="etl-alert-send")
        self._thread: threading.Thread | None = None
        # Longer than one attempt can take, so a live sender's claim never expires under it.
        self.lease_s = max(30.0, 3 * (config.alert_connect_timeout_s + config.alert_read_timeout_s))
        self._last_freshness = float("-inf")

    def start(self) -> "AlertSender":
        self._thread = threading.Thread(target=self._loop, name="etl-alert-sender", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        import time

        while not self._stopping.is_set():
            try:
                if time.monotonic() - self._last_freshness >= self.config.freshness_check_s:
                    self._last_freshness = time.monotonic()
                    self.check_freshness()
                sent = self.send_due()
            except Exception:  # noqa: BLE001 - a database hiccup must not stop alerting
                log.exception("alert sender round failed")
                sent = 0
            if not sent:  # a full batch: look again at once
                self._wake.wait(self.config.alert_poll_s)
                self._wake.clear()

    def check_freshness(self) -> None:
        """The freshness step, and the outbox's retention (finished deliveries, a batch at a time)."""
        with self.engine.begin() as conn:
            breached, restored = freshness.check(conn)
        with self.engine.begin() as conn:
            conn.execute(text(_PRUNE), {"days": self.config.alert_retention_days})
        for pipeline_id in breached:
            log.warning("pipeline %s is stale (freshness breached)", pipeline_id)
        for pipeline_id in restored:
            log.info("pipeline %s is fresh again", pipeline_id)
        if breached or restored:
            self._wake.set()

    def send_due(self) -> int:
        """One round: claim up to BATCH due deliveries and wait for their attempts. Returns how
        many were claimed when the batch was full (the caller looks again at once), else 0."""
        with self.engine.begin() as conn:
            claimed = claim(conn, self.worker_id, self.lease_s)
        futures = [self._pool.submit(self._attempt, delivery) for delivery in claimed]
        for future in futures:
            future.result()
        return len(claimed) if len(claimed) == BATCH else 0

    def _attempt(self, delivery: Claimed) -> None:
        try:
            outcome = send(delivery, self.config)
        except Exception as error:  # noqa: BLE001 - a bug in one attempt is recorded, not raised
            log.exception("alert delivery %s crashed", delivery.id)
            outcome = Outcome(False, None, f"internal error: {type(error).__name__}")
        try:
            with self.engine.begin() as conn:
                status = record(conn, delivery, self.worker_id, outcome, self.config)
        except Exception:  # noqa: BLE001 - the lease expires and another attempt follows
            log.exception("could not record alert delivery %s", delivery.id)
            return
        log.info("alert delivery %s (%s): %s%s", delivery.id, delivery.payload.get("event"), status,
                 f" ({outcome.error})" if outcome.error else "")
