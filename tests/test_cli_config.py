"""`etl-console export | plan | apply`, run as a user (or CI) runs them: a subprocess, real exit codes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FILM_DIM_QUERY, _truncate

SECRET = "test-secret"  # the tests' ETL_SECRET_KEY (tests/conftest.make_app): the CLI derives the same key


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def etl_console(*args: str, database_url: str, stdin: str | None = None, **env_settings: str):
    env = dict(os.environ, ETL_DATABASE_URL=database_url, ETL_SECRET_KEY=SECRET)
    env.update(env_settings)
    return subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=120, input=stdin)


@pytest.fixture
def pipelines(client):
    for name, batch_size in (("film_dim_full", 500), ("film_dim_copy", 100)):
        response = client.post("/api/v1/pipelines/", json={
            "name": name, "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY,
            "batch_size": batch_size})
        assert response.status_code == 201, response.get_data(as_text=True)


def test_export_edit_plan_apply_plan(database_url, pipelines, tmp_path, client):
    exported = etl_console("export", database_url=database_url)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("alert_channels: []\nconnections: []\npipelines:\n- batch_size: 100\n")
    path = tmp_path / "etl.yaml"
    path.write_text(exported.stdout.replace("batch_size: 500", "batch_size: 250"))

    planned = etl_console("plan", str(path), database_url=database_url)
    assert planned.returncode == 2, planned.stderr
    assert planned.stdout == ("~ pipeline film_dim_full\n    batch_size: 500 -> 250\n"
                              "Plan: 0 to create, 1 to change, 0 to delete.\n")

    refused = etl_console("apply", str(path), database_url=database_url)  # not a terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    applied = etl_console("apply", str(path), "--yes", database_url=database_url)
    assert applied.returncode == 0, applied.stderr
    assert "Applied: 0 created, 1 changed, 0 deleted." in applied.stdout
    sizes = {p["name"]: p["batch_size"] for p in client.get("/api/v1/pipelines/").get_json()}
    assert sizes == {"film_dim_full": 250, "film_dim_copy": 100}

    again = etl_console("plan", str(path), database_url=database_url)
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout + again.stderr


def test_export_of_named_pipelines_and_prune(database_url, pipelines, client):
    one = etl_console("export", "--pipeline", "film_dim_full", database_url=database_url)
    assert one.returncode == 0 and "film_dim_copy" not in one.stdout and "film_dim_full" in one.stdout
    missing = etl_console("export", "--pipeline", "nope", database_url=database_url)
    assert missing.returncode == 1 and "no pipeline named 'nope'" in missing.stderr

    pruned = etl_console("plan", "-", "--prune", database_url=database_url, stdin=one.stdout)
    assert pruned.returncode == 2 and "- pipeline film_dim_copy\n" in pruned.stdout
    applied = etl_console("apply", "-", "--prune", "--yes", database_url=database_url, stdin=one.stdout)
    assert applied.returncode == 0, applied.stderr
    assert [p["name"] for p in client.get("/api/v1/pipelines/").get_json()] == ["film_dim_full"]


def test_round_trip_on_an_empty_database(database_url, pipelines, dsn):
    before = etl_console("export", database_url=database_url).stdout
    _truncate(dsn)
    applied = etl_console("apply", "-", "--yes", database_url=database_url, stdin=before)
    assert applied.returncode == 0 and "2 created" in applied.stdout, applied.stderr
    assert etl_console("export", database_url=database_url).stdout == before


def test_an_invalid_file_exits_1_naming_the_pipeline_and_changes_nothing(database_url, pipelines, tmp_path):
    before = etl_console("export", database_url=database_url).stdout
    path = tmp_path / "etl.yaml"
    path.write_text(before.replace("batch_size: 500", "batch_size: 0"))
    for command in ("plan", "apply"):
        result = etl_console(command, str(path), "--yes" if command == "apply" else "--prune",
                             database_url=database_url)
        assert result.returncode == 1
        assert "pipelines.film_dim_full.batch_size: Input should be greater than or equal to 1" in result.stderr
    path.write_text("version: 1\npipelines: !!python/object/apply:os.system ['touch owned']\n")
    unsafe = etl_console("plan", str(path), database_url=database_url)
    assert unsafe.returncode == 1 and "unsupported YAML tag" in unsafe.stderr
    assert etl_console("export", database_url=database_url).stdout == before


@pytest.mark.parametrize("command", ["export", "plan", "apply"])
def test_help(command):
    result = subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main()", command, "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Usage:" in result.stdout


@pytest.mark.parametrize("answer, applied", [("y", True), ("n", False)])
def test_apply_asks_on_a_terminal(database_url, pipelines, tmp_path, client, answer, applied):
    """stdin a terminal (a pty), no --yes: the plan, then a question; only 'y' applies."""
    import pty

    exported = etl_console("export", database_url=database_url).stdout
    path = tmp_path / "etl.yaml"
    path.write_text(exported.replace("batch_size: 500", "batch_size: 250"))
    main_fd, terminal_fd = pty.openpty()
    try:
        os.write(main_fd, f"{answer}\n".encode())
        env = dict(os.environ, ETL_DATABASE_URL=database_url, ETL_SECRET_KEY=SECRET)
        result = subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main()", "apply", str(path)],
                                env=env, stdin=terminal_fd, capture_output=True, text=True, timeout=120)
    finally:
        os.close(main_fd)
        os.close(terminal_fd)
    assert "batch_size: 500 -> 250" in result.stdout and "Apply these changes?" in result.stdout
    sizes = {p["name"]: p["batch_size"] for p in client.get("/api/v1/pipelines/").get_json()}
    assert sizes["film_dim_full"] == (250 if applied else 500)
    assert result.returncode == (0 if applied else 1), result.stderr
