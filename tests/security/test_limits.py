"""Request body limit (ETL_MAX_BODY_BYTES) and gunicorn.conf.py's settings from the environment."""
from __future__ import annotations

import runpy

import pytest

from tests.deploy.stack import REPO


@pytest.fixture
def app_overrides():
    return {"max_body_bytes": 4096, "START_RUNNER": False}


def test_body_over_etl_max_body_bytes_is_413_json(client):
    assert client.application.config["MAX_CONTENT_LENGTH"] == 4096
    reply = client.post("/api/v1/pipelines/", data=b'{"name":"' + b"x" * 5000 + b'"}', content_type="application/json")
    assert reply.status_code == 413
    assert reply.get_json() == {"detail": "Request Entity Too Large"}
    assert reply.content_type == "application/json"
    small = client.post("/api/v1/pipelines/", data=b'{"name":"' + b"x" * 3000 + b'"}', content_type="application/json")
    assert small.status_code == 422


def load_gunicorn_conf(monkeypatch, tmp_path, **env) -> dict:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("ETL_RUNNER", env.pop("ETL_RUNNER", "off"))
    for key in list(__import__("os").environ):
        if key.startswith("ETL_") and key != "ETL_RUNNER":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(REPO / "gunicorn.conf.py"))


def test_gunicorn_conf_reads_the_environment(monkeypatch, tmp_path):
    conf = load_gunicorn_conf(
        monkeypatch, tmp_path,
        ETL_BIND="127.0.0.1:9001,unix:/tmp/etl.sock", ETL_WORKERS="5", ETL_THREADS="3", ETL_TIMEOUT="11",
        ETL_GRACEFUL_TIMEOUT="7", ETL_KEEPALIVE="9", ETL_ACCESS_LOG="off", ETL_MAX_REQUESTS="500",
        ETL_MAX_REQUESTS_JITTER="20",
    )
    assert conf["bind"] == ["127.0.0.1:9001", "unix:/tmp/etl.sock"]
    assert (conf["workers"], conf["threads"], conf["worker_class"]) == (5, 3, "gthread")
    assert (conf["timeout"], conf["graceful_timeout"], conf["keepalive"]) == (11, 7, 9)
    assert conf["accesslog"] is None
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (500, 20)
    assert conf["logger_class"] == "etl_console.logs.GunicornLogger"


def test_gunicorn_conf_defaults(monkeypatch, tmp_path):
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert conf["bind"] == ["127.0.0.1:8000"]
    assert conf["accesslog"] == "-"
    assert conf["max_requests"] == 1000


def test_runner_threads_in_web_workers_switch_recycling_off(monkeypatch, tmp_path, capsys):
    conf = load_gunicorn_conf(monkeypatch, tmp_path, ETL_RUNNER="thread", ETL_MAX_REQUESTS="500")
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (0, 0)
    assert "recycling (ETL_MAX_REQUESTS) is switched off" in capsys.readouterr().err
