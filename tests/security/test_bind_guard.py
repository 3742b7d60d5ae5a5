"""Open (no auth) only on loopback: `etl-console serve` and gunicorn.conf.py refuse other addresses."""
from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from etl_console.auth import check_bind, is_loopback
from etl_console.config import Config
from tests.deploy.stack import REPO, clean_environ, free_port


@pytest.mark.parametrize(
    "bind, local",
    [
        ("127.0.0.1", True), ("127.0.0.1:8000", True), ("127.8.9.10:1", True), ("localhost:8000", True),
        ("[::1]:8000", True), ("::1", True), ("unix:/run/etl.sock", True),
        ("0.0.0.0:8000", False), ("0.0.0.0", False), ("[::]:8000", False), ("::", False),
        ("10.1.2.3:8000", False), ("example.org:80", False), (":8000", False), ("", False),
    ],
)
def test_is_loopback(bind, local):
    assert is_loopback(bind) is local


def test_open_service_may_bind_loopback_only():
    open_config = Config.from_env({})
    assert check_bind("127.0.0.1:8000", open_config) is None
    message = check_bind(["127.0.0.1:1", "0.0.0.0:8000"], open_config)
    assert message.startswith("refusing to serve on 0.0.0.0:8000 without authentication")
    for hint in ("ETL_API_TOKENS", "ETL_CONSOLE_USERS", "hash-password", "127.0.0.1", "ETL_ALLOW_OPEN"):
        assert hint in message
    assert check_bind("0.0.0.0:8000", Config.from_env({}, api_tokens="a-long-enough-token-xx:operator")) is None
    assert check_bind("0.0.0.0:8000", Config.from_env({"ETL_ALLOW_OPEN": "1"})) is None


def test_serve_refuses_before_touching_anything():
    from etl_console.cli import main

    env = {key: None for key in ("ETL_API_TOKENS", "ETL_CONSOLE_USERS", "ETL_ALLOW_OPEN")}
    env["ETL_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"  # would fail loudly if reached
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "8999"], env=env)
    assert result.exit_code == 2, result.output
    assert "refusing to serve on 0.0.0.0 without authentication" in result.output
    assert "ETL_API_TOKENS" in result.output


def test_gunicorn_conf_refuses_an_open_public_bind(tmp_path):
    env = clean_environ(ETL_BIND=f"0.0.0.0:{free_port()}", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "refusing to serve on 0.0.0.0:" in done.stderr and "ETL_API_TOKENS" in done.stderr


def _gunicorn(tmp_path, *args: str, pass_fds=(), **env: str) -> subprocess.CompletedProcess:
    environ = clean_environ(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *args, "wsgi:app"],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=60, pass_fds=pass_fds,
    )


@pytest.mark.parametrize("how", ["-b", "GUNICORN_CMD_ARGS"])
def test_the_sockets_gunicorn_really_binds_are_checked(tmp_path, how):
    address = f"0.0.0.0:{free_port()}"
    if how == "-b":
        done = _gunicorn(tmp_path, "-b", address)
    else:
        done = _gunicorn(tmp_path, GUNICORN_CMD_ARGS=f"--bind {address}")
    assert done.returncode != 0
    assert f"refusing to serve on {address} without authentication" in done.stderr
    assert "Booting worker" not in done.stderr  # stopped before any worker (and the app) started


def test_an_inherited_public_socket_is_not_taken_for_loopback(tmp_path):
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    try:
        done = _gunicorn(tmp_path, "-b", f"fd://{listener.fileno()}", pass_fds=(listener.fileno(),))
    finally:
        listener.close()
    assert done.returncode != 0
    assert "refusing to serve on 0.0.0.0:" in done.stderr
