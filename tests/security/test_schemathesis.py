"""schemathesis against the served OpenAPI document of a real gunicorn, with all of its checks but one
(negative_data_rejection, see EXCLUDED_CHECKS): no 5xx, nothing off-schema, every schema-valid
request accepted, the stateful checks (use after free, resource availability...).

Runs the `st` command as a user would from outside, with a bounded example count and a fixed seed
(ETL_SCHEMATHESIS_SEED / ETL_SCHEMATHESIS_EXAMPLES change them), an operator token, and two real
pipelines offered as path ids so that the calls reach past "Pipeline not found".

"Schema-valid request accepted" (positive_data_acceptance) takes schemathesis' default answers to a
valid request (2xx, 3xx, 401, 403, 404, 409, 429; 5xx is not_a_server_error's business) plus, where
an operation documents it, 400: by the contract's convention 422 is a request of the wrong shape and
400 a well-shaped one that a rule about its meaning refuses (a target table not on the allow-list, a
cron expression, SQL, a channel that does not exist), which no schema can say. A 422 for a request
the document calls valid is a failure, except on the two config operations below.
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

CHECKS = "all"  # positive_data_acceptance included
# Not negative_data_rejection: v1 parses bodies as Pydantic's lax mode did (a boolean takes 0, 1,
# "yes"...; an integer takes true, "12", 12.0), and documents them, as FastAPI did, as plain boolean
# and integer, so a type-mutated "invalid" body is rightly accepted. Saying so in the document would
# change the types of v1 fields there.
EXCLUDED_CHECKS = "negative_data_rejection"
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' default for valid data
# The YAML document's services' checks (a name given twice, a target table not allowed, a schedule
# that is not cron...) answer 422 with loc naming the object (their documented 422), not 400: the
# document is validated as a whole and every problem reported at once.
ACCEPTED_422 = {"POST /api/v1/config/plan", "POST /api/v1/config/apply"}


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


def positive_acceptance_config(document: dict) -> str:
    """One [[operations]] table per operation whose documented answers to valid data go beyond the default."""
    tables = []
    for path, operations in sorted(document["paths"].items()):
        for method, operation in sorted(operations.items()):
            if method not in {"get", "put", "post", "patch", "delete"}:
                continue
            label = f"{method.upper()} {path}"
            extra = ["400"] if "400" in operation["responses"] else []
            if label in ACCEPTED_422:
                assert "422" in operation["responses"], label
                extra.append("422")
            table = [f"checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + extra)}"] if extra else []
            if label == "POST /api/v1/config/apply":
                # A valid document applied with prune=true deletes the pipelines the other calls use.
                table.append('parameters = { "query.prune" = false }')
            if table:
                tables.append("[[operations]]\n" + f"include-name = {json.dumps(label)}\n" + "\n".join(table) + "\n")
    return "\n".join(tables)


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
        '"path.pipeline_id" = { dictionary = "pipeline_ids", probability = 0.7 }\n\n'
        + positive_acceptance_config(request(f"{served.direct}/api/v1/openapi.json").json())
    )
    report = tmp_path / "report.json"
    examples = os.environ.get("ETL_SCHEMATHESIS_EXAMPLES", "30")
    seed = os.environ.get("ETL_SCHEMATHESIS_SEED", "20261126")
    argv = st_command() + [
        "--config-file", str(config), "--no-color",
        "run", f"{served.direct}/api/v1/openapi.json",
        "--max-examples", examples, "--seed", seed,
        "--checks", CHECKS, "--exclude-checks", EXCLUDED_CHECKS,
        "--header", f"Authorization: Bearer {OPERATOR_TOKEN}",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
    ]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert report.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(
        f"\nschemathesis: {cases['generated']} test cases generated, {cases['with_failures']} with failures, "
        f"{cases['unique_failures']} unique failures, {cases['errored']} errored "
        f"({result['operations']['tested']} operations, {result['running_time']:.1f} s, seed {seed})"
    )
    if os.environ.get("ETL_ST_DUMP"):
        Path(os.environ["ETL_ST_DUMP"]).write_text(done.stdout)
    assert result["failures"] == [] and cases["with_failures"] == 0, done.stdout[-6000:]
    assert result["errors"] == [] and cases["errored"] == 0, done.stdout[-6000:]
    assert result["operations"]["tested"] >= 9
    assert cases["generated"] >= 200
    assert done.returncode == 0, done.stdout[-6000:]
    assert "unhandled API error" not in served.procs["gunicorn"].output()
