"""The console runs with an empty browser console: no errors or warnings on the list (idle, its
poller ticking, and with a run in flight), the pipeline page or the run page."""
from __future__ import annotations

import re

import pytest

from tests.console.test_console_browser import slow_query

expect = pytest.importorskip("playwright.sync_api").expect

POLL_TICKS_MS = 2_500  # the list's poller fires every second: let it tick twice


@pytest.fixture
def console_messages(page):
    messages: list[tuple[str, str]] = []
    page.on("console", lambda message: messages.append((message.type, message.text)))
    return messages


def complaints(messages) -> list[tuple[str, str]]:
    return [(kind, text) for kind, text in messages if kind in ("error", "warning", "assert")]


def test_the_idle_list_polls_without_complaint(page, console_messages, create_pipeline):
    create_pipeline(name="idle_one")
    page.goto("/")
    expect(page.get_by_role("link", name="idle_one")).to_be_visible()
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/live" in request.url else None)
    page.wait_for_timeout(POLL_TICKS_MS)
    assert complaints(console_messages) == []
    assert polls == []  # with nothing running the poller sends nothing


def test_list_pipeline_and_run_pages_with_a_run_in_flight(page, console_messages, create_pipeline, client):
    create_pipeline(name="quiet_neighbour")
    slow = create_pipeline(name="slow_one", source_query=slow_query(2_000_000, 1000, 0.02), batch_size=1000)
    page.goto("/")
    page.get_by_role("button", name="Run slow_one").click()
    row = page.locator("tr", has=page.get_by_role("link", name="slow_one"))
    expect(row.locator(".progress")).to_have_text(re.compile(r"^[1-9][\d,]* rows"))
    page.wait_for_timeout(POLL_TICKS_MS)  # the poller now asks for the running row
    assert complaints(console_messages) == [], "on the list"

    page.goto(f"/pipelines/{slow['id']}")
    expect(page.locator("#pipeline-live .badge").first).to_have_text("Running")
    page.wait_for_timeout(POLL_TICKS_MS)
    assert complaints(console_messages) == [], "on the pipeline page"

    run_id = client.get(f"/api/v1/pipelines/{slow['id']}/runs?limit=1").get_json()[0]["id"]
    page.goto(f"/pipelines/{slow['id']}/runs/{run_id}")
    expect(page.get_by_text("Running").first).to_be_visible()
    page.wait_for_timeout(POLL_TICKS_MS)
    assert complaints(console_messages) == [], "on the run page"

    client.post(f"/api/v1/pipelines/{slow['id']}/pause")
    page.goto(f"/pipelines/{slow['id']}")
    expect(page.locator("#pipeline-live .badge").first).to_have_text("Paused", timeout=15_000)
    page.goto("/")
    page.wait_for_timeout(POLL_TICKS_MS)
    assert complaints(console_messages) == [], "after the run"
