"""schemathesis against the served OpenAPI document of a real gunicorn: no 5xx, nothing off-schema.

Runs the `st` command as a user would from outside, with a bounded example count and a fixed seed
(ETL_SCHEMATHESIS_SEED / ETL_SCHEMATHESIS_EXAMPLES change them), an operator token, and two real
pipelines offered as path ids so that the calls reach past "Pipeline not found".
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.deploy.client import request
from tests.deploy.stack import OPERATOR_TOKEN, scratch_database, start_stack

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def st_command() -> list[str]:
    beside = Path(sys.executable).with_name("st")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("st")
    if found:
        return [found]
    return [sys.executable, "-m", "schemathesis.cli"]


@pytest.fixture(scope="module")
def served(server_url, tmp_path_factory):
    pytest.importorskip("schemathesis")
    with scratch_database(server_url) as url:
        stack = start_stack(tmp_path_factory.mktemp("schemathesis-stack"), url, workers=2, with_nginx=False)
        try:
            yield stack
        finally:
            stack.stop()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(served, tmp_path):
    ids = []
    for enabled in (True, False):
        body = {
            "name": f"st_{uuid.uuid4().hex[:8]}",
            "target_table": "analytics.film_dim",
            "source_query": "SELECT id AS film_id, title, rating FROM content.film_work",
            "enabled": enabled,
        }
        reply = request(f"{served.direct}/api/v1/pipelines/", "POST", body)
        assert reply.status == 201, reply.body
        ids.append(reply.json()["id"])
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[dictionaries.pipeline_ids]\n"
        f"values = {json.dumps(ids)}\n\n"
        "[parameters]\n"
        '"path.pipeline_id" = { dictionary = "pipeline_ids", probability = 0.7 }\n'
    )
    report = tmp_path / "report.json"
    examples = os.environ.get("ETL_SCHEMATHESIS_EXAMPLES", "30")
    seed = os.environ.get("ETL_SCHEMATHESIS_SEED", "20261126")
    argv = st_command() + [
        "--config-file", str(config), "--no-color",
        "run", f"{served.direct}/api/v1/openapi.json",
        "--max-examples", examples, "--seed", seed,
        "--checks", CHECKS,
        "--header", f"Authorization: Bearer {OPERATOR_TOKEN}",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
    ]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert report.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(
        f"\nschemathesis: {cases['generated']} test cases generated, {cases['with_failures']} with failures, "
        f"{cases['unique_failures']} unique failures, {cases['errored']} errored "
        f"({result['operations']['tested']} operations, {result['running_time']:.1f} s, seed {seed})"
    )
    assert result["failures"] == [] and cases["with_failures"] == 0, done.stdout[-6000:]
    assert result["errors"] == [] and cases["errored"] == 0, done.stdout[-6000:]
    assert result["operations"]["tested"] >= 9
    assert cases["generated"] >= 200
    assert done.returncode == 0, done.stdout[-6000:]
    assert "unhandled API error" not in served.procs["gunicorn"].output()
