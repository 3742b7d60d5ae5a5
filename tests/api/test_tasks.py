"""GET/PUT /api/v1/pipelines/{id}/tasks and GET /api/v1/transforms: PYTHON pipelines' tasks are
checked when saved (kind, config, columns against the source and the target), never at run time
first; the v1 shapes are unchanged."""
from __future__ import annotations

import uuid

BASE = "/api/v1/pipelines"


def put_tasks(client, pipeline_id, tasks):
    return client.put(f"{BASE}/{pipeline_id}/tasks", json={"tasks": tasks})


def test_type_python_is_accepted_on_create_and_patch_with_the_v1_shape(client, create_pipeline):
    created = create_pipeline(type="PYTHON")
    assert created["type"] == "PYTHON"
    assert set(created) == {"id", "name", "description", "type", "mode", "enabled", "status", "target_table",
                            "batch_size"}
    sql_pipeline = create_pipeline()
    patched = client.patch(f"{BASE}/{sql_pipeline['id']}", json={"type": "PYTHON"})
    assert patched.status_code == 200 and patched.get_json()["type"] == "PYTHON"
    wrong = client.post(f"{BASE}/", json={"name": "x", "type": "RUST", "target_table": "analytics.film_dim",
                                          "source_query": "SELECT 1"})
    assert wrong.status_code == 422
    assert wrong.get_json()["detail"][0]["loc"] == ["body", "type"]
    assert wrong.get_json()["detail"][0]["msg"] == "Input should be 'SQL' or 'PYTHON'"


def test_python_pipelines_are_full_mode_only(client, create_pipeline):
    response = client.post(f"{BASE}/", json={"name": "inc", "type": "PYTHON", "mode": "incremental",
                                             "incremental_key": "film_id", "target_table": "analytics.film_dim",
                                             "source_query": "SELECT id AS film_id, title, rating FROM content.film_work"})
    assert response.status_code == 400
    assert response.get_json() == {"detail": "PYTHON pipelines load in full mode only"}


def test_get_and_put_replace_the_ordered_list(client, create_pipeline):
    pipeline = create_pipeline(type="PYTHON")
    assert client.get(f"{BASE}/{pipeline['id']}/tasks").get_json() == {"pipeline_id": pipeline["id"], "tasks": []}
    tasks = [
        {"kind": "normalize_text", "config": {"columns": ["title"], "case": "lower"}},
        {"kind": "fill_nulls", "config": {"values": {"rating": 0}}},
    ]
    response = put_tasks(client, pipeline["id"], tasks)
    assert response.status_code == 200, response.get_json()
    expected = [{"position": 1, **tasks[0]}, {"position": 2, **tasks[1]}]
    assert response.get_json()["tasks"] == expected
    assert client.get(f"{BASE}/{pipeline['id']}/tasks").get_json()["tasks"] == expected
    reordered = put_tasks(client, pipeline["id"], [tasks[1], tasks[0]]).get_json()["tasks"]
    assert [task["kind"] for task in reordered] == ["fill_nulls", "normalize_text"]
    assert put_tasks(client, pipeline["id"], []).get_json()["tasks"] == []
    # PipelineOut is untouched by tasks.
    assert set(client.get(f"{BASE}/{pipeline['id']}").get_json()) == {
        "id", "name", "description", "type", "mode", "enabled", "status", "target_table", "batch_size"}


def test_unknown_kind_lists_the_installed_ones(client, create_pipeline):
    pipeline = create_pipeline(type="PYTHON")
    response = put_tasks(client, pipeline["id"], [{"kind": "rename", "config": {"columns": {"title": "title"}}},
                                                  {"kind": "uppercase_everything"}])
    assert response.status_code == 400
    detail = response.get_json()["detail"]
    assert detail.startswith("task 2: unknown transform kind 'uppercase_everything' (installed: ")
    for kind in ("cast", "dedupe", "fill_nulls", "filter", "hash", "mask", "normalize_text", "parse_json",
                 "rename", "select"):
        assert kind in detail


def test_bad_config_names_the_task_and_the_field(client, create_pipeline):
    pipeline = create_pipeline(type="PYTHON")
    response = put_tasks(client, pipeline["id"], [{"kind": "cast", "config": {"columns": {"rating": "money"}}}])
    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("task 1 (cast): invalid config: columns.rating")
    response = put_tasks(client, pipeline["id"], [{"kind": "filter", "config": {"column": "rating", "operator": "in",
                                                                                  "value": 3}}])
    assert response.get_json()["detail"] == "task 1 (filter): invalid config: value: in needs a non-empty list"
    response = put_tasks(client, pipeline["id"], [{"kind": "select", "config": {"columns": ["title"], "colour": 1}}])
    assert response.get_json()["detail"] == "task 1 (select): invalid config: colour: Unknown field."


