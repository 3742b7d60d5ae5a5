"""Per-request work that was cut (bench/http_throughput.py measures the effect): each cut keeps what
users see, and these tests hold it to that."""
from __future__ import annotations

import functools
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest

from etl_console import logs
from tests.conftest import end_pooled_connection


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def _pool_backend_pid(etl) -> int:
    with etl.database.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def test_a_pooled_connection_the_server_ended_is_replaced_before_a_request_uses_it(etl, client, create_pipeline, dsn):
    pipeline = create_pipeline()
    old_pid = end_pooled_connection(etl.database, dsn)
    answer = client.get(f"/api/v1/pipelines/{pipeline['id']}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert _pool_backend_pid(etl) != old_pid


def test_login_throttle_hooks_run_for_the_login_blueprint_only(app):
    limiter = next(iter(app.extensions["limiter"]))

    def bound_to_limiter(hooks):
        return [hook for hook in hooks if getattr(hook, "__self__", None) is limiter
                or (isinstance(hook, functools.partial) and hook.args[:1] == (limiter,))]

    for scoped in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        assert bound_to_limiter(scoped.get(None, [])) == []
        assert len(bound_to_limiter(scoped.get("auth", []))) == 1


class _CountingSocket:
    def __init__(self):
        self.asked = 0

    def getsockname(self):
        self.asked += 1
        return ("10.0.0.5", 8000)


@pytest.mark.parametrize(
    ("allowed_hosts", "host", "status", "asked"),
    [
        ("etl.example.test", "etl.example.test", 200, 0),  # a configured list never needs the address
        (None, "127.0.0.1", 200, 0),  # loopback names always pass
        (None, "10.0.0.5", 200, 1),  # the default list: the address the request arrived on
        (None, "evil.example", 400, 1),
    ],
)
def test_the_socket_address_is_asked_only_when_the_host_check_needs_it(database_url, clean_database, allowed_hosts, host, status, asked):
    from tests.conftest import close_app, make_app

    app = make_app(database_url, START_RUNNER=False, allowed_hosts=allowed_hosts)
    try:
        sock = _CountingSocket()
        answer = app.test_client().get("/api/v1/health/live", headers={"Host": host}, environ_base={"werkzeug.socket": sock})
        assert (answer.status_code, sock.asked) == (status, asked)
    finally:
        close_app(app)


def test_api_answers_without_a_cookie_set_none(client):
    answer = client.get("/api/v1/health/live")
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers


def test_json_access_record_has_the_fields_gunicorns_atoms_give(monkeypatch):
    """The record reads the atoms it needs directly; they must equal what gunicorn's atoms() holds."""
    from gunicorn.config import Config as GunicornConfig

    monkeypatch.setenv("ETL_LOG_FORMAT", "json")
    config = GunicornConfig()
    config.set("accesslog", "-")
    logger = logs.GunicornLogger(config)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.access_log.addHandler(handler)
    response = SimpleNamespace(
        status="201 CREATED", sent=187,
        headers=[("Content-Type", "application/json"), ("X-Request-ID", "early"), ("x-request-id", "rid-out")],
    )
    request = SimpleNamespace(headers=[("HOST", "127.0.0.1"), ("X-FORWARDED-FOR", "198.51.100.1"),
                                       ("X-Forwarded-For", "203.0.113.9"), ("X-REQUEST-ID", "rid-in")])
    environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/pipelines/",
               "QUERY_STRING": "", "RAW_URI": "/api/v1/pipelines/", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_USER_AGENT": "curl/8"}
    took = timedelta(seconds=1, microseconds=234567)
    logger.access(response, request, environ, took)

    atoms = logger.atoms(response, request, environ, took)
    expected = {
        "remote": atoms.get("h"),
        "forwarded_for": atoms.get("{x-forwarded-for}i"),
        "method": atoms.get("m"),
        "path": atoms.get("U"),
        "query": atoms.get("q") or None,
        "status": int(str(atoms.get("s")).split()[0]),
        "bytes": atoms.get("B"),
        "duration_ms": round(atoms.get("D", 0) / 1000, 3),
        "user_agent": atoms.get("a"),
        "request_id": atoms.get("{x-request-id}o") or atoms.get("{x-request-id}i"),
    }
    assert records[-1].access == expected
    assert expected["forwarded_for"] == "203.0.113.9" and expected["request_id"] == "rid-out"

    without_response_id = SimpleNamespace(status="200 OK", sent=2, headers=[])
    logger.access(without_response_id, request, environ | {"QUERY_STRING": "limit=1"}, took)
    assert records[-1].access["request_id"] == "rid-in" and records[-1].access["query"] == "limit=1"
