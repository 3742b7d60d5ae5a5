"""The pipeline page's reconciliation panel: the check recorded after the latest successful run, a
mismatch as a red banner with counts and samples, and "Reconcile now" with htmx and without."""
from __future__ import annotations

import json

from etl_console.extensions import etl_of
from tests.conftest import FILM_DIM_QUERY, wait_for
from tests.console.conftest import HX, counting_queries, text
from tests.console.markup import parse




def panel(html: str) -> str:
    """The reconciliation section of a page (or the fragment itself)."""
    start = html.index('<section id="reconciliation"')
    return html[start: html.index("</section>", start)]


def banner(html: str) -> str | None:
    found = parse(html).first("p.mismatch-title")
    return found.text if found is not None else None


def stat(html: str, name: str) -> str:
    """A number the panel's stats show: source-rows, target-rows, missing, extra."""
    return parse(html).one(f"dl.check-stats dd.{name}").text


def recorded_check(client, pipeline_id: str, run_id: str) -> dict:
    url = f"/api/v1/pipelines/{pipeline_id}/runs/{run_id}"
    return wait_for(lambda: client.get(url).get_json()["reconciliation"], message="the run's reconciliation")


def insert_success(sql, pipeline_id: str, details: dict | None, finished_ago: str = "1 second") -> str:
    return sql(
        "INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read, rows_written,"
        " worker_id, trigger, details) VALUES (gen_random_uuid(), %s, 'SUCCESS', now() - interval '1 minute',"
        " now() - %s::interval, 10, 10, 'elsewhere', 'manual', %s::jsonb) RETURNING id::text",
        (pipeline_id, finished_ago, json.dumps(details) if details is not None else None),
    )[0][0]


def delete_films(sql, count: int) -> list[str]:
    rows = sql("DELETE FROM analytics.film_dim WHERE film_id IN (SELECT film_id FROM analytics.film_dim "
               "ORDER BY film_id LIMIT %s) RETURNING film_id::text", (count,))
    return sorted(row[0] for row in rows)


def test_before_any_successful_run_the_panel_says_so(client, create_pipeline):
    pipeline = create_pipeline(name="never_ran")
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    section = panel(html)
    assert "No successful run yet" in section
    assert 'hx-trigger="runs-changed from:body"' in section  # no polling: nothing is coming
    button = parse(section).one("form.reconcile-form button")
    assert button.attrs["type"] == "submit" and button.text == "Reconcile now"


