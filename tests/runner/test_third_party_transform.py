"""A transform from another installed package (examples/etl-console-slug-transform) shows up through
the entry point and runs in a PYTHON pipeline, exactly like a built-in."""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "etl-console-slug-transform")


@pytest.fixture(scope="session")
def slug_transform_installed():
    """pip-installs the example into this interpreter once (as a user would), unless it already is."""
    if importlib.util.find_spec("etl_console_slug_transform") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        os.path.abspath(EXAMPLE)], check=True, timeout=300)
        importlib.invalidate_caches()  # the new distribution and module appear on sys.path's next scan
    return "slug"


def test_the_example_package_is_listed_and_runs_in_a_pipeline(client, create_pipeline, run_to_end, sql,
                                                               slug_transform_installed):
    listed = {t["kind"]: t for t in client.get("/api/v1/transforms").get_json()}
    assert listed["slug"]["source"] == "etl_console_slug_transform:Slug"
    assert listed["slug"]["config_schema"]["required"] == ["column"]
    assert listed["slug"]["doc"].startswith("Replace a text column with its slug")

    pipeline = create_pipeline(type="PYTHON", source_query="SELECT id AS film_id, 'The Big Sleep — Été! ' || "
                                                           "left(id::text, 4) AS title, rating FROM content.film_work")
    bad = client.put(f"/api/v1/pipelines/{pipeline['id']}/tasks", json={"tasks": [{"kind": "slug", "config": {}}]})
    assert bad.status_code == 400 and bad.get_json()["detail"].startswith("task 1 (slug): invalid config: column")
    saved = client.put(f"/api/v1/pipelines/{pipeline['id']}/tasks",
                       json={"tasks": [{"kind": "slug", "config": {"column": "title"}}]})
    assert saved.status_code == 200, saved.get_json()
    run = run_to_end(pipeline["id"])
    assert run["status"] == "SUCCESS", run["error_message"]
    rows = sql("SELECT f.title, w.id FROM analytics.film_dim f JOIN content.film_work w ON w.id = f.film_id")
    assert rows and all(title == f"the-big-sleep-ete-{str(film_id)[:4]}" for title, film_id in rows)


def test_the_cli_lists_it(slug_transform_installed):
    result = subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main()", "transforms"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert "slug  (etl_console_slug_transform:Slug)" in result.stdout
    assert "config.column: string; required" in result.stdout
    assert "hash  (etl_console.transforms.builtin:HashColumns)" in result.stdout
