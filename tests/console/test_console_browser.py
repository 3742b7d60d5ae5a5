"""The console in a real browser: headless chromium (Debian's) driven by Playwright, against the app
served over HTTP on loopback with its runner thread. (Screenshots for the eye: bench/console_screenshots.py.)"""
from __future__ import annotations

import re

import pytest

expect = pytest.importorskip("playwright.sync_api").expect


def slow_query(rows: int, every: int, sleep_s: float) -> str:
    """film_dim-shaped rows that take sleep_s of server time every `every` rows."""
    return (
        "SELECT md5('slow' || i)::uuid AS film_id, 'film ' || i AS title, (i % 10)::float8 AS rating\n"
        f"FROM generate_series(1, {rows}) AS i\n"
        f"WHERE CASE WHEN i % {every} = 0 THEN pg_sleep({sleep_s}) IS NOT NULL ELSE true END"
    )


def number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text) or 0)


def test_create_through_the_form_then_run_and_watch_it(page):
    page.goto("/")
    expect(page.get_by_text("No pipelines yet")).to_be_visible()
    page.get_by_role("link", name="New pipeline").first.click()
    expect(page).to_have_url(re.compile(r"/pipelines/new$"))

    page.get_by_label("Name").fill("films_from_browser")
    page.get_by_label("Target table").fill("analytics.films_secret")
    page.get_by_label("Batch size").fill("500")
    page.get_by_label("Source query").fill(slow_query(36_000, 1000, 0.1))
    page.get_by_role("button", name="Create pipeline").click()

    # The service's own message, next to the field, and what was typed is kept.
    error = page.locator("#target_table-error")
    expect(error).to_have_text("target_table 'analytics.films_secret' is not allowed")
    expect(page.get_by_label("Target table")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name")).to_have_value("films_from_browser")

    page.get_by_label("Target table").fill("analytics.film_dim")
    page.get_by_role("button", name="Create pipeline").click()
    expect(page).to_have_url(re.compile(r"/pipelines/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("films_from_browser")
    expect(page.get_by_text("This pipeline has not run yet.")).to_be_visible()

    page.get_by_role("button", name="Run films_from_browser").click()
    head = page.locator("#pipeline-live")
    expect(head.locator(".badge").first).to_have_text("Running")
    expect(head.get_by_text("Run in progress")).to_be_visible()
    # The new run appears in the history, RUNNING.
    expect(page.locator("#history tbody tr")).to_have_count(1)
    expect(page.locator("#history tbody tr").first.locator(".badge")).to_have_text("Running")

    # Live progress: rows read grows between polls, in the head and in the history row.
    rows_read = head.locator(".rows-read")
    expect(rows_read).not_to_have_text("0")
    first_seen = number(rows_read.inner_text())
    expect(rows_read).not_to_have_text(rows_read.inner_text(), timeout=5000)
    assert number(rows_read.inner_text()) > first_seen
    expect(head.locator(".rate")).to_have_text(re.compile(r"rows/s$"))
    expect(head.locator(".elapsed")).to_have_text(re.compile(r"\d\ss$"))
    row_rows = page.locator("#history tbody tr").first.locator("td").nth(3)
    expect(row_rows).not_to_have_text(re.compile(r"^0"))

    # It ends: the badge goes back to Idle, the history row says Succeeded, the chart appears.
    expect(head.locator(".badge").first).to_have_text("Idle", timeout=20_000)
    finished = page.locator("#history tbody tr").first
    expect(finished.locator(".badge")).to_have_text("Succeeded")
    expect(finished.locator("td").nth(4)).to_have_text("36,000")
    expect(page.locator("#run-chart rect.bar-success")).to_have_count(2)

    # Polling stopped with the run.
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/live" in request.url else None)
    page.wait_for_timeout(1800)  # > one poll period (Playwright delivers events while it waits)
    assert polls == []


def test_run_and_pause_from_the_list(page, create_pipeline, client):
    create_pipeline(name="quiet_neighbour", source_query="SELECT id AS film_id, title, rating FROM content.film_work")
    create_pipeline(name="slow_one", source_query=slow_query(400_000, 1000, 0.02), batch_size=1000)
    page.goto("/")
    slow_row = page.locator("tr", has=page.get_by_role("link", name="slow_one"))
    page.get_by_role("button", name="Run slow_one").click()
    expect(slow_row.locator("td.status")).to_have_text("Running")
    expect(page.get_by_role("button", name="Run slow_one")).to_be_disabled()
    # The list's poller refreshes the running row with rows so far, rate and elapsed time.
    progress = slow_row.locator(".progress")
    expect(progress).to_have_text(re.compile(r"^[1-9][\d,]* rows · .+\srows/s · .+ elapsed$"))

    page.get_by_role("button", name="Pause slow_one").click()
    expect(slow_row.locator("td.status")).to_have_text("Paused")
    # The run stops at its next batch boundary; the row shows how it ended and stops polling.
    last_run = slow_row.locator("td.last-run")
    expect(last_run.locator(".badge")).to_have_text("Failed", timeout=10_000)
    expect(last_run.locator(".error-line")).to_contain_text("cancelled by a pause")
    expect(slow_row.locator("input[name=running]")).to_have_count(0)
    expect(page.get_by_role("button", name="Pause slow_one")).to_be_disabled()
    expect(page.get_by_role("button", name="Run slow_one")).to_be_enabled()
    # The other row was never touched.
    expect(page.locator("tr", has=page.get_by_role("link", name="quiet_neighbour")).locator("td.status")).to_have_text("Idle")


def test_failed_run_shows_its_error_in_full(page, create_pipeline):
    pipeline = create_pipeline(
        name="bad_types", source_query="SELECT 'not a uuid' AS film_id, title, rating FROM content.film_work"
    )
    page.goto(f"/pipelines/{pipeline['id']}")
    page.get_by_role("button", name="Run bad_types").click()
    head = page.locator("#pipeline-live")
    expect(head.locator(".badge").first).to_have_text("Failed", timeout=15_000)
    row = page.locator("#history tbody tr").first
    expect(row.locator(".badge")).to_have_text("Failed")
    message = row.locator("pre.message")
    expect(message).to_be_hidden()
    row.locator("summary").click()
    expect(message).to_be_visible()
    expect(message).to_contain_text('invalid input syntax for type uuid: "not a uuid"')


def test_filters_update_the_table_in_place(page, create_pipeline):
    for name in ("orders_daily", "orders_hourly", "users_daily"):
        create_pipeline(name=name)
    create_pipeline(name="orders_paused", enabled=False)
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/pipelines/live" in request.url else None)
    page.goto("/")
    rows = page.locator("#pipeline-table tbody tr")
    expect(rows).to_have_count(4)
    page.wait_for_timeout(1300)
    assert polls == []  # nothing runs: the list's poller stays quiet
    page.get_by_label("Name").fill("orders")
    expect(rows).to_have_count(3)
    expect(page).to_have_url(re.compile(r"q=orders"))
    page.get_by_label("Status").select_option("PAUSED")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.name")).to_have_text("orders_paused")


def test_everything_reads_without_javascript(browser, live_server, create_pipeline, run_to_end):
    pipeline = create_pipeline(name="no_js", source_query="SELECT 1 AS film_id")
    run_to_end(pipeline["id"])
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.get_by_role("link", name="no_js")).to_be_visible()
        page.get_by_label("Name").fill("nothing")
        page.get_by_role("button", name="Filter").click()
        expect(page.get_by_text("No pipeline matches the filter.")).to_be_visible()
        page.goto("/")
        page.get_by_role("link", name="no_js").click()
        row = page.locator("#history tbody tr").first
        expect(row.locator(".badge")).to_have_text("Failed")
        row.locator("summary").click()
        expect(row.locator("pre.message")).to_be_visible()
        # Buttons are plain forms: Pause posts and comes back to the page (post/redirect/get).
        page.get_by_role("button", name="Pause no_js").click()
        expect(page).to_have_url(re.compile(rf"/pipelines/{pipeline['id']}$"))
        expect(page.locator("#pipeline-live .badge").first).to_have_text("Paused")
    finally:
        context.close()


def test_a_refused_htmx_request_says_why(page, create_pipeline):
    """A failed htmx request swaps nothing; the page says what went wrong instead."""
    pipeline = create_pipeline(name="guarded_by_csrf")
    page.goto(f"/pipelines/{pipeline['id']}")
    page.evaluate(
        """() => {
            document.body.setAttribute('hx-headers', JSON.stringify({'X-CSRFToken': 'forged'}));
            document.querySelectorAll('input[name=csrf_token]').forEach(input => { input.value = 'forged'; });
        }"""
    )
    page.get_by_role("button", name="Pause guarded_by_csrf").click()
    toast = page.locator("#toast")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("CSRF token")
    expect(toast).to_contain_text("Reload the page")
    expect(page.locator("#pipeline-live .badge").first).to_have_text("Idle")
