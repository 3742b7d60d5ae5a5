"""schemathesis against the served OpenAPI document of a real gunicorn, with all of its checks: no 5xx,
nothing off-schema, every schema-valid request accepted, every schema-violating one refused, the
stateful checks (use after free, resource availability...).

Runs the `st` command as a user would from outside, with a bounded example count and a fixed seed
(ETL_SCHEMATHESIS_SEED / ETL_SCHEMATHESIS_EXAMPLES change them), an operator token, and two real
pipelines offered as path ids so that the calls reach past "Pipeline not found".

"Schema-valid request accepted" (positive_data_acceptance) takes schemathesis' default answers to a
valid request (2xx, 3xx, 401, 403, 404, 409, 429; 5xx is not_a_server_error's business) plus, where
an operation documents it, 400: by the contract's convention 422 is a request of the wrong shape and
400 a well-shaped one that a rule about its meaning refuses (a target table not on the allow-list, a
cron expression, SQL, a channel that does not exist), which no schema can say. A 422 for a request
the document calls valid is a failure, except on the two config operations below.

"Schema-violating request accepted" (negative_data_rejection): v1 parses as Pydantic's lax mode did
(a boolean takes 0, 1, "yes"...; an integer takes true, "12", 12.0) and documents those fields, as
FastAPI did, as plain boolean and integer. schemathesis_hooks.py drops exactly the failures whose
request is valid once those conversions are made, and no other (its docstring has the rules); the
run prints what it dropped.

Time: the config plan/apply body is the whole YAML document's schema, offered as application/yaml
and application/json, for which the coverage phase sends ~1260 requests per operation. Apply gets no
coverage phase (plan's reads the same document with the same parser and schemas, and reports the
same 422s; apply's own part, writing, gets its fuzzing and stateful calls) and both fuzz with fewer
examples; every operation still runs every check.
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

CHECKS = "all"  # positive_data_acceptance and negative_data_rejection included
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
# POST /api/v1/config/plan and /apply: fewer fuzzed examples, and no coverage phase for apply (above).
CONFIG_OPERATIONS = {"POST /api/v1/config/plan": {"fuzzing": 12, "coverage": True},
                     "POST /api/v1/config/apply": {"fuzzing": 12, "coverage": False}}
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
            if label in CONFIG_OPERATIONS:
                table.append(f"phases.fuzzing.generation.max-examples = {CONFIG_OPERATIONS[label]['fuzzing']}")
                if not CONFIG_OPERATIONS[label]["coverage"]:
                    table.append("phases.coverage.enabled = false")
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
        f"hooks = {json.dumps(str(HOOKS))}\n\n"
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
        "--checks", CHECKS,
        "--header", f"Authorization: Bearer {OPERATOR_TOKEN}",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
    ] + os.environ.get("ETL_ST_EXTRA", "").split()  # e.g. an NDJSON report, to see where the time goes
    dropped = tmp_path / "dropped.ndjson"
    environment = {**os.environ, "ETL_ST_DROPPED": str(dropped)}
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=420, env=environment)
    assert report.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(
        f"\nschemathesis: {cases['generated']} test cases generated, {cases['with_failures']} with failures, "
        f"{cases['unique_failures']} unique failures, {cases['errored']} errored "
        f"({result['operations']['tested']} operations, {result['running_time']:.1f} s, seed {seed})"
    )
    drops = [json.loads(line) for line in dropped.read_text().splitlines()] if dropped.exists() else []
    for drop in drops:
        print(f"  dropped by the hook: {drop['check']} {drop['operation']}: {drop['why']}")
    assert len(drops) == result["filtered"], (drops, result["filtered"])  # the hook drops nothing else
    if os.environ.get("ETL_ST_DUMP"):
        Path(os.environ["ETL_ST_DUMP"]).write_text(done.stdout)
    assert result["failures"] == [] and cases["with_failures"] == 0, done.stdout[-6000:]
    assert result["errors"] == [] and cases["errored"] == 0, done.stdout[-6000:]
    assert result["operations"]["tested"] >= 9
    assert cases["generated"] >= 200
    assert done.returncode == 0, done.stdout[-6000:]
    assert "unhandled API error" not in served.procs["gunicorn"].output()


@pytest.mark.parametrize("path, method, location, value, dropped", [
    ("/api/v1/pipelines/", "POST", "body", {"enabled": 0}, True),
    ("/api/v1/pipelines/", "POST", "body", {"enabled": "YES", "batch_size": "1_000"}, True),
    ("/api/v1/pipelines/", "POST", "body", {"enabled": 1.0, "batch_size": True}, True),
    ("/api/v1/pipelines/", "POST", "body", {"enabled": 2}, False),
    ("/api/v1/pipelines/", "POST", "body", {"enabled": " true"}, False),
    ("/api/v1/pipelines/", "POST", "body", {"enabled": None}, False),
    ("/api/v1/pipelines/", "POST", "body", {"batch_size": "0"}, False),  # minimum 1 still holds
    ("/api/v1/pipelines/", "POST", "body", {"batch_size": "1.5"}, False),
    ("/api/v1/pipelines/", "POST", "body", {"name": 1, "enabled": 0}, False),  # another violation too
    ("/api/v1/pipelines/", "POST", "body", {}, False),  # nothing converted: not this hook's business
    ("/api/v1/pipelines/{pipeline_id}/checks", "PUT", "body", {"max_drop_percent": "5"}, False),  # a number
    ("/api/v1/config/plan", "POST", "query", {"prune": "yes"}, True),
    ("/api/v1/config/plan", "POST", "query", {"prune": "maybe"}, False),
    ("/api/v1/audit", "GET", "query", {"limit": True}, False),  # sent as "true", which no integer is
])
def test_the_hook_drops_only_lax_conversions(path, method, location, value, dropped):
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.core.parameters import ParameterLocation

    from etl_console import create_app
    from tests.security import schemathesis_hooks

    document = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "START_RUNNER": False}) \
        .test_client().get("/api/v1/openapi.json").get_json()
    operation = schemathesis.openapi.from_dict(document)[path][method]
    if location == "body":
        base = {"name": "x", "target_table": "analytics.film_dim", "source_query": "SELECT 1"} if method == "POST" else {}
        case = operation.Case(body={**base, **value}, media_type="application/json")
    else:
        case = operation.Case(query=value)
    negative = {ParameterLocation.BODY if location == "body" else ParameterLocation.QUERY}

    class Meta:  # the parts of schemathesis' CaseMetadata the hook reads
        components: dict = {}

        def is_dirty(self):
            return False

        def is_negative_at(self, where):
            return where in negative

    object.__setattr__(case, "_meta", Meta())
    assert schemathesis_hooks.only_lax_coercions(case) is dropped


@pytest.mark.parametrize("free, usage, body, dropped", [
    ("DELETE /api/v1/pipelines/P/schedule", "GET /api/v1/pipelines/P/schedule",
     {"schedule": None, "next_run_at": None, "last_tick": None}, True),
    ("DELETE /api/v1/pipelines/P/state", "GET /api/v1/pipelines/P/state", {"watermark": None}, True),
    ("DELETE /api/v1/pipelines/P/schedule", "GET /api/v1/pipelines/P/schedule",
     {"schedule": "* * * * *", "next_run_at": None}, False),  # not reset: still a finding
    ("DELETE /api/v1/connections/C", "GET /api/v1/connections/C", {}, False),
    ("DELETE /api/v1/pipelines/P/schedule", "GET /api/v1/pipelines/Q/schedule",
     {"schedule": None, "next_run_at": None}, False),
])
def test_the_hook_drops_use_after_free_only_for_a_settings_reset(free, usage, body, dropped):
    pytest.importorskip("schemathesis")
    from schemathesis.openapi.checks import UseAfterFree

    from tests.security import schemathesis_hooks

    failure = UseAfterFree(operation=free, message="", free=free, usage=usage)

    class Response:
        status_code = 200
        content = json.dumps(body).encode()

    assert schemathesis_hooks.is_settings_reset(failure, Response()) is dropped
