"""The pipeline page's "Upstreams and retries" panel and the run page's attempt."""
from __future__ import annotations

import pytest

from tests.console.conftest import HX, text


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}  # nothing here runs a pipeline


def flow_section(html: str) -> str:
    start = html.index('<section id="flow"')
    return html[start: html.index("</section>", start)]


def test_upstream_and_downstream_links_and_the_default_policy(client, create_pipeline):
    a, b = create_pipeline(name="a_up"), create_pipeline(name="b_down")
    client.put(f"/api/v1/pipelines/{b['id']}/upstreams", json={"upstreams": ["a_up"]})
    section_a = flow_section(text(client.get(f"/pipelines/{a['id']}")))
    assert f'href="/pipelines/{b["id"]}">b_down</a>' in section_a and "no upstream pipeline" in section_a
    section_b = flow_section(text(client.get(f"/pipelines/{b['id']}")))
    assert f'href="/pipelines/{a["id"]}">a_up</a>' in section_b
    assert "none: a failed run is not retried" in section_b and "never" in section_b


def test_save_upstreams_with_htmx_and_a_cycle_is_refused_inline(client, create_pipeline, token):
    a, b = create_pipeline(name="a1"), create_pipeline(name="b1")
    response = client.post(f"/pipelines/{b['id']}/upstreams", data={"csrf_token": token, "upstreams": " a1 "},
                           headers=HX)
    assert response.status_code == 200 and "Upstreams saved." in text(response)
    refused = client.post(f"/pipelines/{a['id']}/upstreams", data={"csrf_token": token, "upstreams": "b1"},
                          headers=HX)
    assert refused.status_code == 409
    assert "upstreams would form a cycle: a1 → b1 → a1" in text(refused)
    assert 'value="b1"' in text(refused)  # what was typed stays
    unknown = client.post(f"/pipelines/{a['id']}/upstreams", data={"csrf_token": token, "upstreams": "zz"})
    assert unknown.status_code == 400 and "upstream pipeline &#39;zz&#39; does not exist" in text(unknown)
    assert client.get(f"/api/v1/pipelines/{a['id']}/upstreams").get_json()["upstreams"] == []


def test_save_retries_and_a_bad_value_is_explained(client, create_pipeline, token):
    pipeline = create_pipeline()
    form = {"csrf_token": token, "max_retries": "3", "retry_initial_delay_s": "30", "retry_backoff_factor": "2",
            "retry_max_delay_s": "600", "retry_jitter": "0.1", "auto_pause_after_failures": "5"}
    response = client.post(f"/pipelines/{pipeline['id']}/retries", data=form, headers=HX)
    assert response.status_code == 200 and "Retry policy saved." in text(response)
    assert "3 after a failure, waiting 30 s × 2 each time (at most 600 s, ± 10 %)" in text(response)
    api = client.get(f"/api/v1/pipelines/{pipeline['id']}/retries").get_json()
    assert (api["max_retries"], api["auto_pause_after_failures"], api["retry_jitter"]) == (3, 5, 0.1)

    bad = client.post(f"/pipelines/{pipeline['id']}/retries", data={**form, "retry_jitter": "2"}, headers=HX)
    assert bad.status_code == 400 and "Jitter: Input should be less than or equal to 1" in text(bad)
    no_js = client.post(f"/pipelines/{pipeline['id']}/retries", data={**form, "max_retries": "x"})
    assert no_js.status_code == 400 and "Retries: &#39;x&#39; is not a number" in text(no_js)
    assert client.post(f"/pipelines/{pipeline['id']}/retries", data={**form, "csrf_token": ""}).status_code == 400


def test_the_run_page_shows_the_attempt_and_the_run_it_retries(client, create_pipeline, sql):
    pipeline = create_pipeline()
    first, second = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, trigger, finished_at, error_message, rows_read, rows_written) "
        "VALUES (%s, %s, 'FAILED', 'manual', now(), 'boom', 0, 0)", (first, pipeline["id"]))
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, trigger, attempt, retry_of, finished_at, rows_read, rows_written) "
        "VALUES (%s, %s, 'SUCCESS', 'retry', 2, %s, now(), 0, 0)", (second, pipeline["id"], first))
    page = text(client.get(f"/pipelines/{pipeline['id']}/runs/{second}"))
    assert "Retry of a failed run" in page
    assert f'<dd class="attempt">2 (retries <a href="/pipelines/{pipeline["id"]}/runs/{first}">the failed run</a>)' in page
    assert f'<a href="/pipelines/{pipeline["id"]}/runs/{second}">retried</a>' in text(
        client.get(f"/pipelines/{pipeline['id']}/runs/{first}"))


def test_a_waiting_retry_is_shown_on_the_pipeline_page(client, create_pipeline, sql):
    pipeline = create_pipeline()
    failed, retry = "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444"
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, trigger, finished_at, error_message, rows_read, "
        "rows_written) VALUES (%s, %s, 'FAILED', 'manual', now(), 'boom', 0, 0)", (failed, pipeline["id"]))
    sql("INSERT INTO etl_pipeline_runs (id, pipeline_id, status, trigger, attempt, retry_of, not_before, rows_read, "
        "rows_written) VALUES (%s, %s, 'RUNNING', 'retry', 2, %s, now() + interval '10 minutes', 0, 0)",
        (retry, pipeline["id"], failed))
    sql("UPDATE etl_pipelines SET status = 'FAILED' WHERE id = %s", (pipeline["id"],))
    page = text(client.get(f"/pipelines/{pipeline['id']}"))
    assert "Retry queued, waiting out its backoff" in page
    assert f'<a href="/pipelines/{pipeline["id"]}/runs/{retry}">attempt 2</a> not before' in flow_section(page)
    detail = text(client.get(f"/pipelines/{pipeline['id']}/runs/{retry}"))
    assert "waiting for its retry backoff (attempt 2, not before " in detail and "Not before" in detail
