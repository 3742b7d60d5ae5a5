"""create_app builds the app and does nothing else; serving processes check the schema themselves."""
from __future__ import annotations

import os
import socket
import threading
import uuid

import psycopg2
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from etl_console import create_app
from etl_console.cli import main
from etl_console.db.engine import libpq_dsn
from etl_console.db.migrate import SchemaBehind
from etl_console.extensions import etl_of


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/nothing"


@pytest.mark.parametrize("database_url", [None, "closed-port"], ids=["embedded-default", "closed-port"])
def test_create_app_connects_to_nothing_writes_nothing_and_starts_no_thread(tmp_path, database_url):
    data_dir = tmp_path / "data"
    threads_before = set(threading.enumerate())
    settings = {"data_dir": str(data_dir), "runner": "thread"}
    if database_url:
        settings["database_url"] = closed_port_url()
    app = create_app(settings)
    assert etl_of(app).runner is None
    assert not etl_of(app).database.connected
    assert set(threading.enumerate()) == threads_before
    assert not data_dir.exists()  # no embedded server initialised, no secret key written
    assert app.url_map.bind("localhost").match("/api/v1/pipelines/")  # yet every route is there


def test_the_generated_secret_key_is_made_on_first_use_and_kept(tmp_path):
    app = create_app({"data_dir": str(tmp_path), "database_url": closed_port_url()})
    assert not (tmp_path / "secret_key").exists()
    key = app.secret_key
    assert key and (tmp_path / "secret_key").exists()
    assert create_app({"data_dir": str(tmp_path), "database_url": closed_port_url()}).secret_key == key


@pytest.fixture
def empty_database_url(server_url):
    name = f"etl_empty_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(libpq_dsn(server_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_a_web_process_refuses_a_schema_it_does_not_match(empty_database_url, monkeypatch, tmp_path):
    from etl_console.serving import web_process_app

    monkeypatch.setenv("ETL_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ETL_RUNNER", "thread")
    with pytest.raises(SchemaBehind, match=r"revision none \(empty\).*etl-console db upgrade"):
        web_process_app()
    assert _table_count(empty_database_url) == 0  # checked, not migrated


@pytest.mark.parametrize("command", [["worker"], ["run", "anything"], ["demo"]])
def test_commands_other_than_db_upgrade_and_serve_refuse_an_unmigrated_database(empty_database_url, tmp_path, command):
    env = {"ETL_DATABASE_URL": empty_database_url, "ETL_DATA_DIR": str(tmp_path), "ETL_METRICS_PORT": "0"}
    result = CliRunner().invoke(main, command, env=env)
    assert result.exit_code == 1, result.output
    assert "run `etl-console db upgrade`" in result.output
    assert _table_count(empty_database_url) == 0


def test_db_upgrade_migrates_then_the_web_process_starts(empty_database_url, monkeypatch, tmp_path):
    from etl_console.serving import web_process_app

    result = CliRunner().invoke(main, ["db", "upgrade"], env={"ETL_DATABASE_URL": empty_database_url,
                                                               "ETL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("ETL_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ETL_RUNNER", "off")
    app = web_process_app()
    try:
        assert app.test_client().get("/api/v1/pipelines/").status_code == 200
    finally:
        etl_of(app).database.dispose()


def _table_count(url: str) -> int:
    with psycopg2.connect(libpq_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        count = cur.fetchone()[0]
    conn.close()
    return count
