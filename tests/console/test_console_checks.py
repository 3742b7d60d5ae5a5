"""The quality gates panel on the pipeline page, and the gate results on the run page."""
from __future__ import annotations


from tests.console.conftest import HX, text
from tests.runner.helpers import film_rows_query


def checks_section(html: str) -> str:
    start = html.index('<section id="checks"')
    return html[start: html.index("</section>", start)]


def test_the_panel_shows_the_defaults_and_saves_with_htmx(client, create_pipeline, token):
    pipeline = create_pipeline()
    section = checks_section(text(client.get(f"/pipelines/{pipeline['id']}")))
    assert "refused over a non-empty target" in section and "Save quality gates" in section
    response = client.post(f"/pipelines/{pipeline['id']}/checks", headers=HX, data={
        "csrf_token": token, "min_rows": "10", "max_drop_percent": "20", "not_null_columns": "title, rating",
        "unique_keys": "title\nfilm_id, title", "assertion_name": ["in range", ""],
        "assertion_sql": ["SELECT * FROM loaded WHERE rating > 10", ""],
    })
    assert response.status_code == 200, text(response)
    assert "Quality gates saved" in text(response)
    saved = client.get(f"/api/v1/pipelines/{pipeline['id']}/checks").get_json()
    assert saved["min_rows"] == 10 and saved["max_drop_percent"] == 20 and saved["allow_empty"] is False
    assert saved["not_null_columns"] == ["title", "rating"]
    assert saved["unique_keys"] == [["title"], ["film_id", "title"]]
    assert saved["assertions"] == [{"name": "in range", "sql": "SELECT * FROM loaded WHERE rating > 10"}]


def test_a_refused_save_shows_why_inline_and_without_javascript(client, create_pipeline, token):
    pipeline = create_pipeline()
    data = {"csrf_token": token, "min_rows": "lots", "assertion_name": ["x"], "assertion_sql": ["SELECT 1"]}
    inline = client.post(f"/pipelines/{pipeline['id']}/checks", headers=HX, data=data)
    assert inline.status_code == 400 and "min rows must be a number" in text(inline)
    page = client.post(f"/pipelines/{pipeline['id']}/checks", data={**data, "min_rows": "1",
                       "assertion_sql": ["DELETE FROM analytics.film_dim"]})
    assert page.status_code == 400
    assert "assertion &#39;x&#39;" in checks_section(text(page)) or "assertion 'x'" in checks_section(text(page))
    assert client.get(f"/api/v1/pipelines/{pipeline['id']}/checks").get_json()["min_rows"] is None


def test_the_run_page_shows_gate_results_and_the_exchange(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(source_query=film_rows_query(100))
    client.put(f"/api/v1/pipelines/{pipeline['id']}/checks", json={"min_rows": 1000})
    run = run_to_end(pipeline["id"])
    assert run["status"] == "FAILED"
    page = text(client.get(f"/pipelines/{pipeline['id']}/runs/{run['id']}"))
    assert 'data-gate="min_rows" class="failed"' in page and "100 rows loaded, at least 1000 required" in page
    client.put(f"/api/v1/pipelines/{pipeline['id']}/checks", json={"min_rows": 10})
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS"
    page = text(client.get(f"/pipelines/{pipeline['id']}/runs/{run['id']}"))
    assert 'data-gate="min_rows" class="passed"' in page and "rename (a new table in place of the old)" in page
