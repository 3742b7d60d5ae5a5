"""Shared fixtures: one real PostgreSQL per session, a clean database state per test.

The server is the embedded one (started once, in a temporary directory) unless
ETL_TEST_DATABASE_URL names another. Either way the suite creates its own database on it, migrates
it once, and empties the tables between tests (TRUNCATE is milliseconds; no server restarts).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from etl_console import create_app
from etl_console.extensions import EtlExtension, etl_of
from etl_console.db.engine import libpq_dsn, sqlalchemy_url
from etl_console.db.migrate import upgrade
from etl_console.serving import start_runner_thread
from etl_console.db.source_login import DEFAULT_LOGIN, login_url, provision_source_login
from etl_console.warehouse.demo import load_demo_data

METADATA_TABLES = (
    "etl_pipeline_runs", "etl_state", "etl_pipeline_tasks", "etl_pipelines", "etl_runners",
    "etl_console_sessions", "etl_login_throttle",  # no session or failed-login count outlives its test
    "etl_connections",
    "etl_alert_channels",  # its subscriptions and outbox rows go with it (CASCADE)
)
TARGET_TABLES = ("analytics.film_dim", "analytics.film_rating_agg")
DEMO_FILMS = 2000
DEMO_RATINGS = 10000
SOURCE_SCHEMAS = ("content", "ugc")
SOURCE_LOGIN_PASSWORD = "etl-source-test-password"


@pytest.fixture(scope="session")
def server_url():
    """A URL to some database on the server under test (not the one tests write to)."""
    url = os.environ.get("ETL_TEST_DATABASE_URL")
    if url:
        yield sqlalchemy_url(url)
        return
    from etl_console.db.embedded import start_embedded, stop_embedded

    # Not pytest's tmp_path: its rotation may delete the directory under a concurrent session.
    data_dir = tempfile.mkdtemp(prefix="etl-console-test-pg-")
    yield start_embedded(data_dir)
    stop_embedded(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_url) -> str:
    """A fresh database for this session, migrated and holding the demo world."""
    name = f"etl_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(libpq_dsn(server_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    migrate(url)  # once per session, as `etl-console db upgrade` would; create_app never migrates
    load_demo_data(libpq_dsn(url), DEMO_FILMS, DEMO_RATINGS)
    # User SQL runs as the least-privilege login, in this process (Config) and in every subprocess.
    previous = os.environ.get("ETL_SOURCE_URL")
    os.environ["ETL_SOURCE_URL"] = provision_test_source_login(url)
    yield url
    if previous is None:
        os.environ.pop("ETL_SOURCE_URL", None)
    else:
        os.environ["ETL_SOURCE_URL"] = previous
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def migrate(database_url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def provision_test_source_login(database_url: str) -> str:
    """The source login for a test database, as the embedded default provisions it; returns its URL."""
    provision_source_login(
        libpq_dsn(database_url),
        login=DEFAULT_LOGIN,
        password=SOURCE_LOGIN_PASSWORD,
        schemas=SOURCE_SCHEMAS,
        tables=TARGET_TABLES,
        revoke_public_functions=True,
    )
    return login_url(database_url, DEFAULT_LOGIN, SOURCE_LOGIN_PASSWORD)


@pytest.fixture(scope="session")
def source_url(database_url) -> str:
    """The least-privilege login user SQL runs as, on the test database."""
    return os.environ["ETL_SOURCE_URL"]


@pytest.fixture(scope="session")
def dsn(database_url) -> str:
    """The test database as a libpq DSN, for psycopg2 in tests."""
    return libpq_dsn(database_url)


def make_app(database_url: str, **overrides):
    """create_app, plus a runner thread as a serving process with ETL_RUNNER=thread would start
    (START_RUNNER=False: none; the test plays the runners or needs none)."""
    start_runner = overrides.pop("START_RUNNER", True)
    settings = {
        "database_url": database_url,
        "runner": "thread",
        "heartbeat_s": 0.1,
        "poll_s": 0.2,
        "run_lease_s": 30.0,
        "statement_timeout_s": 30.0,
        "secret_key": "test-secret",
        "TESTING": True,
    }
    settings.update(overrides)
    app = create_app(settings)
    if start_runner and etl_of(app).config.runner == "thread":
        start_runner_thread(app)
    return app


@pytest.fixture
def app_overrides() -> dict:
    """Override in a test module to change the app's settings."""
    return {}


