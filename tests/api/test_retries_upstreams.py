"""GET/PUT .../retries, GET/PUT .../upstreams and GET .../lineage, as a client sees them."""
from __future__ import annotations

from tests.api.conftest import BASE, UNKNOWN_ID, body_of, detail_of


def test_retry_policy_defaults_then_put_keeps_fields_left_out(client, pipeline):
    url = f"{BASE}/{pipeline['id']}/retries"
    policy = body_of(client.get(url), 200)
    assert policy["max_retries"] == 0 and policy["auto_pause_after_failures"] is None
    assert policy["pending_retry"] is None and policy["consecutive_failures"] == 0

    put = body_of(client.put(url, json={"max_retries": 3, "retry_initial_delay_s": 0.5, "retry_jitter": 0,
                                        "auto_pause_after_failures": 2}), 200)
    assert put["max_retries"] == 3 and put["retry_initial_delay_s"] == 0.5 and put["retry_jitter"] == 0
    assert put["retry_backoff_factor"] == policy["retry_backoff_factor"]  # left out: kept
    assert body_of(client.get(url), 200) == put


def test_retry_policy_rejects_out_of_range_values_with_fastapi_422(client, pipeline):
    url = f"{BASE}/{pipeline['id']}/retries"
    errors = detail_of(client.put(url, json={"max_retries": -1, "retry_jitter": 1.5, "retry_backoff_factor": "x"}), 422)
    assert {tuple(e["loc"]) for e in errors} == {("body", "max_retries"), ("body", "retry_jitter"),
                                                ("body", "retry_backoff_factor")}
    assert detail_of(client.put(f"{BASE}/{UNKNOWN_ID}/retries", json={"max_retries": 1}), 404) == "Pipeline not found"


def _upstreams(client, pipeline, names, status=200):
    return body_of(client.put(f"{BASE}/{pipeline['id']}/upstreams", json={"upstreams": names}), status)


def test_upstreams_by_name_or_id_and_downstreams_listed(client, create_pipeline):
    a, b, c = (create_pipeline(name=n) for n in ("a", "b", "c"))
    saved = _upstreams(client, c, ["a", b["id"]])
    assert [u["name"] for u in saved["upstreams"]] == ["a", "b"]
    assert [d["name"] for d in body_of(client.get(f"{BASE}/{a['id']}/upstreams"), 200)["downstreams"]] == ["c"]
    assert _upstreams(client, c, [])["upstreams"] == []


def test_a_cycle_is_refused_with_the_cycle_named(client, create_pipeline):
    a, b, c = (create_pipeline(name=n) for n in ("a", "b", "c"))
    _upstreams(client, b, ["a"])
    _upstreams(client, c, ["b"])
    assert detail_of(client.put(f"{BASE}/{a['id']}/upstreams", json={"upstreams": ["c"]}), 409) == \
        "upstreams would form a cycle: a → b → c → a"
    assert detail_of(client.put(f"{BASE}/{a['id']}/upstreams", json={"upstreams": ["a"]}), 409) == \
        "upstreams would form a cycle: a → a"
    assert body_of(client.get(f"{BASE}/{a['id']}/upstreams"), 200)["upstreams"] == []  # nothing saved


def test_unknown_upstream_and_bad_bodies(client, pipeline):
    url = f"{BASE}/{pipeline['id']}/upstreams"
    assert detail_of(client.put(url, json={"upstreams": ["nope"]}), 400) == "upstream pipeline 'nope' does not exist"
    assert detail_of(client.put(url, json={}), 422)[0]["loc"] == ["body", "upstreams"]
    assert detail_of(client.put(f"{BASE}/{UNKNOWN_ID}/upstreams", json={"upstreams": []}), 404) == "Pipeline not found"


def test_lineage_is_the_transitive_graph_through_the_pipeline(client, create_pipeline):
    a, b, c, d, x = (create_pipeline(name=n) for n in ("a", "b", "c", "d", "x"))
    _upstreams(client, b, ["a"])
    _upstreams(client, c, ["b"])
    _upstreams(client, d, ["b"])
    _upstreams(client, x, ["a"])  # a sibling of b: not b's lineage
    graph = body_of(client.get(f"{BASE}/{b['id']}/lineage"), 200)
    assert [(n["name"], n["relation"]) for n in graph["nodes"]] == [
        ("a", "upstream"), ("b", "self"), ("c", "downstream"), ("d", "downstream")]
    assert {(e["from_name"], e["to_name"]) for e in graph["edges"]} == {("a", "b"), ("b", "c"), ("b", "d")}
    edge = next(e for e in graph["edges"] if e["to_name"] == "b")
    assert edge["from"] == a["id"] and edge["to"] == b["id"]
    assert detail_of(client.get(f"{BASE}/{UNKNOWN_ID}/lineage"), 404) == "Pipeline not found"


def test_openapi_documents_the_new_endpoints(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for suffix in ("retries", "upstreams", "lineage"):
        assert f"/api/v1/pipelines/{{pipeline_id}}/{suffix}" in paths


def test_changes_are_audited(client, create_pipeline, sql):
    a, b = create_pipeline(name="audited_a"), create_pipeline(name="audited_b")
    body_of(client.put(f"{BASE}/{b['id']}/retries", json={"max_retries": 2}), 200)
    _upstreams(client, b, ["audited_a"])
    rows = sql("SELECT action, before, after FROM etl_audit_log WHERE object_id = %s AND action LIKE 'pipeline.%%.put' "
               "ORDER BY id", (b["id"],))
    assert [row[0] for row in rows] == ["pipeline.retries.put", "pipeline.upstreams.put"]
    assert rows[0][1]["max_retries"] == 0 and rows[0][2]["max_retries"] == 2
    assert rows[1][1] == {"upstreams": []} and rows[1][2] == {"upstreams": ["audited_a"]}
