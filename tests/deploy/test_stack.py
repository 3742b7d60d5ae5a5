"""Through nginx, against gunicorn with 4 workers and a separate `etl-console worker` (see stack.py)."""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from .client import request
from .stack import CONSOLE_PASSWORD, CONSOLE_USER, OPERATOR_TOKEN, REPO, VIEWER_TOKEN, wait_until

FILM_DIM_QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"
# About 2000 rows × 2 ms: a run that lasts a few seconds, so that it is in flight while we act.
SLOW_QUERY = FILM_DIM_QUERY + " WHERE pg_sleep(0.002) IS NOT NULL"


def create(base: str, **fields) -> dict:
    body = {"name": f"deploy_{uuid.uuid4().hex[:10]}", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
    body.update(fields)
    reply = request(f"{base}/api/v1/pipelines/", "POST", body)
    assert reply.status == 201, reply.body
    return reply.json()


def wait_run_end(base: str, pipeline_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = request(f"{base}/api/v1/pipelines/{pipeline_id}/runs", role="viewer").json()
        if runs and runs[0]["status"] != "RUNNING":
            return runs[0]
        time.sleep(0.1)
    pytest.fail(f"run of {pipeline_id} did not finish within {timeout} s")


def count_runs(dsn: str, pipeline_id: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM etl_pipeline_runs WHERE pipeline_id = %s", (pipeline_id,))
        return cur.fetchone()[0]


def test_api_smoke_flow_through_nginx(stack):
    dsn = stack.dsn
    base = stack.http
    pipeline = create(base, batch_size=500)
    assert pipeline["status"] == "IDLE"
    listed = request(f"{base}/api/v1/pipelines/", role="viewer")
    assert listed.status == 200 and listed.header("Content-Type") == "application/json"
    assert pipeline["id"] in {p["id"] for p in listed.json()}

    patched = request(f"{base}/api/v1/pipelines/{pipeline['id']}", "PATCH", {"batch_size": 700})
    assert patched.status == 200 and patched.json()["batch_size"] == 700

    started = request(f"{base}/api/v1/pipelines/{pipeline['id']}/run", "POST")
    assert started.status == 200 and started.json()["status"] == "RUNNING"
    run = wait_run_end(base, pipeline["id"])
    assert run["status"] == "SUCCESS", run
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM content.film_work")
        films = cur.fetchone()[0]
    assert run["rows_read"] == run["rows_written"] == films
    assert request(f"{base}/api/v1/pipelines/{pipeline['id']}", role="viewer").json()["status"] == "IDLE"

    paused = request(f"{base}/api/v1/pipelines/{pipeline['id']}/pause", "POST")
    assert paused.status == 200 and paused.json()["status"] == "PAUSED"
    resumed = request(f"{base}/api/v1/pipelines/{pipeline['id']}", "PATCH", {"enabled": True})
    assert resumed.json()["status"] == "IDLE"

    missing = request(f"{base}/api/v1/pipelines/{uuid.uuid4()}", role="viewer")
    assert missing.status == 404 and missing.json() == {"detail": "Pipeline not found"}
    assert missing.header("X-Request-ID")


def test_hundred_concurrent_run_requests_make_exactly_one_run(stack):
    dsn = stack.dsn
    base = stack.http
    pipeline = create(base, source_query=SLOW_QUERY, batch_size=100)
    barrier = threading.Barrier(100, timeout=30)

    def post(_):
        barrier.wait()
        return request(f"{base}/api/v1/pipelines/{pipeline['id']}/run", "POST", timeout=60)

    with ThreadPoolExecutor(max_workers=100) as pool:
        replies = list(pool.map(post, range(100)))
    assert [r.status for r in replies] == [200] * 100, {r.status: r.body for r in replies if r.status != 200}
    assert {r.json()["status"] for r in replies} == {"RUNNING"}
    assert count_runs(dsn, pipeline["id"]) == 1

    # Stop it at the next batch boundary rather than wait; still exactly one run.
    request(f"{base}/api/v1/pipelines/{pipeline['id']}/pause", "POST")
    run = wait_run_end(base, pipeline["id"])
    assert run["status"] in ("FAILED", "SUCCESS"), run
    assert count_runs(dsn, pipeline["id"]) == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_redirects_carry_the_proxys_scheme_and_host(stack, scheme):
    base = getattr(stack, scheme)
    if base is None:
        pytest.skip("openssl is not installed: no TLS listener")
    port = base.rsplit(":", 1)[1]
    reply = request(f"{base}/api/v1/pipelines", role="viewer")
    assert reply.status in (307, 308)  # FastAPI's slash redirect is 307
    assert reply.header("Location") == f"{scheme}://127.0.0.1:{port}/api/v1/pipelines/"

    # The Host the client used (a name behind DNS, a port mapped by Docker) is the one linked to.
    reply = request(f"{base}/api/v1/pipelines", role="viewer", headers={"Host": "etl.example.test:8443"})
    assert reply.header("Location") == f"{scheme}://etl.example.test:8443/api/v1/pipelines/"

    # Forwarding headers sent by the client are replaced or dropped by nginx, never trusted.
    spoofed = {
        "X-Forwarded-Proto": "gopher",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "1",
        "X-Forwarded-Prefix": "/evil",
    }
    reply = request(f"{base}/api/v1/pipelines", role="viewer", headers=spoofed)
    assert reply.header("Location") == f"{scheme}://127.0.0.1:{port}/api/v1/pipelines/"

    # The console's login redirect, and the session cookie: Secure exactly when the client used TLS.
    login = request(f"{base}/", role=None)
    assert login.status == 302 and login.header("Location").startswith("/auth/login")
    form = request(f"{base}/auth/login", role=None)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', form.body).group(1).decode()
    cookie = form.header("Set-Cookie").split(";", 1)[0]
    body = f"csrf_token={token}&username={CONSOLE_USER}&password={CONSOLE_PASSWORD.replace(' ', '+')}&next=/"
    signed_in = request(
        f"{base}/auth/login", "POST", body, role=None,
        # Flask-WTF checks the Referer on HTTPS (WTF_CSRF_SSL_STRICT), as a browser would send it.
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "Referer": f"{base}/auth/login"},
    )
    assert signed_in.status == 302, signed_in.body[:500]
    flags = [part.strip().lower() for part in signed_in.header("Set-Cookie").split(";")]
    assert "httponly" in flags and "samesite=lax" in flags
    assert ("secure" in flags) == (scheme == "https")


def test_static_files_are_served_by_nginx(stack):
    path = "/static/vendor/swagger-ui/swagger-ui.css"
    reply = request(f"{stack.http}{path}", role=None)
    assert reply.status == 200
    assert reply.body == (REPO / "static" / "vendor" / "swagger-ui" / "swagger-ui.css").read_bytes()
    assert reply.header("Cache-Control") == "max-age=3600"  # nginx's `expires 1h`
    assert reply.header("Content-Type").startswith("text/css")
    # nginx writes its access line after the answer has gone out: wait for it, do not guess how long
    wait_until(lambda: path in stack.file("nginx-access.log"), 10, "nginx's access log line")
    assert "/static/" not in stack.file("gunicorn-access.log"), "gunicorn saw a static file request"


def test_api_docs_work_offline(stack):
    page = request(f"{stack.http}/api/v1/docs", role=None)
    assert page.status == 200
    assets = re.findall(rb'(?:src|href)="(/static/vendor/swagger-ui/[^"]+)"', page.body)
    assert {a.rsplit(b"/", 1)[1] for a in assets} == {b"swagger-ui.css", b"swagger-ui-bundle.js", b"swagger-ui-standalone-preset.js"}
    assert b"//cdn" not in page.body and b"unpkg" not in page.body
    for asset in assets:
        reply = request(f"{stack.http}{asset.decode()}", role=None)
        assert reply.status == 200 and len(reply.body) > 10_000, asset
    spec = request(f"{stack.http}/api/v1/openapi.json", role=None).json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_tokens_and_roles_through_nginx(stack):
    base = stack.http
    anonymous = request(f"{base}/api/v1/pipelines/", role=None)
    assert anonymous.status == 401 and anonymous.json() == {"detail": "Not authenticated"}
    assert anonymous.header("WWW-Authenticate") == "Bearer"
    wrong = request(f"{base}/api/v1/pipelines/", role=None, headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status == 401 and wrong.json() == {"detail": "Invalid authentication credentials"}
    assert request(f"{base}/api/v1/pipelines/", role="viewer").status == 200
    denied = request(f"{base}/api/v1/pipelines/", "POST", {"name": "x"}, role="viewer")
    assert denied.status == 403 and denied.header("Content-Type") == "application/json"
    assert denied.json()["detail"].startswith("Not enough permissions")
    assert request(f"{base}/api/v1/health", role=None).status == 200
    assert request(f"{base}/metrics", role=None).status == 401
    assert request(f"{base}/metrics", role="viewer").status == 200


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{", 1)[0] != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def test_metrics_sum_every_process(stack):
    base = stack.http
    pipeline = create(base)
    for _ in range(20):
        request(f"{base}/api/v1/pipelines/{pipeline['id']}", role="viewer")
    request(f"{base}/api/v1/pipelines/{pipeline['id']}/run", "POST")
    assert wait_run_end(base, pipeline["id"])["status"] == "SUCCESS"

    def scrape() -> str:
        return request(f"{base}/metrics", role="viewer").body.decode()

    # The worker counts a run just after committing it: give the counter a moment to follow the API.
    deadline = time.monotonic() + 10
    text = scrape()
    while _metric(text, "etl_runs_finished_total", status="SUCCESS") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        text = scrape()
    # Requests answered by the four web workers, summed through PROMETHEUS_MULTIPROC_DIR.
    assert _metric(text, "etl_http_request_duration_seconds_count", route="/api/v1/pipelines/<pipeline_id>", status="200") >= 20
    # Runs recorded by the separate worker process, in the same directory.
    assert _metric(text, "etl_runs_finished_total", status="SUCCESS") >= 1
    assert _metric(text, "etl_run_duration_seconds_count", status="SUCCESS") >= 1
    assert _metric(text, "etl_run_rows_written_sum", status="SUCCESS") >= 1
    assert "etl_runs_reaped_total" in text
    assert _metric(text, "etl_database_up") == 1
    assert _metric(text, "etl_runners_alive") >= 1
    assert "etl_runs_active " in text


def test_logs_are_json_with_request_and_run_ids_and_never_hold_tokens(stack):
    base = stack.http
    pipeline = create(base)
    request(f"{base}/api/v1/pipelines/{pipeline['id']}/run", "POST")
    run = wait_run_end(base, pipeline["id"])
    echoed = request(f"{base}/api/v1/pipelines/{pipeline['id']}", role="viewer")
    request_id = echoed.header("X-Request-ID")
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id, passed to the app and back
    # Both log their line after the answer has gone out: wait for them, do not guess how long.
    wait_until(lambda: request_id in stack.file("gunicorn-access.log"), 10, "gunicorn's access log line")
    wait_until(lambda: request_id in stack.file("nginx-access.log"), 10, "nginx's access log line")

    access = [json.loads(line) for line in stack.file("gunicorn-access.log").splitlines() if line.startswith("{")]
    mine = [entry for entry in access if entry.get("request_id") == request_id]
    assert mine and mine[0]["path"] == f"/api/v1/pipelines/{pipeline['id']}" and mine[0]["status"] == 200
    assert request_id in stack.file("nginx-access.log")

    worker_lines = [json.loads(line) for line in stack.procs["worker"].output().splitlines() if line.startswith("{")]
    assert any(entry.get("run_id") == run["id"] for entry in worker_lines), "no worker log line names the run"

    for name, text in stack.logs().items():
        assert OPERATOR_TOKEN not in text and VIEWER_TOKEN not in text, f"a token reached {name}"
        assert CONSOLE_PASSWORD not in text


def test_recycling_web_workers_never_touches_a_run_in_flight(stack):
    """Runs live in `etl-console worker`; web workers recycle after 150 requests (max_requests)."""
    base = stack.http
    pipeline = create(base, source_query=SLOW_QUERY, batch_size=100)
    before = stack.procs["gunicorn"].output().count("Autorestarting worker")
    request(f"{base}/api/v1/pipelines/{pipeline['id']}/run", "POST")

    def get(_):
        return request(f"{base}/api/v1/health/live", role=None).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(get, range(700)))
    assert set(statuses) == {200}
    run = wait_run_end(base, pipeline["id"])
    assert run["status"] == "SUCCESS", run
    recycled = stack.procs["gunicorn"].output().count("Autorestarting worker") - before
    assert recycled >= 2, "the load did not recycle any web worker; the test proves nothing"
