"""Beyond v1, in new endpoints: state, reconciliation, schedules, run detail, list filters and pages."""
from __future__ import annotations

import re

import pytest

from tests.conftest import wait_for
from tests.runner.helpers import film_rows_query


@pytest.fixture
def app_overrides():
    return {}  # with a runner, unlike the rest of tests/api


def test_state_view_set_reset_and_audit(client, create_pipeline):
    pipeline = create_pipeline(mode="incremental", incremental_key="film_id")
    url = f"/api/v1/pipelines/{pipeline['id']}/state"
    assert client.get(url).get_json() == {
        "pipeline_id": pipeline["id"], "incremental_key": "film_id", "watermark": None, "updated_at": None,
        "changes": []}
    put = client.put(url, json={"watermark": "2021-01-01 00:00:00+00"})
    assert put.status_code == 200 and put.get_json()["watermark"] == "2021-01-01 00:00:00+00"
    reset = client.delete(url)
    assert reset.status_code == 200 and reset.get_json()["watermark"] is None
    changes = reset.get_json()["changes"]
    assert [(c["old_watermark"], c["new_watermark"], c["changed_by"]) for c in changes] == [
        ("2021-01-01 00:00:00+00", None, "api"), (None, "2021-01-01 00:00:00+00", "api")]
    assert len(client.delete(url).get_json()["changes"]) == 2  # nothing changed, nothing recorded
    assert client.put(url, json={}).status_code == 422
    assert client.get("/api/v1/pipelines/00000000-0000-0000-0000-000000000000/state").status_code == 404


def test_state_is_refused_while_running(no_runner, client, create_pipeline):
    # no_runner: the run stays queued, so the pipeline stays RUNNING
    pipeline = create_pipeline()
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    for response in (client.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "x"}),
                     client.delete(f"/api/v1/pipelines/{pipeline['id']}/state")):
        assert response.status_code == 409
        assert response.get_json() == {"detail": "Cannot change the state of a pipeline while it is RUNNING"}
    # Paused, but its run has not stopped yet (no runner here): the state is still refused.
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
    assert client.put(f"/api/v1/pipelines/{pipeline['id']}/state", json={"watermark": "x"}).status_code == 409


def test_reconcile_finds_deleted_and_extra_rows(client, create_pipeline, run_to_end, sql):
    pipeline = create_pipeline(source_query=film_rows_query(500))
    run = run_to_end(pipeline["id"])
    # Recorded just after the run's SUCCESS, by the same runner thread.
    detail = wait_for(lambda: client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}").get_json()
                      if client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}").get_json()["reconciliation"]
                      else None, message="the run's reconciliation")
    assert detail["reconciliation"]["match"] is True
    url = f"/api/v1/pipelines/{pipeline['id']}/reconcile"
    assert client.post(url).get_json() == {
        "key": ["film_id"], "source_rows": 500, "target_rows": 500, "missing_in_target": 0, "extra_in_target": 0,
        "missing_sample": [], "extra_sample": [], "match": True}
    deleted = sql("DELETE FROM analytics.film_dim WHERE film_id IN "
                  "(SELECT film_id FROM analytics.film_dim ORDER BY film_id LIMIT 3) RETURNING film_id::text")
    sql("INSERT INTO analytics.film_dim VALUES ('00000000-0000-0000-0000-000000000001', 'stray', 1)")
    report = client.post(url).get_json()
    assert (report["source_rows"], report["target_rows"]) == (500, 498)
    assert report["missing_in_target"] == 3 and report["extra_in_target"] == 1 and report["match"] is False
    assert sorted(row["film_id"] for row in report["missing_sample"]) == sorted(d[0] for d in deleted)
    assert report["extra_sample"] == [{"film_id": "00000000-0000-0000-0000-000000000001"}]