def test_the_check_after_a_run_is_shown_with_a_link_to_that_run(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(name="checked")
    run = run_to_end(pipeline["id"])
    check = recorded_check(client, pipeline["id"], run["id"])
    assert check["match"] is True
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    section = panel(html)
    assert "Target matches source: 2,000 rows" in section and banner(html) is None
    assert f'href="/pipelines/{pipeline["id"]}/runs/{run["id"]}"' in section
    assert stat(section, "source-rows") == "2,000" and stat(section, "missing") == "0"
    assert "has-mismatch" not in section


def test_a_recorded_mismatch_is_a_red_banner_with_counts_and_samples(client, create_pipeline, sql):
    pipeline = create_pipeline(name="drifted")
    missing = [{"film_id": f"00000000-0000-0000-0000-00000000000{i}"} for i in range(1, 4)]
    insert_success(sql, pipeline["id"], {"reconciliation": {
        "key": ["film_id"], "source_rows": 2000, "target_rows": 1998, "missing_in_target": 12,
        "extra_in_target": 1, "missing_sample": missing, "extra_sample": [{"film_id": "<b>odd</b>"}],
        "match": False}})
    html = text(client.get(f"/pipelines/{pipeline['id']}"))
    section = panel(html)
    assert banner(html) == "Target does not match source: 12 keys missing, 1 extra"
    assert 'class="card reconciliation has-mismatch"' in html and 'role="alert"' in section
    assert "Missing in target" in section and "(first 3 of 12)" in section
    for key in missing:
        assert f"<code>{key['film_id']}</code>" in section
    assert "<code>&lt;b&gt;odd&lt;/b&gt;</code>" in section  # sample values are escaped
    missing_count = parse(section).one("dl.check-stats dd.missing")
    assert missing_count.text == "12" and missing_count.parent.classes == ["bad"]
    assert missing_count.parent.one("dt").text == "Missing in target"

    # Composite keys read as name=value pairs; repeated source keys are explained.
    insert_success(sql, pipeline["id"], {"reconciliation": {
        "key": ["a", "b"], "source_rows": 10, "target_rows": 8, "missing_in_target": 0, "extra_in_target": 0,
        "missing_sample": [], "extra_sample": [], "match": False}})
    section = panel(text(client.get(f"/pipelines/{pipeline['id']}")))
    assert banner(section) == "Target does not match source: 0 keys missing, 0 extra"
    assert "the source repeats some <code>a, b</code> values" in section


def test_a_check_that_could_not_run_says_why(client, create_pipeline, sql):
    pipeline = create_pipeline(name="check_failed")
    insert_success(sql, pipeline["id"], {"reconciliation": {"error": "canceling statement due to statement timeout"}})
    section = panel(text(client.get(f"/pipelines/{pipeline['id']}")))
    assert "The check could not run: canceling statement due to statement timeout" in section


def test_the_panel_polls_only_while_the_check_after_a_run_is_due(client, create_pipeline, sql):
    pipeline = create_pipeline(name="pending")
    insert_success(sql, pipeline["id"], None, finished_ago="1 second")
    fragment = text(client.get(f"/pipelines/{pipeline['id']}/reconciliation", headers=HX))
    assert fragment.lstrip().startswith('<section id="reconciliation"')
    assert 'hx-trigger="runs-changed from:body, load delay:1s"' in fragment
    assert "Comparing source and target after the run" in fragment
    # Longer ago than the check can take (statement timeout + 30 s): it is not coming; stop asking.
    sql("UPDATE etl_pipeline_runs SET finished_at = now() - interval '10 minutes' WHERE pipeline_id = %s",
        (pipeline["id"],))
    fragment = text(client.get(f"/pipelines/{pipeline['id']}/reconciliation", headers=HX))
    assert "load delay" not in fragment and "No check was recorded for that run" in fragment


def test_reconcile_now_shows_the_mismatch_inline(client, create_pipeline, run_to_end, token, sql):
    pipeline = create_pipeline(name="reconcile_me")
    run_to_end(pipeline["id"])
    deleted = delete_films(sql, 4)
    sql("INSERT INTO analytics.film_dim VALUES ('00000000-0000-0000-0000-0000000000aa', 'stray', 1)")
    api = client.post(f"/api/v1/pipelines/{pipeline['id']}/reconcile").get_json()

    response = client.post(f"/pipelines/{pipeline['id']}/reconcile", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 200 and "X-Inline-Error" not in response.headers
    fragment = text(response)
    assert fragment.lstrip().startswith('<section id="reconciliation"')
    assert banner(fragment) == (f"Target does not match source: {api['missing_in_target']} keys missing, "
                                f"{api['extra_in_target']} extra") == "Target does not match source: 4 keys missing, 1 extra"
    assert "Checked now, on request." in fragment
    assert len(parse(fragment).select("ul.keys")[0].select("li")) == 4
    for film_id in deleted:
        assert f"<code>{film_id}</code>" in fragment
    assert "<code>00000000-0000-0000-0000-0000000000aa</code>" in fragment
    assert stat(fragment, "target-rows") == "1,997"

    # Without JavaScript the form posts and the whole page comes back with the answer in place.
    page = client.post(f"/pipelines/{pipeline['id']}/reconcile", data={"csrf_token": token})
    assert page.status_code == 200 and "<h1>reconcile_me</h1>" in text(page)
    assert banner(text(page)) == "Target does not match source: 4 keys missing, 1 extra"


def test_reconcile_now_that_cannot_run_shows_the_services_message(client, create_pipeline, token):
    pipeline = create_pipeline(name="bad_source", source_query=FILM_DIM_QUERY + " WHERE 1 / 0 = 1")
    response = client.post(f"/pipelines/{pipeline['id']}/reconcile", data={"csrf_token": token}, headers=HX)
    # A 400 that console.js swaps in place (the header), instead of a toast.
    assert response.status_code == 400 and response.headers["X-Inline-Error"] == "true"
    api = client.post(f"/api/v1/pipelines/{pipeline['id']}/reconcile")
    assert api.status_code == 400
    message = parse(response).one("p.notice.error#reconcile-error")
    assert message.attrs["role"] == "alert"
    assert message.text == api.get_json()["detail"]
    assert "division by zero" in message.text
    page = client.post(f"/pipelines/{pipeline['id']}/reconcile", data={"csrf_token": token})
    assert page.status_code == 400 and 'id="reconcile-error"' in text(page) and "<h1>bad_source</h1>" in text(page)


def test_reconcile_now_needs_the_csrf_token_and_a_known_pipeline(client, create_pipeline, token):
    pipeline = create_pipeline()
    refused = client.post(f"/pipelines/{pipeline['id']}/reconcile", headers=HX)
    assert refused.status_code == 400 and "CSRF token is missing" in text(refused)
    missing = client.post("/pipelines/00000000-0000-0000-0000-000000000000/reconcile",
                          data={"csrf_token": token}, headers=HX)
    assert missing.status_code == 404 and "Pipeline not found" in text(missing)
    assert client.get("/pipelines/00000000-0000-0000-0000-000000000000/reconciliation").status_code == 404


def test_the_latest_check_is_one_statement_through_the_history_index(app, client, create_pipeline, sql):
    pipeline = create_pipeline(name="many_runs")
    # 20,000 runs, the newest 2,000 of them FAILED: the newest SUCCESS is deep in the index.
    sql(
        """
        INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read, rows_written,
                                       worker_id, trigger, details)
        SELECT gen_random_uuid(), %(pid)s, CASE WHEN i <= 2000 THEN 'FAILED' ELSE 'SUCCESS' END,
               now() - make_interval(mins => i), now() - make_interval(mins => i) + interval '1 second', 5, 5,
               'seed', 'manual',
               jsonb_build_object('reconciliation', jsonb_build_object(
                   'key', jsonb_build_array('film_id'), 'source_rows', i, 'target_rows', i, 'missing_in_target', 0,
                   'extra_in_target', 0, 'missing_sample', '[]'::jsonb, 'extra_sample', '[]'::jsonb, 'match', true))
        FROM generate_series(1, 20000) AS i
        """,
        {"pid": pipeline["id"]},
    )
    sql("ANALYZE etl_pipeline_runs")
    with counting_queries(app, with_parameters=True) as statements:
        fragment = text(client.get(f"/pipelines/{pipeline['id']}/reconciliation", headers=HX))
    assert len(statements) == 1, statements
    assert "Target matches source: 2,001 rows" in fragment  # run 2,001: the newest success
    raw = etl_of(app).database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statements[0][0], statements[0][1])
        plan = json.dumps(cursor.fetchone()[0])
    finally:
        raw.close()
    assert "ix_etl_pipeline_runs_history" in plan and '"Node Type": "Sort"' not in plan, plan
