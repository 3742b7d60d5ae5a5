"""A chunked body (Transfer-Encoding: chunked, no Content-Length) over ETL_MAX_BODY_BYTES is 413,
never cut at the limit and accepted. Against real servers, byte for byte on a socket: werkzeug's
(in this process) and gunicorn with gunicorn.conf.py and wsgi.py (as deployed, without nginx,
whose own limit would answer first)."""
from __future__ import annotations

import json
import socket
import sys
import threading
import uuid

import pytest
from werkzeug.serving import make_server

from tests.conftest import FILM_DIM_QUERY
from tests.deploy.stack import clean_environ, free_port, http_status, start, wait_until

LIMIT = 4096


@pytest.fixture
def app_overrides():
    return {"max_body_bytes": LIMIT, "START_RUNNER": False}


@pytest.fixture
def werkzeug_port(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(5)
    server.server_close()


@pytest.fixture
def gunicorn_port(database_url, clean_database, tmp_path):
    port = free_port()
    env = clean_environ(
        ETL_DATABASE_URL=database_url,
        ETL_BIND=f"127.0.0.1:{port}",
        ETL_WORKERS="1",
        ETL_THREADS="2",
        ETL_MAX_BODY_BYTES=str(LIMIT),
        ETL_SECRET_KEY="chunked-test-secret",
        ETL_ACCESS_LOG="off",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    proc = start("gunicorn", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], env, tmp_path)
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/api/v1/health/live") == 200, 60, "gunicorn")
        yield port
    finally:
        proc.stop()


@pytest.fixture(params=["werkzeug", "gunicorn"])
def port(request):
    return request.getfixturevalue(f"{request.param}_port")


def chunked(body: bytes, size: int = 1000) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)) + b"0\r\n\r\n"


def send(port: int, path: str, body: bytes, content_type: bytes = b"application/json") -> tuple[int, dict, bytes]:
    request = (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: " + content_type + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        try:
            conn.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed before reading the whole body (load decides when): read on
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # the server may close without reading the rest: its answer came first
    head, _, payload = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {k.strip().lower().decode(): v.strip().decode() for k, _, v in (line.partition(b":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, payload


def pipeline_json(name: str, size: int) -> bytes:
    """A valid pipeline body padded with trailing spaces to `size` bytes: valid JSON if cut anywhere
    in the padding, which is how a truncated body used to be accepted."""
    body = json.dumps({"name": name, "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}).encode()
    return body + b" " * (size - len(body))


def names(sql) -> list[str]:
    return [row[0] for row in sql("SELECT name FROM etl_pipelines")]


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 5000, 20 * LIMIT])
def test_chunked_body_over_the_limit_is_413_and_creates_nothing(port, sql, size):
    name = f"chunky_{uuid.uuid4().hex[:6]}"
    status, headers, payload = send(port, "/api/v1/pipelines/", pipeline_json(name, size))
    assert status == 413, payload[:300]
    assert headers["content-type"] == "application/json"
    assert json.loads(payload) == {"detail": "Request Entity Too Large"}
    assert name not in names(sql)


@pytest.mark.parametrize("size", [200, LIMIT - 1, LIMIT])
def test_chunked_body_within_the_limit_is_accepted(port, sql, size):
    name = f"fits_{uuid.uuid4().hex[:6]}"
    status, _, payload = send(port, "/api/v1/pipelines/", pipeline_json(name, size))
    assert status == 201, payload[:300]
    assert json.loads(payload)["name"] == name and name in names(sql)


def test_chunked_form_over_the_limit_is_413_on_the_console(port, sql):
    form = b"name=console_chunky&target_table=analytics.film_dim&source_query=select+1&pad=" + b"x" * (2 * LIMIT)
    status, headers, _ = send(port, "/pipelines/new", form, b"application/x-www-form-urlencoded")
    assert status == 413
    assert headers["content-type"].startswith("text/html")
    assert "console_chunky" not in names(sql)
