"""The tasks editor on a PYTHON pipeline's page: add from the installed kinds, edit a config with the
server's validation message shown inline, reorder, remove; with htmx and as plain forms; and the
run page's per-task rows and time."""
from __future__ import annotations

import html
import json

from tests.console.conftest import HX, text


def tasks_section(page: str) -> str:
    start = page.index('<section id="tasks"')
    return html.unescape(page[start: page.index("</section>", start)])


def kinds(client, pipeline_id) -> list[str]:
    return [t["kind"] for t in client.get(f"/api/v1/pipelines/{pipeline_id}/tasks").get_json()["tasks"]]


def test_the_form_offers_python_and_a_sql_page_has_no_editor(client, create_pipeline):
    assert '<option value="PYTHON"' in text(client.get("/pipelines/new"))
    sql_pipeline = create_pipeline()
    assert '<section id="tasks"' not in text(client.get(f"/pipelines/{sql_pipeline['id']}"))


def test_add_edit_reorder_remove_with_htmx(client, create_pipeline, token):
    pipeline = create_pipeline(type="PYTHON")
    url = f"/pipelines/{pipeline['id']}/tasks"
    section = tasks_section(text(client.get(f"/pipelines/{pipeline['id']}")))
    assert "No tasks: the source's rows are loaded unchanged." in section
    assert '<option value="normalize_text">' in section and '<option value="hash">' in section

    added = client.post(url, headers=HX, data={"csrf_token": token, "action": "add", "position": "new",
                                               "kind": "normalize_text", "config": '{"columns": ["title"]}'})
    assert added.status_code == 200 and "Task 1 (normalize_text) added." in text(added)
    client.post(url, headers=HX, data={"csrf_token": token, "action": "add", "position": "new",
                                       "kind": "fill_nulls", "config": '{"values": {"rating": 0}}'})
    assert kinds(client, pipeline["id"]) == ["normalize_text", "fill_nulls"]

    refused = client.post(url, headers=HX, data={"csrf_token": token, "action": "save", "position": "1",
                                                 "config": '{"columns": ["title"], "case": "shouting"}'})
    assert refused.status_code == 400
    section = tasks_section(text(refused))
    assert "task 1 (normalize_text): invalid config: case: Must be one of: lower, upper, title." in section
    assert '"case": "shouting"' in section  # what was typed stays in the box

    saved = client.post(url, headers=HX, data={"csrf_token": token, "action": "save", "position": "1",
                                               "config": '{"columns": ["title"], "case": "upper"}'})
    assert saved.status_code == 200
    moved = client.post(url, headers=HX, data={"csrf_token": token, "action": "down", "position": "1"})
    assert moved.status_code == 200 and "moved to position 2" in text(moved)
    tasks = client.get(f"/api/v1/pipelines/{pipeline['id']}/tasks").get_json()["tasks"]
    assert [(t["kind"], t["config"]) for t in tasks] == [("fill_nulls", {"values": {"rating": 0}}),
                                                         ("normalize_text", {"columns": ["title"], "case": "upper"})]
    removed = client.post(url, headers=HX, data={"csrf_token": token, "action": "remove", "position": "1"})
    assert removed.status_code == 200 and kinds(client, pipeline["id"]) == ["normalize_text"]


def test_plain_forms_without_javascript(client, create_pipeline, token):
    pipeline = create_pipeline(type="PYTHON")
    url = f"/pipelines/{pipeline['id']}/tasks"
    done = client.post(url, data={"csrf_token": token, "action": "add", "position": "new", "kind": "rename",
                                  "config": '{"columns": {"title": "title"}}'})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/pipelines/{pipeline['id']}#tasks")
    page = client.post(url, data={"csrf_token": token, "action": "add", "position": "new", "kind": "rename",
                                  "config": '{"columns": {"title": "name"}}'})
    assert page.status_code == 400
    section = tasks_section(text(page))
    assert "after the last task: column mismatch" in section and "name" in section
    not_json = client.post(url, data={"csrf_token": token, "action": "add", "position": "new", "kind": "select",
                                      "config": "{columns: title}"})
    assert not_json.status_code == 400 and "task 2 (select): the config is not JSON" in tasks_section(text(not_json))
    no_token = client.post(url, data={"action": "remove", "position": "1"})
    assert no_token.status_code in (400, 403)
    assert kinds(client, pipeline["id"]) == ["rename"]


def test_the_run_page_shows_rows_and_time_per_task(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(type="PYTHON")
    client.put(f"/api/v1/pipelines/{pipeline['id']}/tasks", json={"tasks": [
        {"kind": "filter", "config": {"column": "rating", "operator": "ge", "value": 5}}]})
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    page = text(client.get(f"/pipelines/{pipeline['id']}/runs/{run['id']}"))
    start = page.index('id="run-tasks"')
    section = page[start: page.index("</section>", start)]
    assert '<tr data-task="1">' in section and "<code>filter</code>" in section
    detail = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}").get_json()
    assert detail["tasks"][0]["rows_out"] == run["rows_written"] < detail["tasks"][0]["rows_in"] == run["rows_read"]
    assert json.dumps(detail["path"]).count("python") >= 1
