"""Issue 6 in a real browser: resetting an incremental watermark (with its confirmation, with and
without JavaScript, and refused while RUNNING) and a reconciliation mismatch after rows disappear from
the target."""
from __future__ import annotations

import re

import pytest

expect = pytest.importorskip("playwright.sync_api").expect

INCREMENTAL_QUERY = "SELECT id AS film_id, title, rating, modified FROM content.film_work"
RUNNING_MESSAGE = "Cannot change the state of a pipeline while it is RUNNING"


def test_reset_the_watermark_after_confirming(page, browser, live_server, create_pipeline, run_to_end, client,
                                              sql):
    pipeline = create_pipeline(name="films_incremental", mode="incremental", incremental_key="modified",
                               source_query=INCREMENTAL_QUERY)
    run_to_end(pipeline["id"])
    watermark = sql("SELECT max(modified)::text FROM content.film_work")[0][0]
    client.put(f"/api/v1/pipelines/{pipeline['id']}/schedule", json={"schedule": "0 3 * * *"})
    page.goto(f"/pipelines/{pipeline['id']}")
    state = page.locator("#state")
    expect(state.locator("dd.watermark")).to_have_text(watermark)
    expect(state.locator("ol.changes li")).to_have_count(1)
    expect(state.get_by_role("link", name="run")).to_have_attribute("href", re.compile(r"/runs/[0-9a-f-]{36}$"))

    # Cancelling the confirmation sends nothing.
    questions = []

    def answer(dialog, accept: bool):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    state.get_by_role("button", name="Reset watermark").click()
    page.wait_for_timeout(300)
    assert questions == ["Reset the watermark of films_incremental? The next run reads the whole source query "
                         "again and upserts every row."]
    assert posts == []
    expect(state.locator("dd.watermark")).to_have_text(watermark)

    # Confirmed: the panel swaps in place with the watermark gone and the console's change on top.
    page.once("dialog", lambda dialog: answer(dialog, True))
    state.get_by_role("button", name="Reset watermark").click()
    expect(state.locator("dd.watermark")).to_have_text("none: the next run reads the whole source")
    expect(state.get_by_text("Watermark reset.")).to_be_visible()
    first = state.locator("ol.changes li").first
    expect(first.locator(".change-by")).to_have_text("console")
    expect(first.locator(".change")).to_have_text(f"{watermark} → none")
    expect(state.get_by_role("button", name="Reset watermark")).to_be_disabled()  # nothing left to reset
    assert len(posts) == 1 and posts[0].endswith("/state/reset")

    # Refused while RUNNING: the service's message in the panel (not a toast), the watermark kept.
    client.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "2020-01-01 00:00:00+00"})
    page.reload()
    sql("UPDATE etl_pipelines SET status = 'RUNNING' WHERE id = %s", (pipeline["id"],))
    page.once("dialog", lambda dialog: dialog.accept())
    state.get_by_role("button", name="Reset watermark").click()
    expect(state.locator("#state-error")).to_have_text(RUNNING_MESSAGE)
    expect(state.locator("dd.watermark")).to_have_text("2020-01-01 00:00:00+00")
    expect(state.get_by_role("button", name="Reset watermark")).to_be_disabled()
    expect(page.locator("#toast")).to_be_hidden()
    sql("UPDATE etl_pipelines SET status = 'IDLE' WHERE id = %s", (pipeline["id"],))

    # Without JavaScript the button leads to a confirmation page first.
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    try:
        plain = context.new_page()
        plain.goto(f"/pipelines/{pipeline['id']}")
        plain.get_by_role("button", name="Reset watermark").click()
        expect(plain.get_by_role("heading", level=1)).to_have_text("Reset the watermark of films_incremental?")
        plain.get_by_role("link", name="Cancel").click()
        expect(plain.locator("#state dd.watermark")).to_have_text("2020-01-01 00:00:00+00")
        plain.get_by_role("button", name="Reset watermark").click()
        plain.get_by_role("button", name="Reset watermark").click()  # on the confirmation page
        expect(plain).to_have_url(re.compile(rf"/pipelines/{pipeline['id']}#state$"))
        expect(plain.locator("#state dd.watermark")).to_have_text("none: the next run reads the whole source")
    finally:
        context.close()


def test_reconcile_now_shows_rows_missing_from_the_target(page, create_pipeline, sql):
    pipeline = create_pipeline(name="film_dim_checked", description="Film dimension, checked after each run")
    page.goto(f"/pipelines/{pipeline['id']}")
    panel = page.locator("#reconciliation")
    expect(panel).to_contain_text("No successful run yet")
    page.get_by_role("button", name="Run film_dim_checked").click()
    # The run ends, then the check after it arrives in the panel on its own.
    expect(page.locator("#pipeline-live .badge").first).to_have_text("Idle", timeout=20_000)
    expect(panel.locator(".check-ok")).to_have_text(
        re.compile(r"Target matches source: 2,000 rows, every film_id on both sides"), timeout=15_000)

    deleted = sorted(row[0] for row in sql(
        "DELETE FROM analytics.film_dim WHERE film_id IN (SELECT film_id FROM analytics.film_dim ORDER BY title LIMIT 7)"
        " RETURNING film_id::text"))
    sql("INSERT INTO analytics.film_dim VALUES ('00000000-0000-0000-0000-0000000000aa', 'not in the source', 1)")
    panel.get_by_role("button", name="Reconcile now").click()
    title = panel.locator(".mismatch-title")
    expect(title).to_have_text("Target does not match source: 7 keys missing, 1 extra")
    expect(title).to_have_css("color", re.compile(r"rgb\(140, 17, 17\)"))  # --fail-fg: a red banner
    expect(panel.locator(".sample-missing li")).to_have_count(7)
    assert sorted(panel.locator(".sample-missing li").all_inner_texts()) == deleted
    expect(panel.locator(".sample-extra li")).to_have_text(["00000000-0000-0000-0000-0000000000aa"])
    expect(panel.locator(".target-rows")).to_have_text("1,994")
    expect(panel.locator(".missing")).to_have_text("7")
    expect(panel.get_by_text("Checked now, on request.")).to_be_visible()

    # The run itself was checked when the target still matched: its detail page says so.
    page.locator("#history a.run-link").first.click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Run of film_dim_checked")
    expect(page.locator("#run-reconciliation .check-ok")).to_contain_text("2,000 rows")
    # prepare, copy into the shadow, indexes, quality gates, publish wait
    expect(page.locator("table.phases tbody tr")).to_have_count(5)
    expect(page.locator("dd.batches")).to_have_text("2 batches of 1,000 rows")