def test_columns_are_checked_task_by_task_and_against_the_target(client, create_pipeline):
    pipeline = create_pipeline(type="PYTHON")
    missing = put_tasks(client, pipeline["id"], [{"kind": "rename", "config": {"columns": {"title": "name"}}},
                                                 {"kind": "normalize_text", "config": {"columns": ["title"]}}])
    assert missing.status_code == 400
    assert missing.get_json()["detail"] == ("task 2 (normalize_text): no column title "
                                            "(columns here: film_id, name, rating)")
    mismatch = put_tasks(client, pipeline["id"], [{"kind": "rename", "config": {"columns": {"title": "name"}}}])
    assert mismatch.status_code == 400
    detail = mismatch.get_json()["detail"]
    assert detail.startswith("after the last task: column mismatch: source columns not in target "
                             "analytics.film_dim: name"), detail
    assert client.get(f"{BASE}/{pipeline['id']}/tasks").get_json()["tasks"] == []  # nothing saved


def test_sql_pipelines_refuse_tasks_and_a_python_pipeline_with_tasks_stays_python(client, create_pipeline):
    sql_pipeline = create_pipeline()
    response = put_tasks(client, sql_pipeline["id"], [{"kind": "normalize_text", "config": {"columns": ["title"]}}])
    assert response.status_code == 400
    assert response.get_json()["detail"] == ("tasks run only in PYTHON pipelines; this one is type SQL "
                                             "(PATCH its type to PYTHON first)")
    python = create_pipeline(type="PYTHON")
    assert put_tasks(client, python["id"], [{"kind": "normalize_text", "config": {"columns": ["title"]}}]).status_code == 200
    back = client.patch(f"{BASE}/{python['id']}", json={"type": "SQL"})
    assert back.status_code == 400
    assert "has 1 task(s), which only PYTHON pipelines run" in back.get_json()["detail"]


def test_404_409_and_422(client, create_pipeline, sql):
    missing = uuid.uuid4()
    assert client.get(f"{BASE}/{missing}/tasks").get_json() == {"detail": "Pipeline not found"}
    assert put_tasks(client, missing, []).status_code == 404
    pipeline = create_pipeline(type="PYTHON")
    sql("UPDATE etl_pipelines SET status = 'RUNNING' WHERE id = %s", (pipeline["id"],))
    busy = put_tasks(client, pipeline["id"], [])
    assert (busy.status_code, busy.get_json()) == (409, {"detail": "Cannot update pipeline while it is RUNNING"})
    sql("UPDATE etl_pipelines SET status = 'IDLE' WHERE id = %s", (pipeline["id"],))
    bad = client.put(f"{BASE}/{pipeline['id']}/tasks", json={"tasks": [{"config": {}}]})
    assert bad.status_code == 422
    assert bad.get_json()["detail"][0]["loc"][:2] == ["body", "tasks"]


def test_transforms_are_listed_with_docs_and_schemas(client):
    transforms = {t["kind"]: t for t in client.get("/api/v1/transforms").get_json()}
    assert {"select", "rename", "cast", "normalize_text", "fill_nulls", "filter", "dedupe", "hash", "mask",
            "parse_json"} <= set(transforms)
    hashing = transforms["hash"]
    assert "HMAC" in hashing["doc"] and hashing["source"] == "etl_console.transforms.builtin:HashColumns"
    assert hashing["config_schema"]["required"] == ["columns", "secret_env"]
    assert hashing["config_schema"]["properties"]["algorithm"]["enum"] == ["sha256", "sha512", "blake2b"]


def test_patching_the_query_or_target_rechecks_the_saved_tasks(client, create_pipeline):
    pipeline = create_pipeline(type="PYTHON")
    assert put_tasks(client, pipeline["id"], [{"kind": "normalize_text", "config": {"columns": ["title"]}}]).status_code == 200
    broken = client.patch(f"{BASE}/{pipeline['id']}", json={
        "source_query": "SELECT id AS film_id, title AS name, rating FROM content.film_work"})
    assert broken.status_code == 400
    assert broken.get_json()["detail"] == "task 1 (normalize_text): no column title (columns here: film_id, name, rating)"
    fine = client.patch(f"{BASE}/{pipeline['id']}", json={
        "source_query": "SELECT id AS film_id, upper(title) AS title, rating FROM content.film_work", "batch_size": 5})
    assert fine.status_code == 200 and fine.get_json()["batch_size"] == 5
    assert client.patch(f"{BASE}/{pipeline['id']}", json={"batch_size": 7}).status_code == 200  # no re-check needed