@pytest.fixture
def app(database_url, clean_database, app_overrides, request):
    overrides = dict(app_overrides)
    if "no_runner" in request.fixturenames:
        overrides["START_RUNNER"] = False
    application = make_app(database_url, **overrides)
    yield application
    close_app(application)


def close_app(application) -> None:
    """Stop an app's runner thread, if it has one, and close its connections (for apps a test makes)."""
    etl = etl_of(application)
    if etl.runner is not None:
        etl.runner.stop(timeout=10)
    etl.database.dispose()


@pytest.fixture
def no_runner(app):
    """Ask for this and the test app has no runner thread (as START_RUNNER=False would): runs stay
    queued unless the test starts runners of its own, or runs them in another process. Returns the app."""
    assert etl_of(app).runner is None
    return app


@pytest.fixture
def etl(app) -> EtlExtension:
    """The test app's EtlExtension: its config, its database (engine), its runner thread if any."""
    return etl_of(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def clean_database(dsn):
    """Empty metadata and target tables before each test; the source data stays."""
    _truncate(dsn)
    yield
    _truncate(dsn)


def _truncate(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('etl_pipelines')")
            tables = list(TARGET_TABLES)
            if cur.fetchone()[0] is not None:
                tables += list(METADATA_TABLES)
            cur.execute("TRUNCATE " + ", ".join(tables) + " CASCADE")
            cur.execute("SELECT to_regclass('etl_audit_log')")
            if cur.fetchone()[0] is not None:
                # Its trigger refuses TRUNCATE (append-only): the tables' owner turns it off for this one
                # statement, in one transaction (one simple query), so no other session sees it off.
                cur.execute("ALTER TABLE etl_audit_log DISABLE TRIGGER etl_audit_log_no_truncate; "
                            "TRUNCATE etl_audit_log; ALTER TABLE etl_audit_log ENABLE TRIGGER etl_audit_log_no_truncate")
    finally:
        conn.close()


@pytest.fixture
def sql(dsn):
    """Run one statement on the test database and return its rows (autocommit)."""
    connections = []

    def run(statement: str, params=None):
        if not connections:
            connection = psycopg2.connect(dsn)
            connection.autocommit = True
            connections.append(connection)
        with connections[0].cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    yield run
    for connection in connections:
        connection.close()


def end_pooled_connection(database, dsn: str) -> int:
    """Leave the app's pool one connection, end its server process (as a restart or an idle timeout
    would), and return that process's id."""
    database.engine.dispose()
    with database.engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    admin = psycopg2.connect(dsn)
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert cur.fetchone()[0]
    finally:
        admin.close()
    return pid


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {message}")


FILM_DIM_QUERY = "SELECT id as film_id, title, rating FROM content.film_work"


@pytest.fixture
def create_pipeline(client):
    """POST a pipeline (defaults: film_dim full reload) and return its JSON."""

    def create(**fields):
        body = {
            "name": fields.pop("name", f"p_{uuid.uuid4().hex[:8]}"),
            "target_table": "analytics.film_dim",
            "source_query": FILM_DIM_QUERY,
        }
        body.update(fields)
        response = client.post("/api/v1/pipelines/", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    return create


def finished_run(client, pipeline_id: str, timeout: float = 60.0, message: str = "the run to finish") -> dict:
    """Wait until the pipeline's newest run is no longer RUNNING; return its JSON."""

    def finished():
        runs = client.get(f"/api/v1/pipelines/{pipeline_id}/runs").get_json()
        return runs[0] if runs and runs[0]["status"] != "RUNNING" else None

    return wait_for(finished, timeout=timeout, message=message)


@pytest.fixture
def run_to_end(client):
    """POST /run and wait until the run finishes; return the finished run's JSON."""

    def run(pipeline_id: str, timeout: float = 60.0):
        response = client.post(f"/api/v1/pipelines/{pipeline_id}/run")
        assert response.status_code == 200, response.get_data(as_text=True)
        return finished_run(client, pipeline_id, timeout=timeout)

    return run