def test_schedule_set_validate_and_remove(client, create_pipeline):
    pipeline = create_pipeline()
    url = f"/api/v1/pipelines/{pipeline['id']}/schedule"
    assert client.get(url).get_json()["schedule"] is None
    bad = client.put(url, json={"schedule": "61 * * * *"})
    assert bad.status_code == 400
    assert bad.get_json()["detail"] == "schedule '61 * * * *' is not a valid cron expression (e.g. '*/15 * * * *')"
    good = client.put(url, json={"schedule": "*/5  * * * *"}).get_json()
    assert good["schedule"] == "*/5 * * * *"
    minute = int(re.search(r"T\d\d:(\d\d):00Z$", good["next_run_at"]).group(1))
    assert minute % 5 == 0
    assert "schedule" not in client.get(f"/api/v1/pipelines/{pipeline['id']}").get_json()
    assert client.delete(url).get_json()["schedule"] is None


def test_run_detail_and_its_errors(client, create_pipeline, run_to_end):
    pipeline = create_pipeline(source_query=film_rows_query(2500), batch_size=1000)
    run = run_to_end(pipeline["id"])
    detail = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}").get_json()
    assert detail["id"] == run["id"] and detail["pipeline_id"] == pipeline["id"]
    assert detail["trigger"] == "manual" and detail["status"] == "SUCCESS"
    assert detail["batches"] == {"size": 1000, "count": 3}
    assert detail["config"]["source_query"] == film_rows_query(2500)
    assert detail["duration_s"] > 0 and {"copy_s", "index_s", "total_s"} <= set(detail["timings"])
    other = create_pipeline()
    assert client.get(f"/api/v1/pipelines/{other['id']}/runs/{run['id']}").get_json() == {"detail": "Run not found"}
    bad = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs/nope").get_json()["detail"][0]
    assert bad["loc"] == ["path", "run_id"]


def test_list_filters_and_keyset_pages(client, create_pipeline):
    names = [f"page_{i}" for i in range(5)]
    for i, name in enumerate(names):
        create_pipeline(name=name, enabled=i % 2 == 0,
                        target_table="analytics.film_dim" if i < 3 else "analytics.film_rating_agg",
                        source_query="SELECT film_id, 1 AS ratings_count FROM ugc.ratings" if i >= 3 else
                        "SELECT id AS film_id FROM content.film_work")
    listing = lambda query: [p["name"] for p in client.get(f"/api/v1/pipelines/{query}").get_json()]  # noqa: E731
    assert listing("") == names
    assert listing("?enabled=false") == ["page_1", "page_3"]
    assert listing("?status=PAUSED") == ["page_1", "page_3"]
    assert listing("?target_table=analytics.film_rating_agg") == ["page_3", "page_4"]
    assert listing("?q=GE_4") == ["page_4"]
    assert listing("?q=%25") == []  # a literal percent sign, not a wildcard

    seen, url = [], "/api/v1/pipelines/?limit=2"
    while url:
        response = client.get(url)
        seen += [p["name"] for p in response.get_json()]
        link = response.headers.get("Link")
        url = re.match(r"<https?://[^/]+(.*)>; rel=\"next\"", link).group(1) if link else None
    assert seen == names
    assert client.get("/api/v1/pipelines/?cursor=garbage").status_code == 422


def test_a_repeated_parameter_pages_as_it_was_parsed(client, create_pipeline):
    """`?limit=1&limit=2` answered 2 rows but linked the next page with limit=1."""
    for i in range(5):
        create_pipeline(name=f"repeat_{i}")
    response = client.get("/api/v1/pipelines/?limit=1&limit=2&enabled=true")
    page = [p["name"] for p in response.get_json()]
    assert len(page) == 2
    next_url = re.match(r"<https?://[^/]+(.*)>; rel=\"next\"", response.headers["Link"]).group(1)
    assert "limit=2" in next_url and "limit=1" not in next_url and "enabled=true" in next_url
    following = [p["name"] for p in client.get(next_url).get_json()]
    assert len(following) == 2 and not set(following) & set(page)
