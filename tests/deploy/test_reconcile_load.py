"""Reconcile-now on a slow source cannot tie up the web tier: a real gunicorn with one worker of 8
threads, 20 reconcile requests whose source sleeps, and liveness still answers at once."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from .stack import OPERATOR_TOKEN, nginx_binary, scratch_database, start_stack

SLOW_SOURCE = "SELECT id AS film_id, title, rating FROM content.film_work CROSS JOIN (SELECT pg_sleep(4)) AS slow"


def call(method: str, url: str, body: dict | None = None, timeout: float = 30.0) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def small_web_tier(server_url, tmp_path_factory):
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (the stack helper expects it)")
    with scratch_database(server_url, films=200, ratings=200) as url:
        stack = start_stack(tmp_path_factory.mktemp("reconcile-load"), url, workers=1, with_nginx=False)
        try:
            yield stack
        finally:
            stack.stop()


def test_twenty_slow_reconciles_leave_liveness_answering(small_web_tier):
    base = small_web_tier.direct + "/api/v1"
    status, _, pipeline = call("POST", f"{base}/pipelines/", {
        "name": "slow_reconcile", "target_table": "analytics.film_dim", "source_query": SLOW_SOURCE})
    assert status == 201, pipeline
    results: list[tuple[int, dict, dict]] = []

    def reconcile():
        results.append(call("POST", f"{base}/pipelines/{pipeline['id']}/reconcile"))

    threads = [threading.Thread(target=reconcile) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the requests are in
    started = time.monotonic()
    live_status, _, _ = call("GET", f"{base}/health/live", timeout=5)
    live_seconds = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=60)

    assert live_status == 200 and live_seconds < 1.0, live_seconds
    statuses = sorted(status for status, _, _ in results)
    assert len(statuses) == 20
    busy = [(headers, body) for status, headers, body in results if status == 503]
    assert busy, statuses  # refused at once instead of queued behind the slow ones
    headers, body = busy[0]
    assert body["detail"].startswith("too many reconciliations are running")
    assert int(headers["Retry-After"]) > 0
    assert all(status in (200, 503) for status in statuses), statuses
