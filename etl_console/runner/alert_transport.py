"""Sending one alert: a signed webhook POST or an email. No database here.

Webhook signature (documented in the README for receivers):
    X-Etl-Timestamp: <unix seconds>
    X-Signature: sha256=<hex HMAC-SHA256(channel secret, f"{timestamp}.{raw body}")>
A receiver recomputes the HMAC over the exact bytes it received, compares in constant time, and
rejects timestamps more than 5 minutes from its clock (replay).
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import smtplib
import time
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage

USER_AGENT = "etl-console-alerts/1"
_ERROR_CHARS = 500  # what is kept of a receiver's error answer


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    http_status: int | None = None
    error: str | None = None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def absolute_links(payload: dict, public_url: str) -> dict:
    """The outbox keeps console paths; receivers get absolute links under ETL_PUBLIC_URL."""
    base = public_url.rstrip("/")
    links = {name: base + path if path.startswith("/") else path for name, path in (payload.get("links") or {}).items()}
    return {**payload, "links": links}


def post_webhook(url: str, secret: str | None, payload: dict, *, connect_timeout_s: float,
                 read_timeout_s: float, now: float | None = None) -> Outcome:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Etl-Event": str(payload.get("event")),
        "X-Etl-Delivery": str(payload.get("idempotency_key")),
        "X-Etl-Timestamp": str(timestamp),
    }
    if secret:
        headers["X-Signature"] = signature(secret, timestamp, body)
    try:
        status, detail = _post(url, body, headers, connect_timeout_s, read_timeout_s)
    except (OSError, ValueError, http.client.HTTPException) as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:_ERROR_CHARS])
    if 200 <= status < 300:
        return Outcome(True, status)
    return Outcome(False, status, f"HTTP {status}" + (f": {detail}" if detail else ""))


def _post(url: str, body: bytes, headers: dict, connect_timeout_s: float, read_timeout_s: float) -> tuple[int, str]:
    """POST with a connect bound and a (separate) bound on each read of the answer."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=connect_timeout_s)
    try:
        connection.connect()
        connection.sock.settimeout(read_timeout_s)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        detail = response.read(_ERROR_CHARS).decode("utf-8", "replace").strip()
        return response.status, "" if 200 <= response.status < 300 else detail
    finally:
        connection.close()


def send_email(smtp: dict, to: str, payload: dict, *, timeout_s: float) -> Outcome:
    """smtp: host, port, user, password, sender, starttls (the ETL_SMTP_* settings)."""
    message = EmailMessage()
    pipeline = (payload.get("pipeline") or {}).get("name") or "-"
    message["Subject"] = f"[etl-console] {payload.get('event')}: {pipeline}"
    message["From"] = smtp["sender"]
    message["To"] = to
    message["X-Etl-Delivery"] = str(payload.get("idempotency_key"))
    lines = [f"{payload.get('event')} — pipeline {pipeline}"]
    if payload.get("error"):
        lines.append(f"Error: {payload['error']}")
    lines += [f"{name}: {link}" for name, link in (payload.get("links") or {}).items()]
    lines += ["", json.dumps(payload, indent=2, ensure_ascii=False)]
    message.set_content("\n".join(lines))
    try:
        with smtplib.SMTP(smtp["host"], smtp["port"], timeout=timeout_s) as client:
            if smtp.get("starttls"):
                client.starttls()
            if smtp.get("user"):
                client.login(smtp["user"], smtp.get("password") or "")
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:_ERROR_CHARS])
    return Outcome(True)
