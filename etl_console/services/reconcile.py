"""Reconciliation of a pipeline's source query against its target (read-only on both)."""
from __future__ import annotations

import threading
import uuid

from sqlalchemy.orm import Session

from ..warehouse.reconcile import Reconciliation, reconcile
from ..warehouse.load import LoadError
from ..warehouse.reconcile_streams import reconcile_streams
from .connections import SourceAccess, effective_connection_id, resolve_source
from .errors import DomainError, InvalidSourceQuery, ReconcileFailed, ServiceBusy
from .pipelines import get_pipeline
from .sql_guard import check_source_query


def reconcile_pipeline(
    session: Session,
    pipeline_id: uuid.UUID,
    source_dsn: str,
    statement_timeout_s: float,
    source_role: str | None = None,
    slots: threading.Semaphore | None = None,
    source_access: SourceAccess | None = None,
) -> Reconciliation:
    """Compare now. With `slots`, a request that finds them all taken is refused at once (ServiceBusy)
    rather than queued: slow sources must not tie up every thread that also answers health checks.

    A pipeline reading a named source connection (opened with source_access) is compared by merging
    two ordered key streams, one from that database and one from the warehouse (read as source_dsn)."""
    pipeline = get_pipeline(session, pipeline_id)
    query, target = pipeline.source_query, pipeline.target_table
    named = None
    connection_id = pipeline.source_connection_id
    if source_access is not None:
        try:
            connection_id = effective_connection_id(session, source_access, connection_id)
        except DomainError as error:
            raise ReconcileFailed(f"cannot reconcile: {error}") from None
    if connection_id is not None:
        if source_access is None:
            raise ReconcileFailed("cannot reconcile: the pipeline reads a source connection this caller cannot open")
        try:
            named = resolve_source(session, source_access, connection_id, check=False)
        except DomainError as error:
            raise ReconcileFailed(f"cannot reconcile: {error}") from None
    session.rollback()  # hold no metadata transaction while the warehouse computes
    if slots is not None and not slots.acquire(blocking=False):
        raise ServiceBusy("too many reconciliations are running; try again in a few seconds")
    try:
        if named is not None:
            return reconcile_streams(named.dsn, source_dsn, check_source_query(query), target,
                                     named.statement_timeout_s or statement_timeout_s)
        return reconcile(source_dsn, check_source_query(query), target, statement_timeout_s, source_role)
    except (LoadError, InvalidSourceQuery) as error:
        raise ReconcileFailed(f"cannot reconcile: {error}") from None
    finally:
        if slots is not None:
            slots.release()
