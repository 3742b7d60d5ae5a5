"""The etl-console command, run as a user would run it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.runner.helpers import film_rows_query

COMMANDS = [[], ["serve"], ["demo"], ["worker"], ["run"], ["db"], ["db", "upgrade"]]


def etl_console(*args: str, database_url: str | None = None, check: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if database_url:
        env["ETL_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-c", "from etl_console.cli import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=120, check=check,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command):
    result = etl_console(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_help_and_a_mistyped_command_touch_nothing(tmp_path, monkeypatch):
    """No connection (the URL is a closed port: any attempt would fail loudly), no file, no runner."""
    from click.testing import CliRunner

    from etl_console.cli import main

    monkeypatch.chdir(tmp_path)
    env = {"ETL_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "ETL_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    for command in COMMANDS + [["no-such-command"]]:
        result = runner.invoke(main, [*command, "--help"] if command != ["no-such-command"] else command, env=env)
        assert result.exit_code in (0, 2), (command, result.output)
        assert "Traceback" not in result.output and "Connection refused" not in result.output
    assert list(tmp_path.iterdir()) == []
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("etl-runner")]


def test_db_upgrade_is_idempotent(database_url, clean_database):
    first = etl_console("db", "upgrade", database_url=database_url, check=True)
    second = etl_console("db", "upgrade", database_url=database_url, check=True)
    assert "database at revision" in first.stdout and first.stdout == second.stdout


def test_demo_is_idempotent_and_creates_the_contract_pipelines(database_url, clean_database, sql):
    for _ in range(2):
        result = etl_console("demo", "--films", "300", "--ratings", "900", database_url=database_url, check=True)
        assert "film_dim_full, ratings_full" in result.stdout
    assert sql("SELECT name, enabled, status, batch_size FROM etl_pipelines ORDER BY name") == [
        ("film_dim_full", False, "PAUSED", 500),
        ("ratings_full", True, "IDLE", 100),
    ]
    assert sql("SELECT count(*) FROM content.film_work") == [(300,)]
    assert sql("SELECT count(*) FROM ugc.ratings") == [(900,)]
    # Put the session's demo sizes back for the other tests.
    from tests.conftest import DEMO_FILMS, DEMO_RATINGS

    etl_console("demo", "--films", str(DEMO_FILMS), "--ratings", str(DEMO_RATINGS), database_url=database_url, check=True)


def test_run_wait_succeeds_with_progress_and_fails_with_exit_code(no_runner, create_pipeline, database_url, sql):
    # no_runner: the CLI executes the run itself
    good = create_pipeline(name="cli_good", source_query=film_rows_query(5000))
    result = etl_console("run", "cli_good", "--wait", database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert "SUCCESS: 5,000 rows written" in result.stdout
    assert "rows/s" in result.stderr
    assert sql("SELECT count(*) FROM analytics.film_dim") == [(5000,)]
    # The audit log names the command line's user as who started it.
    assert [row[0][:4] for row in sql("SELECT actor FROM etl_audit_log WHERE action = 'pipeline.run'")] == ["cli:"]

    create_pipeline(name="cli_bad", source_query="SELECT 1/(i-2) AS film_id FROM generate_series(1, 3) i")
    result = etl_console("run", good["id"].replace(good["id"], "cli_bad"), "--wait", database_url=database_url)
    assert result.returncode == 1
    assert "FAILED:" in result.stderr


def test_run_wait_executes_that_run_and_no_other(no_runner, client, create_pipeline, database_url, sql):
    # no_runner: nobody else claims, another pipeline's run stays queued
    other = create_pipeline(name="cli_other", source_query=film_rows_query(10, "other"))
    assert client.post(f"/api/v1/pipelines/{other['id']}/run").status_code == 200  # queued first
    create_pipeline(name="cli_mine", source_query=film_rows_query(20, "mine"))
    result = etl_console("run", "cli_mine", "--wait", database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert "SUCCESS: 20 rows written" in result.stdout
    assert sql("SELECT status, worker_id FROM etl_pipeline_runs WHERE pipeline_id = %s", (other["id"],)) == [
        ("RUNNING", None)]  # still queued, untouched: not claimed, not cancelled


def test_run_unknown_pipeline_is_a_clear_error(database_url, clean_database):
    result = etl_console("run", "no_such_pipeline", database_url=database_url)
    assert result.returncode != 0
    assert "no pipeline named or with id 'no_such_pipeline'" in result.stderr
