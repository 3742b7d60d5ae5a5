"""Console screenshots: the console's pages in headless chromium, as PNG files for a person to look at
(a release note, a review of a template or CSS change). Not a test: it asserts nothing beyond each
scene having loaded.

    python bench/console_screenshots.py [--out DIR] [--scene NAME ...] [--url URL] [--keep]

The server is --url, else ETL_BENCH_DATABASE_URL, else the embedded one under ./.etl-bench. A fresh
database `etl_console_screenshots` is created on it (the demo world: 2,000 films, 10,000 ratings, and
a least-privilege source login) and dropped at the end (unless --keep). The app runs with its runner
thread behind a real HTTP server on loopback; Debian's chromium (--chromium) is driven by Playwright.
Each scene starts from empty metadata tables and writes its PNGs to --out (default test-artifacts/).
"""
from __future__ import annotations

import os
import sys

# Run as a script, bench/ is sys.path[0]: a module there could shadow one of the standard
# library's. Put the checkout's root there instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import psycopg2  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DATABASE = "etl_console_screenshots"
SOURCE_LOGIN = "etl_console_screenshots_source"  # its own login: a shared server's etl_source keeps its password
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FILM_DIM_QUERY = "SELECT id AS film_id, title, rating FROM content.film_work"
INCREMENTAL_QUERY = "SELECT id AS film_id, title, rating, modified FROM content.film_work"
METADATA_TABLES = ("etl_pipeline_runs", "etl_state", "etl_pipeline_tasks", "etl_pipelines", "etl_connections",
                   "etl_alert_channels")
TIMEOUT_MS = 30_000


def slow_query(rows: int, every: int, sleep_s: float) -> str:
    """film_dim-shaped rows that take sleep_s of server time every `every` rows."""
    return (
        "SELECT md5('slow' || i)::uuid AS film_id, 'film ' || i AS title, (i % 10)::float8 AS rating\n"
        f"FROM generate_series(1, {rows}) AS i\n"
        f"WHERE CASE WHEN i % {every} = 0 THEN pg_sleep({sleep_s}) IS NOT NULL ELSE true END"
    )


