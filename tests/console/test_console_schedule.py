"""The schedule panel: cron expression and next run (UTC), set or clear it, the API's message inline."""
from __future__ import annotations

import html as html_lib
import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.console.conftest import HX, counting_queries, text
from tests.console.markup import parse



@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}  # nothing here runs a pipeline



def schedule_section(html: str) -> str:
    start = html.index('<section id="schedule"')
    return html[start: html.index("</section>", start)]


def next_run(html: str) -> datetime:
    stamp = parse(html).one("dd.next-run > time").attrs["datetime"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_without_a_schedule_the_panel_offers_to_set_one(client, create_pipeline):
    pipeline = create_pipeline(name="unscheduled")
    section = schedule_section(text(client.get(f"/pipelines/{pipeline['id']}")))
    assert "No schedule" in section and "Set a schedule" in section
    assert 'name="action" value="clear"' not in section  # nothing to clear


def test_set_with_htmx_shows_the_cron_and_next_run_as_the_api_does(client, create_pipeline, token):
    pipeline = create_pipeline(name="every_five")
    before = datetime.now(timezone.utc)
    response = client.post(f"/pipelines/{pipeline['id']}/schedule",
                           data={"csrf_token": token, "schedule": "  */5   * * * * "}, headers=HX)
    assert response.status_code == 200
    fragment = text(response)
    assert fragment.lstrip().startswith('<section id="schedule"')
    assert "Schedule saved." in fragment and '<code class="cron">*/5 * * * *</code>' in fragment
    shown = next_run(fragment)
    assert shown.minute % 5 == 0 and shown.second == 0 and before < shown <= before + timedelta(minutes=5)
    shown_at = parse(fragment).one("dd.next-run")
    assert shown_at.one("time").text.endswith("UTC")
    assert re.fullmatch(r"\((in \d+ (s|min)|now)\)", shown_at.one("span.muted").text)  # how long until then
    api = client.get(f"/api/v1/pipelines/{pipeline['id']}/schedule").get_json()
    assert api["schedule"] == "*/5 * * * *"
    assert datetime.fromisoformat(api["next_run_at"].replace("Z", "+00:00")) == shown
    # The page shows the same after a reload.
    assert '<code class="cron">*/5 * * * *</code>' in text(client.get(f"/pipelines/{pipeline['id']}"))


def test_an_invalid_schedule_shows_the_apis_message_inline(client, create_pipeline, token):
    pipeline = create_pipeline(name="bad_cron")
    for typed in ("61 * * * *", "every day", "* * *"):
        api = client.put(f"/api/v1/pipelines/{pipeline['id']}/schedule", json={"schedule": typed})
        assert api.status_code == 400
        response = client.post(f"/pipelines/{pipeline['id']}/schedule",
                               data={"csrf_token": token, "schedule": typed}, headers=HX)
        assert response.status_code == 400 and response.headers["X-Inline-Error"] == "true"
        fragment = text(response)
        assert parse(fragment).one("p.field-error#schedule-error").text == api.get_json()["detail"]
        assert f'value="{html_lib.escape(typed)}"' in fragment  # kept for correction
        assert 'aria-invalid="true"' in fragment and 'aria-describedby="schedule-help schedule-error"' in fragment
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}/schedule").get_json()["schedule"] is None
    # Without JavaScript: the whole page, 400, the same message next to the box.
    page = client.post(f"/pipelines/{pipeline['id']}/schedule", data={"csrf_token": token, "schedule": "61 * * * *"})
    assert page.status_code == 400 and "<h1>bad_cron</h1>" in text(page) and 'id="schedule-error"' in text(page)


def test_clear_and_an_empty_box_remove_the_schedule(client, create_pipeline, token):
    pipeline = create_pipeline(name="cleared")
    url = f"/pipelines/{pipeline['id']}/schedule"
    api_url = f"/api/v1/pipelines/{pipeline['id']}/schedule"
    client.put(api_url, json={"schedule": "0 3 * * *"})
    section = schedule_section(text(client.get(f"/pipelines/{pipeline['id']}")))
    assert 'value="0 3 * * *"' in section and 'name="action" value="clear"' in section
    assert next_run(section).hour == 3

    cleared = client.post(url, data={"csrf_token": token, "schedule": "0 3 * * *", "action": "clear"}, headers=HX)
    assert cleared.status_code == 200 and "Schedule cleared." in text(cleared) and "No schedule" in text(cleared)
    assert client.get(api_url).get_json()["schedule"] is None

    client.put(api_url, json={"schedule": "0 3 * * *"})
    response = client.post(url, data={"csrf_token": token, "schedule": "   "})  # no JavaScript
    assert response.status_code == 303 and response.headers["Location"] == f"/pipelines/{pipeline['id']}#schedule"
    assert client.get(api_url).get_json()["schedule"] is None


def test_a_paused_or_disabled_pipeline_says_its_schedule_is_skipped(client, create_pipeline):
    paused = create_pipeline(name="paused_sched")
    disabled = create_pipeline(name="disabled_sched", enabled=False)
    for pipeline in (paused, disabled):
        client.put(f"/api/v1/pipelines/{pipeline['id']}/schedule", json={"schedule": "0 * * * *"})
    client.post(f"/api/v1/pipelines/{paused['id']}/pause")
    assert "scheduled runs are skipped while it is paused" in text(client.get(f"/pipelines/{paused['id']}"))
    assert "scheduled runs are skipped until it is enabled" in text(client.get(f"/pipelines/{disabled['id']}"))


def test_set_schedule_needs_the_csrf_token_and_is_a_few_statements(app, client, create_pipeline, token):
    pipeline = create_pipeline()
    url = f"/pipelines/{pipeline['id']}/schedule"
    assert client.post(url, data={"schedule": "* * * * *"}, headers=HX).status_code == 400
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}/schedule").get_json()["schedule"] is None
    with counting_queries(app) as statements:
        assert client.post(url, data={"csrf_token": token, "schedule": "* * * * *"}, headers=HX).status_code == 200
    assert len(statements) <= 5, statements  # lock and read the pipeline, now(), update, its audit row


def test_an_expression_no_date_matches_still_renders_and_can_be_cleared(client, create_pipeline, token, sql):
    """Saved before validation refused it: 30 February, whose next run croniter cannot find."""
    pipeline = create_pipeline(name="feb_30")
    sql("UPDATE etl_pipelines SET schedule = '0 0 30 2 *' WHERE id = %s", (pipeline["id"],))
    page = client.get(f"/pipelines/{pipeline['id']}")
    assert page.status_code == 200
    section = schedule_section(text(page))
    assert '<dd class="next-run never">never</dd>' in section and "it never starts a run" in section
    cleared = client.post(f"/pipelines/{pipeline['id']}/schedule",
                          data={"csrf_token": token, "schedule": "", "action": "clear"}, headers=HX)
    assert cleared.status_code == 200 and "Schedule cleared." in text(cleared)
