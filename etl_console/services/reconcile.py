"""Reconciliation of a pipeline's source query against its target (read-only on both)."""
from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from ..warehouse.reconcile import Reconciliation, reconcile
from ..warehouse.target import LoadError
from .errors import InvalidSourceQuery, ReconcileFailed
from .pipelines import get_pipeline
from .sql_guard import check_source_query


def reconcile_pipeline(
    session: Session,
    pipeline_id: uuid.UUID,
    warehouse_dsn: str,
    statement_timeout_s: float,
    source_role: str | None = None,
) -> Reconciliation:
    pipeline = get_pipeline(session, pipeline_id)
    query, target = pipeline.source_query, pipeline.target_table
    session.rollback()  # hold no metadata transaction while the warehouse computes
    try:
        return reconcile(warehouse_dsn, check_source_query(query), target, statement_timeout_s, source_role)
    except (LoadError, InvalidSourceQuery) as error:
        raise ReconcileFailed(f"cannot reconcile: {error}") from None
