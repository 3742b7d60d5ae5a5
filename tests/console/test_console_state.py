"""The incremental state panel: key, watermark, recent changes, and Reset with a confirmation
(hx-confirm with htmx, a confirmation page without), refused while RUNNING with the service's words."""
from __future__ import annotations

import json

from tests.console.conftest import HX, counting_queries, text
from tests.console.markup import parse

INCREMENTAL_QUERY = "SELECT id AS film_id, title, rating, modified FROM content.film_work"
RUNNING_MESSAGE = "Cannot change the state of a pipeline while it is RUNNING"



def state_section(html: str) -> str:
    start = html.index('<section id="state"')
    return html[start: html.index("</section>", start)]


def watermark(html: str) -> str | None:
    """The watermark shown, or None where the panel says there is none."""
    shown = parse(html).one("dd.watermark")
    if shown.first("code") is not None:
        return shown.one("code").text
    assert shown.one("span.muted").text.startswith("none"), shown.text
    return None


def change_rows(html: str) -> list[tuple[str, str, str]]:
    """(old, new, by) of each change shown, newest first."""
    changes = parse(html).first("ol.changes")
    rows = []
    for item in changes.select("li") if changes is not None else []:
        values = [value.text if value.tag == "code" else None
                  for value in item.one("div.change").elements
                  if value.tag == "code" or ("muted" in value.classes and value.text == "none")]
        old, new = values
        rows.append((old, new, item.one("span.change-by").words))
    return rows


def reset_button(html: str):
    return parse(html).one("form.reset-form button.button.danger")


def make_incremental(create_pipeline, **fields):
    return create_pipeline(mode="incremental", incremental_key="modified", source_query=INCREMENTAL_QUERY, **fields)


def test_full_reload_pipelines_have_no_state_panel(client, create_pipeline):
    pipeline = create_pipeline(name="full_one")
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    assert 'id="state"' not in html and "Incremental state" not in html
    # The panel's reload answers nothing for them (an outerHTML swap of nothing removes it).
    assert text(client.get(f"/pipelines/{pipeline['id']}/state", headers=HX)).strip() == ""


def test_state_after_runs_shows_watermark_and_changes_linked_to_runs(client, create_pipeline, run_to_end, sql):
    pipeline = make_incremental(create_pipeline, name="inc_page")
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    section = state_section(html)
    assert "<code>modified</code>" in section and watermark(section) is None
    assert "never" in section and "Recent changes" not in section
    button = reset_button(section)
    assert "disabled" in button.attrs and button.attrs["title"] == "No watermark to reset"

    run = run_to_end(pipeline["id"])
    expected = sql("SELECT max(modified)::text FROM content.film_work")[0][0]
    section = state_section(text(client.get(f"/pipelines/{pipeline['id']}")))
    assert watermark(section) == expected
    assert change_rows(section) == [(None, expected, "run")]
    assert f'href="/pipelines/{pipeline["id"]}/runs/{run["id"]}">run</a>' in section
    # Reloaded when a run starts or ends (the head's poller triggers runs-changed).
    assert 'hx-trigger="runs-changed from:body"' in section


def test_reset_with_htmx_asks_first_then_resets_and_records_the_console(client, create_pipeline, token, sql):
    pipeline = make_incremental(create_pipeline, name="inc_reset")
    client.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "2021-01-01 00:00:00+00"})
    section = state_section(text(client.get(f"/pipelines/{pipeline['id']}")))
    form = parse(section).one("form.reset-form").attrs
    assert form["hx-confirm"].startswith("Reset the watermark of inc_reset? The next run reads the whole source query again")
    assert json.loads(form["hx-vals"]) == {"confirmed": "yes"}  # sent by htmx only, after the confirmation

    response = client.post(f"/pipelines/{pipeline['id']}/state/reset",
                           data={"csrf_token": token, "confirmed": "yes"}, headers=HX)
    assert response.status_code == 200
    fragment = text(response)
    assert fragment.lstrip().startswith('<section id="state"')
    assert watermark(fragment) is None and "Watermark reset." in fragment
    assert change_rows(fragment) == [("2021-01-01 00:00:00+00", None, "console"), (None, "2021-01-01 00:00:00+00", "api")]
    assert sql("SELECT watermark FROM etl_state WHERE pipeline_id = %s", (pipeline["id"],)) == [(None,)]


