"""Pipelines as code: export, plan and apply as the service layer offers them to the API and the CLI."""
from __future__ import annotations

import pytest
import yaml
from sqlalchemy.orm import Session

from etl_console.api.config_schemas import load_document
from etl_console.extensions import etl_of
from etl_console.services import config as config_service
from tests.conftest import FILM_DIM_QUERY, _truncate
from tests.connection_helpers import connection_fields

PASSWORD_ENV = "ETL_CONNECTION_PRODUCTION_PASSWORD"
SECRET_ENV = "ETL_ALERT_CHANNEL_OPS_SECRET"
WEBHOOK_SECRET = "webhook-secret-never-exported"
RATINGS_QUERY = "SELECT film_id, avg(rating)::float AS avg_rating, count(*) AS ratings_count\nFROM ugc.ratings\nGROUP BY film_id"


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


@pytest.fixture
def context(app, source_url):
    state = etl_of(app)
    environ = {PASSWORD_ENV: connection_fields(source_url)["password"], SECRET_ENV: WEBHOOK_SECRET}
    return config_service.context_for(state.config, state.database, load_document, environ=environ)


def apply(engine, document, context, **options):
    """As the API's request and the CLI do: apply in a transaction the caller commits."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return config_service.apply(session, document, context, **options)


def export(engine, names=None) -> str:
    with Session(engine) as session:
        return config_service.export_yaml(session, names)


@pytest.fixture
def world(client, source_url):
    """A connection (with a password), an alert channel (with a secret), a scheduled, checked pipeline
    reading the connection, alerting the channel, with retries; and a disabled one running after it."""
    connection = client.post("/api/v1/connections/", json={"name": "production", **connection_fields(source_url),
                                                           "max_concurrent_runs": 2})
    assert connection.status_code == 201, connection.get_data(as_text=True)
    first = client.post("/api/v1/pipelines/", json={
        "name": "film_dim_full", "description": "Full reload of film_dim", "target_table": "analytics.film_dim",
        "source_query": FILM_DIM_QUERY, "batch_size": 500, "source_connection": "production"}).get_json()
    client.put(f"/api/v1/pipelines/{first['id']}/schedule", json={"schedule": "*/15 * * * *"})
    client.put(f"/api/v1/pipelines/{first['id']}/checks", json={
        "min_rows": 10, "not_null_columns": ["title"],
        "assertions": [{"name": "rating range", "sql": "SELECT * FROM loaded WHERE rating NOT BETWEEN 0 AND 10"}]})
    second = client.post("/api/v1/pipelines/", json={
        "name": "ratings_full", "target_table": "analytics.film_rating_agg", "source_query": RATINGS_QUERY,
        "enabled": False}).get_json()
    channel = client.post("/api/v1/alert-channels/", json={"name": "ops", "kind": "webhook",
                                                          "url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET})
    assert channel.status_code == 201, channel.get_data(as_text=True)
    for path, body in (("alerts", {"channels": [{"channel_id": channel.get_json()["id"],
                                                 "events": ["run.recovered", "run.failed"]}], "freshness_minutes": 90}),
                       ("retries", {"max_retries": 3, "retry_initial_delay_s": 5})):
        response = client.put(f"/api/v1/pipelines/{first['id']}/{path}", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
    upstreams = client.put(f"/api/v1/pipelines/{second['id']}/upstreams", json={"upstreams": ["film_dim_full"]})
    assert upstreams.status_code == 200, upstreams.get_data(as_text=True)
    return {"film_dim_full": first["id"], "ratings_full": second["id"]}


def test_export_is_sorted_block_style_without_ids_state_or_secrets(engine, world, source_url):
    text = export(engine)
    document = yaml.safe_load(text)
    assert document["version"] == 1
    assert [p["name"] for p in document["pipelines"]] == ["film_dim_full", "ratings_full"]
    film = document["pipelines"][0]
    assert list(film) == sorted(film)
    assert film["batch_size"] == 500 and film["schedule"] == "*/15 * * * *"
    assert film["source_connection"] == "production"
    assert film["checks"]["assertions"][0]["name"] == "rating range"
    assert film["alerts"] == [{"channel": "ops", "events": ["run.failed", "run.recovered"]}]
    assert (film["freshness_minutes"], film["max_retries"], film["retry_initial_delay_s"]) == (90, 3, 5.0)
    assert "retry_jitter" not in film  # at its default
    assert document["pipelines"][1]["upstreams"] == ["film_dim_full"]
    (channel,) = document["alert_channels"]
    assert channel == {"enabled": True, "kind": "webhook", "name": "ops", "secret_env": SECRET_ENV,
                       "url": "http://127.0.0.1:9/hook"}
    assert WEBHOOK_SECRET not in text
    assert "ratings_count\n" in document["pipelines"][1]["source_query"] and "source_query: |" in text
    for absent in ("id", "status", "watermark", "last_test", "password", world["film_dim_full"]):
        assert f"{absent}:" not in text and world["film_dim_full"] not in text
    (connection,) = document["connections"]
    assert connection["password_env"] == PASSWORD_ENV
    assert connection_fields(source_url)["password"] not in text
    assert "{" not in text.replace("{}", "")  # block style (an empty config may be {})


def test_round_trip_on_an_empty_database_is_byte_identical(engine, context, world, dsn):
    before = export(engine)
    _truncate(dsn)
    assert export(engine) == "alert_channels: []\nconnections: []\npipelines: []\nversion: 1\n"
    result = apply(engine, before, context)
    assert result.summary() == {"create": 4, "update": 0, "delete": 0}
    assert export(engine) == before
    again = apply(engine, before, context)  # the same file twice: nothing to do
    assert not again.has_changes
    assert not config_service.plan(engine, before, context).has_changes


def test_plan_reports_field_changes_and_apply_makes_them(engine, context, world, client, sql):
    text = export(engine).replace("batch_size: 500", "batch_size: 250").replace("*/15 * * * *", "0 * * * *")
    result = config_service.plan(engine, text, context)
    (change,) = result.changes
    assert (change.kind, change.name, change.action) == ("pipeline", "film_dim_full", "update")
    assert [(f.field, f.old, f.new) for f in change.fields] == [("batch_size", 500, 250),
                                                                 ("schedule", "*/15 * * * *", "0 * * * *")]
    assert "batch_size: 500 -> 250" in result.render()
    assert client.get(f"/api/v1/pipelines/{world['film_dim_full']}").get_json()["batch_size"] == 500  # plan wrote nothing
    audited_before = sql("SELECT count(*) FROM etl_audit_log")[0][0]
    apply(engine, text, context)
    assert client.get(f"/api/v1/pipelines/{world['film_dim_full']}").get_json()["batch_size"] == 250
    assert not config_service.plan(engine, text, context).has_changes
    rows = sql("SELECT action, object_name, after FROM etl_audit_log ORDER BY id OFFSET %s", (audited_before,))
    assert [(action, name) for action, name, _ in rows] == [
        ("pipeline.patch", "film_dim_full"), ("pipeline.schedule.set", "film_dim_full"), ("config.apply", None)]
    assert rows[-1][2]["summary"] == {"create": 0, "update": 1, "delete": 0}


def test_plan_and_apply_of_alerts_retries_and_upstreams(engine, context, world, client):
    document = yaml.safe_load(export(engine))
    film, ratings = document["pipelines"]
    film["alerts"] = [{"channel": "ops", "events": ["pipeline.auto_paused"]}]
    film["retry_jitter"] = 0.5
    del film["freshness_minutes"]
    ratings["upstreams"] = []
    text = yaml.safe_dump(document)
    changes = {(c.name, f.field): (f.old, f.new) for c in config_service.plan(engine, text, context).changes
               for f in c.fields}
    assert changes == {
        ("film_dim_full", "alerts"): ([{"channel": "ops", "events": ["run.failed", "run.recovered"]}],
                                      [{"channel": "ops", "events": ["pipeline.auto_paused"]}]),
        ("film_dim_full", "retry_jitter"): (0.1, 0.5),
        ("film_dim_full", "freshness_minutes"): (90, None),
        ("ratings_full", "upstreams"): (["film_dim_full"], []),
    }
    apply(engine, text, context)
    assert not config_service.plan(engine, text, context).has_changes
    assert client.get(f"/api/v1/pipelines/{world['ratings_full']}/upstreams").get_json()["upstreams"] == []
    document["pipelines"][0]["upstreams"] = ["ratings_full"]
    document["pipelines"][1]["upstreams"] = ["film_dim_full"]
    with pytest.raises(config_service.ConfigRefused) as cycle:
        apply(engine, yaml.safe_dump(document), context)
    assert "ratings_full" in str(cycle.value) and "nothing was changed" in str(cycle.value)


def test_a_document_with_one_invalid_pipeline_changes_nothing(engine, context, world):
    before = export(engine)
    document = yaml.safe_load(before)
    document["pipelines"][0]["batch_size"] = 42
    document["pipelines"].append({"name": "new_one", "target_table": "analytics.film_dim",
                                  "source_query": FILM_DIM_QUERY})
    document["pipelines"].append({"name": "bad_one", "target_table": "analytics.nope", "source_query": "SELECT 1"})
    with pytest.raises(config_service.ConfigDocumentInvalid) as refused:
        apply(engine, yaml.safe_dump(document), context)
    assert "pipelines.bad_one.target_table: target_table 'analytics.nope' is not allowed" in str(refused.value)
    assert export(engine) == before


def test_a_service_refusal_names_the_pipeline_and_rolls_everything_back(engine, context, world):
    """A check only the service makes (the connection's source answers the query) fails the third step."""
    before = export(engine)
    document = yaml.safe_load(before)
    document["pipelines"][0]["batch_size"] = 42
    document["pipelines"].append({"name": "zz_missing_column", "target_table": "analytics.film_dim",
                                  "source_connection": "production",
                                  "source_query": "SELECT id AS film_id, no_such_column FROM content.film_work"})
    with pytest.raises(config_service.ConfigRefused) as refused:
        apply(engine, yaml.safe_dump(document), context)
    assert str(refused.value).startswith("pipeline 'zz_missing_column': ")
    assert export(engine) == before


def test_schema_errors_name_the_pipeline_and_field(engine, context, world):
    text = "version: 1\npipelines:\n- name: x\n  target_table: analytics.film_dim\n  source_query: SELECT 1\n" \
           "  batch_size: 0\n  colour: blue\n"
    with pytest.raises(config_service.ConfigDocumentInvalid) as refused:
        config_service.plan(engine, text, context)
    problems = dict(refused.value.problems)
    assert problems[("pipelines", "x", "batch_size")] == "Input should be greater than or equal to 1"
    assert problems[("pipelines", "x", "colour")] == "Unknown field."


def test_prune_deletes_only_what_the_file_does_not_name(engine, context, world, client):
    document = yaml.safe_load(export(engine, ["film_dim_full"]))
    assert [p["name"] for p in document["pipelines"]] == ["film_dim_full"]
    text = yaml.safe_dump(document)
    assert not config_service.plan(engine, text, context).has_changes  # without prune nothing is deleted
    result = config_service.plan(engine, text, context, prune=True)
    assert [(c.kind, c.name, c.action) for c in result.changes] == [("pipeline", "ratings_full", "delete")]
    apply(engine, text, context, prune=True)
    names = [p["name"] for p in client.get("/api/v1/pipelines/").get_json()]
    assert names == ["film_dim_full"]
    assert [c["name"] for c in client.get("/api/v1/connections/").get_json()] == ["production"]
    assert [c["name"] for c in client.get("/api/v1/alert-channels/").get_json()] == ["ops"]


def test_a_running_pipeline_is_refused_and_nothing_changes(engine, context, world, client):
    before = export(engine)
    assert client.post(f"/api/v1/pipelines/{world['film_dim_full']}/run").status_code == 200  # no runner: stays RUNNING
    text = before.replace("batch_size: 500", "batch_size: 250").replace("enabled: false", "enabled: true")
    assert "is RUNNING" in " ".join(config_service.plan(engine, text, context).warnings)
    with pytest.raises(config_service.ConfigBusy) as refused:
        apply(engine, text, context)
    assert "'film_dim_full'" in str(refused.value) and "nothing was changed" in str(refused.value)
    assert export(engine) == before


@pytest.mark.parametrize("text", [
    "!!python/object/apply:os.system ['echo owned']\n",
    "version: 1\npipelines: !!python/object:collections.OrderedDict {}\n",
])
def test_python_tags_are_refused(engine, context, text):
    with pytest.raises(config_service.ConfigDocumentInvalid) as refused:
        config_service.plan(engine, text, context)
    assert "unsupported YAML tag" in str(refused.value)


def test_a_connection_password_comes_from_its_variable_and_is_never_shown(engine, context, world, source_url):
    text = export(engine)
    changed = config_service.ConfigContext(context.allowed_targets, context.load_document, context.source_access, context.default_source_dsn,
                                           {PASSWORD_ENV: "another-password", SECRET_ENV: WEBHOOK_SECRET})
    result = config_service.plan(engine, text, changed)
    (change,) = result.changes
    assert [(f.field, f.old, f.new) for f in change.fields] == [("password", "set", f"changed (from ${PASSWORD_ENV})")]
    assert "another-password" not in result.render()
    assert not config_service.plan(engine, text, context).has_changes  # the same secrets: nothing to do
    missing = config_service.ConfigContext(context.allowed_targets, context.load_document, context.source_access, context.default_source_dsn, {})
    without = config_service.plan(engine, text, missing)
    assert not without.has_changes and len(without.warnings) == 2  # kept, with a warning each


def test_a_deadlock_with_a_finishing_run_is_a_retryable_refusal(engine, context, world, monkeypatch):
    """PostgreSQL ends one of two transactions whose lock orders meet; apply reports it as busy."""
    import importlib

    from sqlalchemy import text

    apply_module = importlib.import_module("etl_console.services.config.apply")  # the module, not the function

    before = export(engine)
    raise_deadlock = "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$"
    monkeypatch.setattr(apply_module, "_lock_pipelines", lambda session: session.execute(text(raise_deadlock)))
    with pytest.raises(config_service.ConfigBusy) as refused:
        apply(engine, before.replace("batch_size: 500", "batch_size: 250"), context)
    assert "apply it again" in str(refused.value)
    assert export(engine) == before
