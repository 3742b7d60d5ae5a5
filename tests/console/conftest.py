"""Fixtures for the console tests: CSRF tokens, SQL statement counting, seeded run history, and a
real HTTP server plus headless chromium for the browser tests."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from werkzeug.serving import make_server

from etl_console.extensions import etl_of
from tests.console.markup import csrf_token_of

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def csrf_token(client, path: str = "/") -> str:
    """The CSRF token of the client's session, as a console page renders it."""
    return csrf_token_of(client.get(path))


@pytest.fixture
def token(client):
    return csrf_token(client, "/pipelines/new")


@contextmanager
def counting_queries(app, with_parameters: bool = False):
    """Collect every SQL statement the app's request engine sends while the block runs
    (with its parameters too if asked). The runner has its own engine and is not counted."""
    engine = etl_of(app).database.engine
    statements: list = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters) if with_parameters else statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def seed_runs(sql, pipeline_id: str, count: int, *, running_newest: bool = False) -> None:
    """count finished runs, one a minute back from now, every 7th FAILED; in one statement."""
    sql(
        """
        INSERT INTO etl_pipeline_runs
            (id, pipeline_id, status, started_at, finished_at, rows_read, rows_written, error_message,
             worker_id, trigger)
        SELECT gen_random_uuid(), %(pid)s,
               CASE WHEN i %% 7 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
               now() - make_interval(mins => i),
               now() - make_interval(mins => i) + make_interval(secs => 1 + (i %% 13)),
               1000 + i %% 500, CASE WHEN i %% 7 = 0 THEN 0 ELSE 1000 + i %% 500 END,
               CASE WHEN i %% 7 = 0 THEN 'seeded failure ' || i ELSE NULL END,
               'seed', 'manual'
        FROM generate_series(1, %(count)s) AS i
        """,
        {"pid": pipeline_id, "count": count},
    )
    sql("ANALYZE etl_pipeline_runs")


@pytest.fixture
def live_server(app):
    """The test app behind a real threaded HTTP server on loopback; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="console-live-server", daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


HX = {"HX-Request": "true"}  # what htmx sends, so views answer with a fragment


def text(response) -> str:
    return response.get_data(as_text=True)