# the world ---------------------------------------------------------------------------------------
class Console:
    """The app (runner thread on) behind a loopback HTTP server, its database, and an API client."""

    def __init__(self, server: str, out: str):
        from werkzeug.serving import make_server

        from etl_console import create_app
        from etl_console.db.engine import libpq_dsn, sqlalchemy_url
        from etl_console.db.migrate import upgrade
        from etl_console.db.source_login import login_url, provision_source_login
        from etl_console.extensions import etl_of
        from etl_console.serving import start_runner_thread
        from etl_console.warehouse.demo import load_demo_data

        self.out = out
        self.admin_dsn = admin_dsn = libpq_dsn(sqlalchemy_url(server))
        admin = psycopg2.connect(admin_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{DATABASE}"')
        admin.close()
        self.url = make_url(sqlalchemy_url(server)).set(database=DATABASE).render_as_string(hide_password=False)
        self.dsn = libpq_dsn(self.url)
        password = secrets.token_urlsafe(18)
        settings = {"database_url": self.url, "runner": "off", "secret_key": secrets.token_hex(16),
                    "log_level": "WARNING"}
        bootstrap = create_app(settings)
        upgrade(etl_of(bootstrap).database.engine)
        etl_of(bootstrap).database.dispose()
        load_demo_data(self.dsn, 2000, 10000)
        provision_source_login(self.dsn, login=SOURCE_LOGIN, password=password, schemas=("content", "ugc"),
                               tables=("analytics.film_dim", "analytics.film_rating_agg"),
                               revoke_public_functions=True)
        self.app = create_app({**settings, "runner": "thread", "heartbeat_s": 0.1, "poll_s": 0.2,
                               "source_url": login_url(self.url, SOURCE_LOGIN, password)})
        self.etl = etl_of(self.app)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        start_runner_thread(self.app)
        self.api = self.app.test_client()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self, keep: bool) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()
        if self.etl.runner is not None:
            self.etl.runner.stop(timeout=10)
        self.etl.database.dispose()
        if not keep:
            admin = psycopg2.connect(self.admin_dsn)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            admin.close()

    def sql(self, statement: str, params=None):
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def empty(self) -> None:
        self.sql("TRUNCATE " + ", ".join(METADATA_TABLES) + ", analytics.film_dim, analytics.film_rating_agg CASCADE")

    def pipeline(self, **fields) -> dict:
        body = {"name": fields.pop("name"), "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
        body.update(fields)
        response = self.api.post("/api/v1/pipelines/", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def run_to_end(self, pipeline_id: str, timeout: float = 60) -> dict:
        self.api.post(f"/api/v1/pipelines/{pipeline_id}/run")
        return self.finished(pipeline_id, timeout)

    def finished(self, pipeline_id: str, timeout: float = 60) -> dict:
        """Wait until the pipeline's newest run is no longer RUNNING; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.api.get(f"/api/v1/pipelines/{pipeline_id}/runs").get_json()
            if runs and runs[0]["status"] != "RUNNING":
                return runs[0]
            time.sleep(0.1)
        raise TimeoutError(f"the run of {pipeline_id} did not finish in {timeout} s")

    def seed_runs(self, pipeline_id: str, count: int) -> None:
        """count finished runs, one a minute back from now, every 7th FAILED."""
        self.sql(
            """
            INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read,
                                           rows_written, error_message, worker_id, trigger)
            SELECT gen_random_uuid(), %(pid)s, CASE WHEN i %% 7 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
                   now() - make_interval(mins => i), now() - make_interval(mins => i) + make_interval(secs => 1 + (i %% 13)),
                   1000 + i %% 500, CASE WHEN i %% 7 = 0 THEN 0 ELSE 1000 + i %% 500 END,
                   CASE WHEN i %% 7 = 0 THEN 'seeded failure ' || i ELSE NULL END, 'seed', 'manual'
            FROM generate_series(1, %(count)s) AS i
            """,
            {"pid": pipeline_id, "count": count},
        )

    def shot(self, target, name: str, full_page: bool = True) -> None:
        path = os.path.join(self.out, name)
        if hasattr(target, "goto"):  # a page
            target.screenshot(path=path, full_page=full_page)
        else:  # one element
            target.screenshot(path=path)
        print(f"  {path}")


# the scenes --------------------------------------------------------------------------------------
def busy_console(console: Console, page, expect) -> None:
    """A populated list and a pipeline page with a month of history; dark and mobile too."""
    names = ["film_dim_full", "ratings_full", "orders_nightly", "users_hourly", "inventory_sync", "clicks_daily"]
    made = {name: console.pipeline(name=name, description=f"Loads {name.replace('_', ' ')}") for name in names}
    for offset, name in enumerate(names):
        console.seed_runs(made[name]["id"], 40 + offset)
    console.sql("UPDATE etl_pipeline_runs SET rows_written = rows_written * (1 + (extract(epoch FROM started_at)::bigint % 5))")
    console.api.post(f"/api/v1/pipelines/{made['orders_nightly']['id']}/pause")
    console.run_to_end(console.pipeline(name="legacy_import", source_query="SELECT 1 AS film_id")["id"])
    console.run_to_end(made["film_dim_full"]["id"])
    page.goto("/")
    expect(page.locator("#pipeline-table tbody tr")).to_have_count(7)
    console.shot(page, "console-list.png")
    page.goto(f"/pipelines/{made['film_dim_full']['id']}")
    expect(page.locator("#run-chart rect")).to_have_count(60)
    console.shot(page, "console-pipeline.png")
    page.emulate_media(color_scheme="dark")
    console.shot(page, "console-pipeline-dark.png", full_page=False)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 390, "height": 844})
    console.shot(page, "console-pipeline-mobile.png", full_page=False)
    page.goto("/")
    console.shot(page, "console-list-mobile.png", full_page=False)


def forms(console: Console, page, expect) -> None:
    """The create form with the service's message next to the field it names."""
    page.goto("/pipelines/new")
    page.get_by_label("Name").fill("films_from_browser")
    page.get_by_label("Target table").fill("analytics.films_secret")
    page.get_by_label("Batch size").fill("500")
    page.get_by_label("Source query").fill(FILM_DIM_QUERY)
    page.get_by_role("button", name="Create pipeline").click()
    expect(page.locator("#target_table-error")).to_be_visible()
    console.shot(page, "console-form-error.png")


def running(console: Console, page, expect) -> None:
    """A run in progress on the list (rows, rate, elapsed; rows ticked for a bulk action) and on its page."""
    for name in ("alpha", "bravo", "charlie"):
        console.pipeline(name=name)
    slow = console.pipeline(name="slow_one", source_query=slow_query(400_000, 1000, 0.02), batch_size=1000)
    page.goto("/")
    page.get_by_role("button", name="Run slow_one").click()
    row = page.locator("tr", has=page.get_by_role("link", name="slow_one", exact=True))
    expect(row.locator(".progress")).to_have_text(re.compile(r"^[1-9]"))
    console.shot(page, "console-list-running.png")
    page.get_by_label("Select alpha").check()
    page.get_by_label("Select slow_one").check()
    console.shot(page, "console-list-bulk-selected.png")
    page.goto(f"/pipelines/{slow['id']}")
    expect(page.locator("#pipeline-live .rows-read")).not_to_have_text("0")
    console.shot(page, "console-pipeline-running.png")
    page.goto("/")
    page.get_by_label("Select alpha").check()
    page.get_by_label("Select slow_one").check()
    page.get_by_role("button", name="Pause selected").click()
    expect(page.locator(".flash")).to_be_visible()
    console.shot(page, "console-list-bulk-done.png")
    console.finished(slow["id"])  # paused: it stops at its next batch boundary


def failed_run(console: Console, page, expect) -> None:
    """A failed run's error, opened in the history."""
    pipeline = console.pipeline(name="bad_types",
                                source_query="SELECT 'not a uuid' AS film_id, title, rating FROM content.film_work")
    console.run_to_end(pipeline["id"])
    page.goto(f"/pipelines/{pipeline['id']}")
    page.locator("#history tbody tr").first.locator("summary").click()
    expect(page.locator("#history tbody tr").first.locator("pre.message")).to_be_visible()
    console.shot(page, "console-failed-run.png")


def paged_list(console: Console, page, expect) -> None:
    """The list's second page of three."""
    for number in range(7):
        console.pipeline(name=f"paged_{number}")
    page.goto("/?limit=3")
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#pipeline-table tbody tr").first.locator("td.name")).to_have_text("paged_3")
    console.shot(page, "console-list-paged.png")


def state_and_checks(console: Console, page, expect, browser) -> None:
    """The incremental state panel (reset, refused while RUNNING, the no-JavaScript confirmation), a
    reconciliation mismatch (and on a phone, dark), and a run's detail page."""
    pipeline = console.pipeline(name="films_incremental", mode="incremental", incremental_key="modified",
                                source_query=INCREMENTAL_QUERY)
    console.run_to_end(pipeline["id"])
    page.goto(f"/pipelines/{pipeline['id']}")
    state = page.locator("#state")
    page.once("dialog", lambda dialog: dialog.accept())
    state.get_by_role("button", name="Reset watermark").click()
    expect(state.get_by_text("Watermark reset.")).to_be_visible()
    console.shot(page, "console-state-reset.png")
    console.api.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "2020-01-01 00:00:00+00"})
    page.reload()
    console.sql("UPDATE etl_pipelines SET status = 'RUNNING' WHERE id = %s", (pipeline["id"],))
    page.once("dialog", lambda dialog: dialog.accept())
    state.get_by_role("button", name="Reset watermark").click()
    expect(state.locator("#state-error")).to_be_visible()
    console.shot(page, "console-state-refused.png", full_page=False)
    console.sql("UPDATE etl_pipelines SET status = 'IDLE' WHERE id = %s", (pipeline["id"],))
    context = browser.new_context(base_url=console.base_url, java_script_enabled=False)
    try:
        plain = context.new_page()
        plain.goto(f"/pipelines/{pipeline['id']}")
        plain.get_by_role("button", name="Reset watermark").click()
        expect(plain.get_by_role("heading", level=1)).to_have_text("Reset the watermark of films_incremental?")
        console.shot(plain, "console-state-confirm.png", full_page=False)
    finally:
        context.close()

    checked = console.pipeline(name="film_dim_checked", description="Film dimension, checked after each run")
    console.run_to_end(checked["id"])
    page.goto(f"/pipelines/{checked['id']}")
    panel = page.locator("#reconciliation")
    expect(panel.locator(".check-ok")).to_be_visible(timeout=TIMEOUT_MS)
    console.sql("DELETE FROM analytics.film_dim WHERE film_id IN (SELECT film_id FROM analytics.film_dim ORDER BY title LIMIT 7)")
    console.sql("INSERT INTO analytics.film_dim VALUES ('00000000-0000-0000-0000-0000000000aa', 'not in the source', 1)")
    panel.get_by_role("button", name="Reconcile now").click()
    expect(panel.locator(".mismatch-title")).to_be_visible()
    console.shot(page, "console-reconcile-mismatch.png")
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 390, "height": 844})
    console.shot(panel, "console-reconcile-mismatch-mobile-dark.png")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#history a.run-link").first.click()
    expect(page.locator("#run-reconciliation .check-ok")).to_be_visible()
    console.shot(page, "console-run-detail.png")