def test_reset_without_javascript_goes_through_a_confirmation_page(client, create_pipeline, token, sql):
    pipeline = make_incremental(create_pipeline, name="inc_nojs")
    client.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "42"})
    url = f"/pipelines/{pipeline['id']}/state/reset"
    # The panel's plain form posts without "confirmed": a page asks first and changes nothing.
    asked = client.post(url, data={"csrf_token": token})
    assert asked.status_code == 200
    page = text(asked)
    assert "<h1>Reset the watermark of inc_nojs?</h1>" in page and "<code>42</code>" in page
    assert '<input type="hidden" name="confirmed" value="yes">' in page
    assert f'href="/pipelines/{pipeline["id"]}#state">Cancel</a>' in page
    assert client.get(url).status_code == 200  # the same page by link
    assert sql("SELECT watermark FROM etl_state WHERE pipeline_id = %s", (pipeline["id"],)) == [("42",)]

    done = client.post(url, data={"csrf_token": token, "confirmed": "yes"})
    assert done.status_code == 303 and done.headers["Location"] == f"/pipelines/{pipeline['id']}#state"
    assert watermark(state_section(text(client.get(f"/pipelines/{pipeline['id']}")))) is None


def test_reset_is_refused_while_running_with_the_services_message(client, create_pipeline, token, sql):
    pipeline = make_incremental(create_pipeline, name="inc_busy")
    client.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "7"})
    sql("UPDATE etl_pipelines SET status = 'RUNNING' WHERE id = %s", (pipeline["id"],))
    section = state_section(text(client.get(f"/pipelines/{pipeline['id']}")))
    button = reset_button(section)
    assert "disabled" in button.attrs and button.attrs["title"] == RUNNING_MESSAGE

    url = f"/pipelines/{pipeline['id']}/state/reset"
    response = client.post(url, data={"csrf_token": token, "confirmed": "yes"}, headers=HX)
    assert response.status_code == 409 and response.headers["X-Inline-Error"] == "true"
    api = client.delete(f"/api/v1/pipelines/{pipeline['id']}/state")
    assert api.status_code == 409
    shown = parse(response).one("p.notice.error#state-error")
    assert shown.attrs["role"] == "alert"
    assert shown.text == api.get_json()["detail"] == RUNNING_MESSAGE
    assert watermark(text(response)) == "7"

    page = client.post(url, data={"csrf_token": token, "confirmed": "yes"})
    assert page.status_code == 409 and f'id="state-error">{RUNNING_MESSAGE}<' in text(page)
    assert "<h1>inc_busy</h1>" in text(page)
    assert RUNNING_MESSAGE in text(client.get(url))  # the confirmation page warns too
    assert sql("SELECT watermark FROM etl_state WHERE pipeline_id = %s", (pipeline["id"],)) == [("7",)]


def test_reset_needs_the_csrf_token(client, create_pipeline):
    pipeline = make_incremental(create_pipeline)
    client.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "7"})
    for headers in ({}, HX):
        response = client.post(f"/pipelines/{pipeline['id']}/state/reset", data={"confirmed": "yes"}, headers=headers)
        assert response.status_code == 400 and "CSRF token is missing" in text(response)
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}/state").get_json()["watermark"] == "7"


def test_incremental_page_and_state_panel_are_a_few_statements(app, client, create_pipeline, sql):
    pipeline = make_incremental(create_pipeline, name="inc_queries")
    # More changes than the service returns (20).
    sql("INSERT INTO etl_state (pipeline_id, watermark, incremental_key) VALUES (%s, '30', 'modified')", (pipeline["id"],))
    sql("INSERT INTO etl_state_changes (pipeline_id, old_watermark, new_watermark, changed_by, changed_at) "
        "SELECT %s, i::text, (i + 1)::text, 'api', now() - make_interval(secs => 30 - i) FROM generate_series(0, 29) i",
        (pipeline["id"],))
    with counting_queries(app) as page:
        html = text(client.get(f"/pipelines/{pipeline['id']}"))
    shown = change_rows(state_section(html))
    assert len(shown) == 20 and shown[0] == ("29", "30", "api") and watermark(state_section(html)) == "30"
    # pipeline, reconciliation, history page, then get_state: pipeline, state row, changes; quality gates;
    # the history of changes (audit log); upstreams/downstreams; alert channels, subscriptions and clock
    assert len(page) == 11, page
    with counting_queries(app) as fragment:
        client.get(f"/pipelines/{pipeline['id']}/state", headers=HX)
    assert len(fragment) == 4, fragment
