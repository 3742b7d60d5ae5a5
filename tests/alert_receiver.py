"""A real webhook receiver on 127.0.0.1 for the alert tests, with an independent signature check."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "receiver-secret-0123456789"


def verify(secret: str, headers, body: bytes, max_age_s: float = 300) -> bool:
    """What a receiver does (the README's recipe), written apart from etl_console's signing code."""
    timestamp = headers.get("X-Etl-Timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age_s:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("X-Signature", ""))


class Receiver:
    """Records every POST. fail_first: answer 500 to the first N attempts of each delivery key;
    hang: hold every answer until release()."""

    def __init__(self, fail_first: int = 0, hang: bool = False, secret: str = SECRET) -> None:
        self.fail_first, self.secret = fail_first, secret
        self.attempts: list[dict] = []  # every request, in arrival order
        self.delivered: list[dict] = []  # requests answered 2xx
        self._tries: Counter = Counter()
        self._lock = threading.Lock()
        self._released = threading.Event()
        if not hang:
            self._released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                record = {"headers": dict(self.headers), "body": body, "json": json.loads(body),
                          "signed": verify(receiver.secret, self.headers, body), "received": time.time()}
                key = self.headers.get("X-Etl-Delivery")
                with receiver._lock:
                    receiver.attempts.append(record)
                    receiver._tries[key] += 1
                    failing = receiver._tries[key] <= receiver.fail_first
                receiver._released.wait(60)
                status = 500 if failing else 204
                if not failing:
                    with receiver._lock:
                        receiver.delivered.append(record)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self._released.set()

    def events(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [r["json"] for r in self.delivered if kind is None or r["json"]["event"] == kind]
