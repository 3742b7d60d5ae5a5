"""Bulk actions in a real browser (headless chromium via Playwright, the app served on loopback with
its runner): tick rows, keep the ticks while the list's poller refreshes a running row, Pause
selected, read what happened."""
from __future__ import annotations

import re

import pytest

from tests.console.test_console_browser import slow_query

expect = pytest.importorskip("playwright.sync_api").expect


def test_select_rows_and_pause_them_together(page, create_pipeline, client):
    for name in ("alpha", "bravo", "charlie"):
        create_pipeline(name=name)
    create_pipeline(name="slow_selected", source_query=slow_query(400_000, 1000, 0.02), batch_size=1000)
    page.goto("/")
    row = lambda name: page.locator("tr", has=page.get_by_role("link", name=name, exact=True))  # noqa: E731
    expect(page.locator("[data-count=ALL] .count-number")).to_have_text("4")

    page.get_by_role("button", name="Run slow_selected").click()
    expect(row("slow_selected").locator("td.status")).to_have_text("Running")
    page.get_by_label("Select alpha").check()
    page.get_by_label("Select slow_selected").check()
    # The poller swaps the running row in anew each second; the tick stays.
    progress = row("slow_selected").locator(".progress")
    expect(progress).to_have_text(re.compile(r"^[1-9]"))
    expect(progress).not_to_have_text(progress.inner_text(), timeout=10_000)
    expect(page.get_by_label("Select slow_selected")).to_be_checked()

    page.get_by_role("button", name="Pause selected").click()
    expect(page.locator(".flash")).to_have_text("Pause selected: 2 paused.")
    expect(row("alpha").locator("td.status")).to_have_text("Paused")
    expect(row("slow_selected").locator("td.status")).to_have_text("Paused")
    expect(row("bravo").locator("td.status")).to_have_text("Idle")
    expect(row("charlie").locator("td.status")).to_have_text("Idle")
    # The paused run stops at a batch boundary, as a single Pause's does.
    expect(row("slow_selected").locator("td.last-run .badge")).to_have_text("Failed", timeout=10_000)
    expect(page.locator("[data-count=PAUSED] .count-number")).to_have_text("2")

    # The header box ticks every row on the page; Run selected starts the paused ones again.
    page.get_by_label("Select every pipeline on this page").check()
    for name in ("alpha", "bravo", "charlie", "slow_selected"):
        expect(page.get_by_label(f"Select {name}")).to_be_checked()
    page.get_by_label("Select slow_selected").uncheck()
    page.get_by_role("button", name="Run selected").click()
    expect(page.locator(".flash")).to_have_text("Run selected: 3 started.")
    runs = client.get("/api/v1/pipelines/?q=slow_selected").get_json()[0]
    assert runs["status"] == "PAUSED"  # left out of the run


def test_pages_of_the_list_in_the_browser(page, create_pipeline):
    for number in range(7):
        create_pipeline(name=f"paged_{number}")
    page.goto("/?limit=3")
    rows = page.locator("#pipeline-table tbody tr")
    expect(rows).to_have_count(3)
    page.get_by_role("link", name="Next →").click()
    expect(rows.first.locator("td.name")).to_have_text("paged_3")
    page.get_by_role("link", name="Next →").click()
    expect(rows).to_have_count(1)
    expect(page.get_by_role("link", name="Next →")).to_have_count(0)
    page.get_by_role("link", name="← Previous").click()
    expect(rows.first.locator("td.name")).to_have_text("paged_3")
    expect(page.get_by_role("link", name="First page")).to_be_visible()
    # A filter typed on a later page starts the list again from its first page.
    page.get_by_label("Name").fill("paged_6")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.name")).to_have_text("paged_6")
