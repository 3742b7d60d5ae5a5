"""Reconciliation of a pipeline's source query against its target (read-only on both)."""
from __future__ import annotations

import threading
import uuid

from sqlalchemy.orm import Session

from ..warehouse.reconcile import Reconciliation, reconcile
from ..warehouse.target import LoadError
from .errors import InvalidSourceQuery, ReconcileFailed, ServiceBusy
from .pipelines import get_pipeline
from .sql_guard import check_source_query


def reconcile_pipeline(
    session: Session,
    pipeline_id: uuid.UUID,
    source_dsn: str,
    statement_timeout_s: float,
    source_role: str | None = None,
    slots: threading.Semaphore | None = None,
) -> Reconciliation:
    """Compare now. With `slots`, a request that finds them all taken is refused at once (ServiceBusy)
    rather than queued: slow sources must not tie up every thread that also answers health checks."""
    pipeline = get_pipeline(session, pipeline_id)
    query, target = pipeline.source_query, pipeline.target_table
    session.rollback()  # hold no metadata transaction while the warehouse computes
    if slots is not None and not slots.acquire(blocking=False):
        raise ServiceBusy("too many reconciliations are running; try again in a few seconds")
    try:
        return reconcile(source_dsn, check_source_query(query), target, statement_timeout_s, source_role)
    except (LoadError, InvalidSourceQuery) as error:
        raise ReconcileFailed(f"cannot reconcile: {error}") from None
    finally:
        if slots is not None:
            slots.release()