SCENES = {
    "busy": busy_console,
    "forms": forms,
    "running": running,
    "failed": failed_run,
    "paged": paged_list,
    "state": state_and_checks,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Scenes: " + " ".join(f"{name}: {' '.join(scene.__doc__.split())}"
                                                                   for name, scene in SCENES.items()))
    parser.add_argument("--out", default=os.path.join(os.path.dirname(_HERE), "test-artifacts"),
                        help="where the PNG files go (default: test-artifacts/ in the checkout)")
    parser.add_argument("--scene", action="append", choices=sorted(SCENES), help="only these scenes (repeatable)")
    parser.add_argument("--url", help="a PostgreSQL server URL (default: ETL_BENCH_DATABASE_URL or embedded)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the chromium binary (default {CHROMIUM})")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if not os.path.exists(args.chromium):
        parser.error(f"no chromium at {args.chromium} (apt-get install chromium, or --chromium PATH)")
    from playwright.sync_api import expect, sync_playwright

    server = args.url or os.environ.get("ETL_BENCH_DATABASE_URL")
    if not server:
        from etl_console.db.embedded import start_embedded

        server = start_embedded(os.path.join(os.path.dirname(_HERE), ".etl-bench"))
    os.makedirs(args.out, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    console = Console(server, args.out)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            try:
                for name in args.scene or list(SCENES):
                    print(f"{name}: {' '.join(SCENES[name].__doc__.split())}")
                    console.empty()
                    context = browser.new_context(base_url=console.base_url, viewport={"width": 1280, "height": 900})
                    context.set_default_timeout(TIMEOUT_MS)
                    try:
                        page = context.new_page()
                        scene = SCENES[name]
                        if name == "state":
                            scene(console, page, expect, browser)
                        else:
                            scene(console, page, expect)
                    finally:
                        context.close()
            finally:
                browser.close()
    finally:
        console.close(args.keep)


if __name__ == "__main__":
    main()
