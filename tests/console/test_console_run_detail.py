"""The run detail page (/pipelines/<id>/runs/<run_id>), linked from every history row: configuration
snapshot, batches, phase timings and reconciliation."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import wait_for
from tests.console.conftest import HX, counting_queries, text
from tests.console.markup import parse




def fields(html: str) -> dict[str, str]:
    """Each <dt>'s text and the text of the <dd> after it (the later of two same terms wins)."""
    shown = {}
    for term in parse(html).select("dt"):
        siblings = term.parent.elements
        following = siblings[siblings.index(term) + 1:]
        if following and following[0].tag == "dd":
            shown[term.text] = following[0].text.strip()
    return shown


def test_history_rows_link_to_their_run(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(name="linked")
    runs = [run_to_end(pipeline["id"])["id"] for _ in range(2)]
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    history = html[html.index('<section id="history"'):]
    links = [link.attrs["href"] for link in parse(history).select("a.run-link")]
    assert links == [f"/pipelines/{pipeline['id']}/runs/{run_id}" for run_id in runs[::-1]]


def test_a_successful_run_shows_its_whole_record(client, create_pipeline, run_to_end, app):
    query = "SELECT id AS film_id, title, rating FROM content.film_work -- <nightly>"
    pipeline = create_pipeline(name="detailed", batch_size=300, source_query=query)
    run = run_to_end(pipeline["id"])
    url = f"/pipelines/{pipeline['id']}/runs/{run['id']}"
    wait_for(lambda: client.get(f"/api/v1{url}").get_json()["reconciliation"], message="the check after the run")
    # An edit after the run does not change what the run ran with.
    client.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"batch_size": 5, "name": "renamed"})

    with counting_queries(app) as statements:
        response = client.get(url)
    assert response.status_code == 200
    assert len(statements) == 3, statements  # the pipeline, then run_detail: pipeline and run
    html = text(response)
    assert "<h1>Run of renamed</h1>" in html and 'data-status="SUCCESS">Succeeded<' in html
    assert f'<a href="/pipelines/{pipeline["id"]}">renamed</a>' in html  # breadcrumb back
    shown = fields(html)
    assert shown["Rows read"] == shown["Rows written"] == "2,000"
    assert shown["Trigger"] == "Manual (Run button or API)" and shown["Worker"] not in ("", "none yet")
    assert shown["Batches"] == "7 batches of 300 rows"
    assert re.fullmatch(r"\d+\.\d\d\ss", shown["Duration"].replace("\u00a0", " "))
    snapshot = html[html.index('id="snapshot-title"'):]
    assert fields(snapshot)["Name"] == "detailed" and fields(snapshot)["Batch size"] == "300 rows"
    assert "-- &lt;nightly&gt;</code></pre>" in snapshot
    for phase in ("prepare_s", "copy_s", "index_s"):
        assert f'data-phase="{phase}"' in html
    assert any(re.fullmatch(r"width: [\d.]+%", bar.attrs.get("style", "")) for bar in parse(html).select(".phase-bar"))
    assert "Load, in total" in html and "Queue, claim and commit" in html
    assert "Target matches source: 2,000 rows" in html
    assert "hx-trigger" not in html[html.index('<div id="run-detail"'):]  # finished and checked: no polling


def test_a_failed_run_shows_its_error_and_no_check(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(name="broken_detail", source_query="SELECT 'x' AS film_id, title, rating FROM content.film_work")
    run = run_to_end(pipeline["id"])
    html = text(client.get(f"/pipelines/{pipeline['id']}/runs/{run['id']}"))
    assert 'data-status="FAILED">Failed<' in html
    message = parse(html).one("pre.message.head-message")
    assert message.one("span.sr-only").text == "Error: "  # said to screen readers before the message
    assert message.text == "Error: " + run["error_message"]
    assert "Only successful runs are checked" in html


def test_a_running_run_reloads_itself_until_it_ends(client, create_pipeline, sql):
    pipeline = create_pipeline(name="running_detail")
    run_id = sql(
        "INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, rows_read, rows_written, trigger) "
        "VALUES (gen_random_uuid(), %s, 'RUNNING', now(), 0, 0, 'schedule') RETURNING id::text",
        (pipeline["id"],),
    )[0][0]
    # A label no runner has: the app's runner must not claim the run while the page is read.
    sql("UPDATE etl_pipelines SET status = 'RUNNING', required_label = 'no-runner-has-it' WHERE id = %s",
        (pipeline["id"],))
    url = f"/pipelines/{pipeline['id']}/runs/{run_id}"
    html = text(client.get(url))
    assert 'hx-trigger="every 1s"' in html and f'hx-get="{url}"' in html
    assert fields(html)["Claimed"] == "waiting for a runner labelled 'no-runner-has-it'"
    assert fields(html)["Trigger"] == "Schedule"
    assert "No snapshot yet" in html and "Recorded when the run ends." in html
    fragment = text(client.get(url, headers={**HX, "HX-Target": "run-detail"}))
    assert fragment.lstrip().startswith('<div id="run-detail"') and "<html" not in fragment


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_runs_are_html_404s(client, create_pipeline, run_id):
    pipeline = create_pipeline()
    response = client.get(f"/pipelines/{pipeline['id']}/runs/{run_id}")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert 'id="error-message">Run not found<' in text(response)


def test_a_run_is_only_found_under_its_own_pipeline(client, create_pipeline, run_to_end):
    mine, other = create_pipeline(name="mine"), create_pipeline(name="other")
    run = run_to_end(mine["id"])
    assert client.get(f"/pipelines/{other['id']}/runs/{run['id']}").status_code == 404
    assert client.get(f"/pipelines/{uuid.uuid4()}/runs/{run['id']}").status_code == 404


def test_phase_timings_are_in_load_order_with_their_share():
    from etl_console.console.charts import phase_timings

    # As JSONB returns them: shortest keys first.
    shown = phase_timings({"copy_s": 3.0, "index_s": 0.5, "total_s": 4.0, "zzz_s": 0.1, "prepare_s": 0.4}, 4.5)
    assert [phase.name for phase in shown.phases] == ["prepare_s", "copy_s", "index_s", "zzz_s"]
    assert [phase.percent for phase in shown.phases] == [10.0, 75.0, 12.5, 2.5]
    assert shown.phases[-1].label == "Zzz" and shown.total == 4.0 and shown.outside == 0.5
    assert phase_timings(None, 1.0) is None and phase_timings({}, 1.0) is None
