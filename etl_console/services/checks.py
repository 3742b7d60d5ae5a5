"""A pipeline's quality gates (etl_pipeline_checks): what a load must pass before it is published.

The runner snapshots them with the rest of the configuration when it claims a run; the gates
themselves run in etl_console.warehouse.gates. Custom assertions are user SQL: they pass the same
parser check as source queries here (a friendly 400), and at run time they run as the source
login, READ ONLY, which is the actual boundary.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ..db.models import PipelineStatus
from . import audit
from .errors import InvalidPipeline, InvalidSourceQuery, PipelineBusy
from .pipelines import get_pipeline
from .runs import active_run
from .sql_guard import check_source_query

DEFAULT_CHECKS: dict[str, Any] = {
    "min_rows": None,
    "max_drop_percent": None,
    "allow_empty": False,
    "not_null_columns": [],
    "unique_keys": [],
    "assertions": [],
}
MAX_ASSERTIONS = 20


def get_checks(session: Session, pipeline_id: uuid.UUID) -> dict[str, Any]:
    return checks_of(session, get_pipeline(session, pipeline_id).id)


def checks_of(session: Session, pipeline_id: uuid.UUID) -> dict[str, Any]:
    """The checks of a pipeline the caller already knows exists (one query, for the pipeline page)."""
    stored = session.execute(
        text("SELECT checks, updated_at FROM etl_pipeline_checks WHERE pipeline_id = :id"), {"id": pipeline_id}
    ).one_or_none()
    checks = {**DEFAULT_CHECKS, **(stored.checks if stored else {})}
    return {"pipeline_id": pipeline_id, **checks, "updated_at": stored.updated_at if stored else None}


def set_checks(session: Session, pipeline_id: uuid.UUID, checks: dict[str, Any]) -> dict[str, Any]:
    """Replace the pipeline's checks. Refused while RUNNING, like any configuration change."""
    pipeline = get_pipeline(session, pipeline_id, for_update=True)
    if pipeline.status == PipelineStatus.RUNNING or active_run(session, pipeline.id) is not None:
        raise PipelineBusy("Cannot change the checks of a pipeline while it is RUNNING")
    document = _validated({**DEFAULT_CHECKS, **checks})
    before = {key: value for key, value in checks_of(session, pipeline.id).items() if key in DEFAULT_CHECKS}
    audit.record(session, "pipeline.checks.put", object_type="pipeline", object_id=pipeline.id,
                 object_name=pipeline.name, before=before, after=document)
    session.execute(
        text(
            """
            INSERT INTO etl_pipeline_checks (pipeline_id, checks) VALUES (:id, CAST(:checks AS jsonb))
            ON CONFLICT (pipeline_id) DO UPDATE SET checks = EXCLUDED.checks, updated_at = now()
            """
        ),
        {"id": pipeline.id, "checks": json.dumps(document)},
    )
    session.flush()
    return get_checks(session, pipeline_id)


def _validated(checks: dict[str, Any]) -> dict[str, Any]:
    """Shape-level rules the schema cannot express; column names are checked against the target
    when a run starts (the target may live in another database)."""
    if checks["max_drop_percent"] is not None and not 0 <= checks["max_drop_percent"] <= 100:
        raise InvalidPipeline("max_drop_percent must be between 0 and 100")
    if checks["min_rows"] is not None and checks["min_rows"] < 0:
        raise InvalidPipeline("min_rows must not be negative")
    checks["not_null_columns"] = _unique_names(checks["not_null_columns"], "not_null_columns")
    keys = []
    for key in checks["unique_keys"]:
        if not key:
            raise InvalidPipeline("unique_keys: a key needs at least one column")
        keys.append(_unique_names(key, "unique_keys"))
    checks["unique_keys"] = keys
    if len(checks["assertions"]) > MAX_ASSERTIONS:
        raise InvalidPipeline(f"at most {MAX_ASSERTIONS} assertions")
    names = set()
    assertions = []
    for assertion in checks["assertions"]:
        name = assertion["name"].strip()
        if not name or name in names:
            raise InvalidPipeline(f"assertion names must be present and distinct: {name!r}")
        names.add(name)
        try:
            query = check_source_query(assertion["sql"])
        except InvalidSourceQuery as error:
            raise InvalidSourceQuery(f"assertion {name!r}: {str(error).replace('source_query', 'its SQL')}") from None
        assertions.append({"name": name, "sql": query})
    checks["assertions"] = assertions
    return checks


def _unique_names(names: list[str], field: str) -> list[str]:
    cleaned = [name.strip() for name in names]
    if any(not name for name in cleaned):
        raise InvalidPipeline(f"{field}: column names must not be empty")
    if len(set(cleaned)) != len(cleaned):
        raise InvalidPipeline(f"{field}: a column is named twice")
    return cleaned
