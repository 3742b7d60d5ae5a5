"""The console's pages and fragments through Flask's test client: list, filters, pipeline page,
history paging, chart, run/pause actions, errors as HTML, CSRF."""
from __future__ import annotations

import html as html_lib
import json
import re
import uuid

import pytest

from tests.conftest import wait_for
from tests.console.conftest import HX, seed_runs, text
from tests.console.markup import parse




def row_ids(html: str) -> list[str]:
    """The pipeline ids of the list's rows, in order."""
    return [row.id.removeprefix("p-") for row in parse(html).select("tr[id]") if row.id.startswith("p-")]


def run_row_ids(html: str) -> list[str]:
    """The run ids of the history's rows, in order."""
    return [row.id.removeprefix("run-") for row in parse(html).select("tr[id]") if row.id.startswith("run-")]


def link(html: str, rel: str) -> str:
    """Where the page's first link with this rel (next: older, prev: newer) goes."""
    return parse(html).first(f'[href][rel="{rel}"]').attrs["href"]


def disabled(html: str, label: str) -> bool:
    """Is the control with this aria-label disabled?"""
    return "disabled" in parse(html).one(f'[aria-label="{label}"]').attrs


# the list -------------------------------------------------------------------------------------
def test_empty_list_invites_to_create(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "No pipelines yet" in text(response)
    assert 'href="/pipelines/new"' in text(response)
    # Assets are local (no CDN) and carry their version, so a release is never served stale CSS/JS.
    for asset in ("console.css", "vendor/htmx/htmx.min.js", "console.js"):
        url = next(value for element in parse(response).descendants() for name, value in element.attrs.items()
                   if name in ("href", "src") and re.fullmatch(rf"/static/{re.escape(asset)}\?v=[0-9a-f]+", value))
        assert client.get(url).status_code == 200
    assert "https://" not in text(response) and "http://" not in text(response)


def test_list_shows_each_pipeline_with_its_last_run(client, create_pipeline, run_to_end):
    ok = create_pipeline(name="films_ok", batch_size=500)
    broken = create_pipeline(name="films_broken", source_query="SELECT 1 AS film_id")
    never = create_pipeline(name="films_never", enabled=False)
    run_to_end(ok["id"])
    failed = run_to_end(broken["id"])
    html = text(client.get("/"))

    assert row_ids(html) == [broken["id"], never["id"], ok["id"]]  # by name
    ok_row = html.split(f'id="p-{ok["id"]}"')[1].split("</tr>")[0]
    assert ">films_ok</a>" in ok_row and "analytics.film_dim" in ok_row and ">500<" in ok_row
    assert 'data-status="IDLE">Idle<' in ok_row
    assert "Succeeded" in ok_row and "2,000 rows written" in ok_row and "took" in ok_row
    broken_row = html.split(f'id="p-{broken["id"]}"')[1].split("</tr>")[0]
    assert 'data-status="FAILED">Failed<' in broken_row
    assert failed["error_message"][:40] in html_lib.unescape(broken_row)
    never_row = html.split(f'id="p-{never["id"]}"')[1].split("</tr>")[0]
    assert "Paused" in never_row and "Never run" in never_row and 'data-label="Enabled">No</td>' in never_row
    # The Pause button of an already paused pipeline is disabled; Run stays available.
    assert disabled(never_row, "Pause films_never")
    assert not disabled(never_row, "Run films_never")


def test_list_filters_by_status_and_name(client, create_pipeline):
    create_pipeline(name="orders_daily")
    paused = create_pipeline(name="orders_hourly", enabled=False)
    create_pipeline(name="users_100%_done")

    assert len(row_ids(text(client.get("/?q=orders")))) == 2
    assert row_ids(text(client.get("/?q=ORDERS&status=PAUSED"))) == [paused["id"]]
    assert len(row_ids(text(client.get("/?q=100%")))) == 1  # % is a character, not a wildcard
    assert len(row_ids(text(client.get("/?q=_")))) == 3
    assert "No pipeline matches" in text(client.get("/?q=nothing-like-this"))
    assert len(row_ids(text(client.get("/?status=BOGUS")))) == 3  # unknown status: no filter

    # htmx asks for the table only, and the response says it varies on that header.
    fragment = client.get("/?status=PAUSED", headers={**HX, "HX-Target": "pipeline-table"})
    assert text(fragment).lstrip().startswith('<section id="pipeline-table"')
    assert row_ids(text(fragment)) == [paused["id"]]
    assert "HX-Request" in fragment.headers["Vary"]


# actions --------------------------------------------------------------------------------------
def test_run_button_swaps_the_row_and_the_row_goes_live(client, create_pipeline, token):
    pipeline = create_pipeline(name="live_row")
    response = client.post(f"/pipelines/{pipeline['id']}/run", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 200
    html = text(response)
    assert html.lstrip().startswith(f'<tr id="p-{pipeline["id"]}"')
    assert 'data-status="RUNNING">Running<' in html
    assert f'name="running" value="{pipeline["id"]}"' in html  # picked up by the list's poller
    assert disabled(html, "Run live_row")

    def finished():
        rows = text(client.get(f"/pipelines/live?running={pipeline['id']}&running=not-a-uuid"))
        return rows if 'name="running"' not in rows else None

    rows = wait_for(finished, message="the live row to stop running")
    assert 'hx-swap-oob="true"' in rows and rows.count("<template>") == 1
    assert "Succeeded" in rows and "2,000 rows written" in rows


def test_buttons_work_without_javascript(client, create_pipeline, token):
    pipeline = create_pipeline()
    response = client.post(f"/pipelines/{pipeline['id']}/pause", data={"csrf_token": token, "next": "/?q=p_"})
    assert response.status_code == 303 and response.headers["Location"] == "/?q=p_"
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()["status"] == "PAUSED"
    # An off-site "next" is ignored: back to the pipeline page instead.
    response = client.post(
        f"/pipelines/{pipeline['id']}/run", data={"csrf_token": token, "next": "//evil.example/"}
    )
    assert response.status_code == 303 and response.headers["Location"] == f"/pipelines/{pipeline['id']}"


def test_state_changing_requests_need_the_csrf_token(client, create_pipeline):
    pipeline = create_pipeline()
    for path in (f"/pipelines/{pipeline['id']}/run", f"/pipelines/{pipeline['id']}/pause", "/pipelines/new"):
        for headers in ({}, HX):
            response = client.post(path, data={"name": "x"}, headers=headers)
            assert response.status_code == 400, path
            assert response.mimetype == "text/html"
            assert "CSRF token is missing" in text(response)
    response = client.post(f"/pipelines/{pipeline['id']}/run", headers={**HX, "X-CSRFToken": "forged"})
    assert response.status_code == 400 and "CSRF" in text(response)
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()["status"] == "IDLE"


def test_htmx_requests_may_send_the_token_as_a_header(client, create_pipeline, token):
    pipeline = create_pipeline()
    response = client.post(f"/pipelines/{pipeline['id']}/pause", headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 200 and 'data-status="PAUSED"' in text(response)
    page = text(client.get("/"))
    sent = json.loads(parse(page).one("body").attrs["hx-headers"])  # on every htmx request
    assert list(sent) == ["X-CSRFToken"] and sent["X-CSRFToken"]


def test_the_json_api_needs_no_csrf_token(client):
    response = client.post(
        "/api/v1/pipelines/",
        json={"name": "api_made", "target_table": "analytics.film_dim", "source_query": "SELECT 1"},
    )
    assert response.status_code == 201
    pipeline_id = response.get_json()["id"]
    assert client.post(f"/api/v1/pipelines/{pipeline_id}/pause").status_code == 200
    assert client.patch(f"/api/v1/pipelines/{pipeline_id}", json={"description": "d"}).status_code == 200


# errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        f"/pipelines/{uuid.uuid4()}",
        "/pipelines/not-a-uuid",
        f"/pipelines/{uuid.uuid4()}/edit",
        f"/pipelines/{uuid.uuid4()}/history",
        "/no/such/page",
    ],
)
def test_console_404_is_an_html_page(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert 'id="error-message"' in text(response) and "Back to pipelines" in text(response)


def test_unknown_pipeline_says_so_in_html_and_the_api_stays_json(client, token):
    missing = uuid.uuid4()
    page = client.post(f"/pipelines/{missing}/run", data={"csrf_token": token}, headers=HX)
    assert page.status_code == 404 and "Pipeline not found" in text(page)
    api = client.get(f"/api/v1/pipelines/{missing}")
    assert api.status_code == 404 and api.mimetype == "application/json"
    assert api.get_json() == {"detail": "Pipeline not found"}


def test_console_500_is_an_html_page(client, monkeypatch):
    from etl_console.services import pipeline_list

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline_list, "list_page", broken)
    response = client.get("/")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "Internal Server Error" in text(response) or "internal" in text(response).lower()
    assert "boom" not in text(response)


# the pipeline page ----------------------------------------------------------------------------
def test_pipeline_page_shows_config_chart_and_history(client, create_pipeline, run_to_end):
    query = "SELECT id AS film_id, title, rating\nFROM content.film_work\nWHERE rating > 0 -- <b>not html</b>"
    pipeline = create_pipeline(name="films_page", description="Nightly film dimension", source_query=query)
    run_to_end(pipeline["id"])
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    assert "<h1>films_page</h1>" in html
    assert "Nightly film dimension" in html
    assert '<pre class="sql"><code>SELECT id AS film_id, title, rating\nFROM content.film_work\n' in html
    assert "&lt;b&gt;not html&lt;/b&gt;" in html
    assert html.count('class="bar bar-success"') == 2  # duration and rows written
    assert len(run_row_ids(html)) == 1
    assert "Rows written" in html and "Last 1 run" in html
    # Nothing is live: no polling.
    assert 'hx-trigger="every' not in html


def test_failed_run_error_expands_in_full(client, create_pipeline, run_to_end):
    long_tail = " OR ".join(f"title = 'film {i}'" for i in range(40))
    pipeline = create_pipeline(source_query=f"SELECT id AS film_id, title, rating, 1 AS extra FROM content.film_work WHERE {long_tail}")
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    details = html.split("<details>")[1].split("</details>")[0]
    summary = details.split('<span class="closed-label">')[1].split("</span>")[0]
    assert html_lib.unescape(details.split('<pre class="message">')[1].split("</pre>")[0]) == run["error_message"]
    if len(run["error_message"]) > 90:
        assert summary.endswith("…")


def test_history_is_keyset_paged_fifty_at_a_time(client, create_pipeline, sql):
    pipeline = create_pipeline()
    seed_runs(sql, pipeline["id"], 120)
    expected = [row[0] for row in sql(
        "SELECT id::text FROM etl_pipeline_runs WHERE pipeline_id = %s ORDER BY started_at DESC, id DESC",
        (pipeline["id"],),
    )]
    page_url = f"/pipelines/{pipeline['id']}"
    first = text(client.get(page_url))
    assert run_row_ids(first) == expected[:50]
    assert "Newest</a>" not in first and "Newer" not in first
    older = link(first, "next")
    second = text(client.get(older))
    assert run_row_ids(second) == expected[50:100]
    third_url = link(second, "next")
    third = text(client.get(third_url))
    assert run_row_ids(third) == expected[100:]
    assert 'rel="next"' not in third
    newer = link(third, "prev")
    assert run_row_ids(text(client.get(newer))) == expected[50:100]
    newer_again = link(text(client.get(newer)), "prev")
    assert run_row_ids(text(client.get(newer_again))) == expected[:50]
    # The fragment endpoint pages the same way (the page reloads it when a run ends).
    fragment = text(client.get(older.replace(page_url, page_url + "/history"), headers=HX))
    assert fragment.lstrip().startswith('<section id="history"') and run_row_ids(fragment) == expected[50:100]
    # The chart always shows the newest 30, whatever the page.
    assert second.count('class="bar bar-') == 60
    assert client.get(page_url + "?before=garbage").status_code == 400


def test_live_head_polls_while_running_and_triggers_a_reload_when_the_run_ends(client, create_pipeline, token):
    pipeline = create_pipeline(name="live_head")
    started = client.post(
        f"/pipelines/{pipeline['id']}/run", data={"csrf_token": token, "rows": "1"},
        headers={**HX, "HX-Target": "pipeline-live"},
    )
    assert started.status_code == 200
    assert started.headers["HX-Trigger"] == "runs-changed"  # the history shows the new run
    head = text(started)
    assert head.lstrip().startswith('<section id="pipeline-live"') and 'hx-trigger="every 1s"' in head
    run_id = parse(head).first("[data-run]").attrs["data-run"]
    assert f'<tr id="run-{run_id}" data-status="RUNNING" hx-swap-oob="true">' in head
    poll_url = parse(head).first("[hx-get]").attrs["hx-get"]

    def ended():
        response = client.get(poll_url, headers=HX)
        return response if 'hx-trigger="every' not in text(response) else None

    response = wait_for(ended, message="the head to stop polling")
    assert response.headers["HX-Trigger"] == "runs-changed"
    assert "Last run" in text(response) and "Succeeded" in text(response)
    assert "hx-swap-oob" not in text(response)
    # Polled again with what it now shows: nothing changed, no reload.
    seen = re.search(r"seen=([^&\"]+)", poll_url).group(1)
    again = client.get(poll_url.replace(seen, f"{run_id}%3ASUCCESS"), headers=HX)
    assert "HX-Trigger" not in again.headers


def test_pipeline_page_of_a_running_pipeline_polls_and_shows_progress(client, create_pipeline, sql, app):
    pipeline = create_pipeline(name="progress")
    # A run that a runner claimed and reported progress for (written directly, no runner needed).
    sql(
        "INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, rows_read, rows_written, worker_id, trigger) "
        "VALUES (gen_random_uuid(), %s, 'RUNNING', now() - interval '4 seconds', 12000, 11000, 'elsewhere', 'manual')",
        (pipeline["id"],),
    )
    sql("UPDATE etl_pipelines SET status = 'RUNNING' WHERE id = %s", (pipeline["id"],))
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    head = html.split('<section id="pipeline-live"')[1].split("</section>")[0]
    assert 'hx-trigger="every 1s"' in head and 'data-status="RUNNING">Running<' in head
    assert ">12,000<" in head and ">11,000<" in head
    rate = re.fullmatch(r"([\d.,]+)(k?)\srows/s", parse(head).first(".rate").text)
    assert rate and 2.0 < float(rate.group(1).replace(",", "")) * (1000 if rate.group(2) else 1) / 1000 < 3.5
    assert re.fullmatch(r"4\.\d\d\ss", parse(head).first(".elapsed").text)
    assert 'title="Cannot update pipeline while it is RUNNING">Edit<' in head
    list_row = text(client.get("/"))
    assert "12,000</strong> rows" in list_row and "elapsed" in list_row
