"""/api/v1/config: export, plan, apply and the document's JSON Schema, as a client sees them."""
from __future__ import annotations

import pytest
import yaml

from tests.api.conftest import body_of, detail_of
from tests.conftest import FILM_DIM_QUERY

BASE = "/api/v1/config"
OPERATOR = "config-operator-token-aaaaaaaaa"
VIEWER = "config-viewer-token-bbbbbbbbbbb"
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False, "api_tokens": f"{OPERATOR}:operator,{VIEWER}:viewer"}


@pytest.fixture
def client(app):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {OPERATOR}"
    return client


@pytest.fixture
def pipelines(client):
    ids = {}
    for name, batch_size in (("film_dim_full", 500), ("film_dim_copy", 100)):
        created = client.post("/api/v1/pipelines/", json={
            "name": name, "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY,
            "batch_size": batch_size})
        ids[name] = body_of(created, 201)["id"]
    return ids


def exported(client, query: str = "") -> str:
    response = client.get(f"{BASE}/export{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/yaml"
    return response.get_data(as_text=True)


def test_export_plan_apply_plan(client, pipelines):
    text = exported(client).replace("batch_size: 500", "batch_size: 250")
    plan = body_of(client.post(f"{BASE}/plan", data=text, headers=YAML), 200)
    assert plan["changes"] == [{"kind": "pipeline", "name": "film_dim_full", "action": "update",
                                "fields": [{"field": "batch_size", "old": 500, "new": 250}]}]
    assert plan["summary"] == {"create": 0, "update": 1, "delete": 0} and plan["applied"] is False
    assert "batch_size: 500 -> 250" in plan["text"]
    applied = body_of(client.post(f"{BASE}/apply", data=text, headers=YAML), 200)
    assert applied["applied"] is True and applied["summary"]["update"] == 1
    assert body_of(client.get(f"/api/v1/pipelines/{pipelines['film_dim_full']}"), 200)["batch_size"] == 250
    assert body_of(client.post(f"{BASE}/plan", data=text, headers=YAML), 200)["changes"] == []
    assert body_of(client.post(f"{BASE}/apply", data=text, headers=YAML), 200)["changes"] == []


def test_export_of_named_pipelines_and_prune(client, pipelines):
    one = exported(client, "?pipeline=film_dim_full")
    assert [p["name"] for p in yaml.safe_load(one)["pipelines"]] == ["film_dim_full"]
    both = exported(client, "?pipeline=film_dim_full&pipeline=film_dim_copy")
    assert both == exported(client)
    assert detail_of(client.get(f"{BASE}/export?pipeline=nope"), 404) == "no pipeline named 'nope'"
    plan = body_of(client.post(f"{BASE}/plan?prune=true", data=one, headers={"Content-Type": "text/plain"}), 200)
    assert [(c["name"], c["action"]) for c in plan["changes"]] == [("film_dim_copy", "delete")]
    body_of(client.post(f"{BASE}/apply?prune=true", data=one, headers=YAML), 200)
    assert [p["name"] for p in body_of(client.get("/api/v1/pipelines/"), 200)] == ["film_dim_full"]


def test_an_invalid_pipeline_is_a_422_naming_it_and_nothing_changes(client, pipelines):
    before = exported(client)
    document = yaml.safe_load(before)
    document["pipelines"][0]["batch_size"] = 7
    document["pipelines"].append({"name": "bad", "target_table": "analytics.film_dim", "source_query": "SELECT 1",
                                  "batch_size": "many"})
    errors = detail_of(client.post(f"{BASE}/apply", data=yaml.safe_dump(document), headers=YAML), 422)
    assert errors == [{"type": "value_error", "loc": ["body", "pipelines", "bad", "batch_size"],
                       "msg": "Input should be a valid integer, unable to parse string as an integer", "input": None}]
    assert exported(client) == before


def test_a_service_refusal_is_a_400_naming_the_pipeline(client, pipelines):
    before = exported(client)
    document = yaml.safe_load(before)  # plus one pipeline reading a connection that does not exist
    document["pipelines"].append({"name": "zz", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY,
                                  "source_connection": "nowhere"})
    detail = detail_of(client.post(f"{BASE}/apply", data=yaml.safe_dump(document), headers=YAML), 400)
    assert detail == "pipeline 'zz': source_connection 'nowhere' does not exist; nothing was changed"
    assert exported(client) == before


def test_a_running_pipeline_is_a_409(client, pipelines):
    text = exported(client).replace("batch_size: 500", "batch_size: 250")
    body_of(client.post(f"/api/v1/pipelines/{pipelines['film_dim_full']}/run"), 200)  # no runner: it stays RUNNING
    plan = body_of(client.post(f"{BASE}/plan", data=text, headers=YAML), 200)
    assert plan["warnings"] == ["pipeline 'film_dim_full' is RUNNING: apply will refuse until its run ends"]
    detail = detail_of(client.post(f"{BASE}/apply", data=text, headers=YAML), 409)
    assert "'film_dim_full'" in detail and "nothing was changed" in detail


def test_bad_bodies(client):
    assert client.post(f"{BASE}/plan", data="x", headers={"Content-Type": "image/png"}).status_code == 415
    unsafe = detail_of(client.post(f"{BASE}/plan", data="!!python/object/apply:os.system ['id']", headers=YAML), 422)
    assert "unsupported YAML tag" in unsafe[0]["msg"] and unsafe[0]["loc"] == ["body"]
    broken = detail_of(client.post(f"{BASE}/plan", data="version: [1", headers=YAML), 422)
    assert broken[0]["msg"].startswith("not valid YAML")
    missing = detail_of(client.post(f"{BASE}/plan", data="pipelines: []", headers=YAML), 422)
    assert missing[0]["loc"] == ["body", "version"] and missing[0]["msg"] == "Field required"


def test_viewers_export_and_read_the_schema_but_do_not_plan_or_apply(app, client, pipelines):
    viewer = app.test_client()
    viewer.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {VIEWER}"
    assert viewer.get(f"{BASE}/export").status_code == 200
    for action in ("plan", "apply"):
        assert viewer.post(f"{BASE}/{action}", data="version: 1", headers=YAML).status_code == 403


def test_json_schema_describes_the_document(client):
    schema = body_of(client.get(f"{BASE}/schema"), 200)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["version"] and schema["additionalProperties"] is False
    assert schema["properties"]["pipelines"]["items"] == {"$ref": "#/$defs/PipelineDocument"}
    pipeline = schema["$defs"]["PipelineDocument"]
    assert pipeline["properties"]["batch_size"]["minimum"] == 1
    assert {"schedule", "tasks", "checks", "source_connection"} <= set(pipeline["properties"])
    assert "password" not in schema["$defs"]["ConnectionDocument"]["properties"]
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "application/yaml" in paths["/api/v1/config/apply"]["post"]["requestBody"]["content"]
    assert "application/yaml" in paths["/api/v1/config/export"]["get"]["responses"]["200"]["content"]
