"""Where a run reads: the pipeline's named source connection, or the deployment's default source."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from ..db.secret_box import box_for
from ..services import connections as connection_service
from ..services.errors import DomainError
from ..services.sql_guard import check_source_query
from ..warehouse.reconcile import reconcile
from ..warehouse.reconcile_streams import reconcile_streams
from ..warehouse.load import LoadError

if TYPE_CHECKING:
    from .runner import Runner


def named_source(runner: "Runner", config: dict) -> connection_service.ResolvedSource | None:
    """The snapshot's source connection with its password decrypted, checked reachable; None when
    the pipeline reads the default source. A missing or unreachable one fails the run, named."""
    reference = config.get("source_connection")
    if not reference and runner.config.default_source_connection:
        # The claim snapshots the default connection too; absent there, it did not exist then.
        raise LoadError(f"ETL_DEFAULT_SOURCE_CONNECTION names '{runner.config.default_source_connection}', "
                        "which does not exist")
    if not reference:
        return None
    access = connection_service.SourceAccess(box_for(runner.config), runner.config.connection_test_timeout_s)
    try:
        with Session(runner.engine) as session:
            resolved = connection_service.resolve_source(session, access, uuid.UUID(reference["id"]))
        connection_service.check_resolved_reachable(resolved, access.timeout_s)  # no transaction held meanwhile
        return resolved
    except DomainError as error:
        message = str(error)
        if reference.get("name") and reference["name"] not in message:
            message = f"source connection '{reference['name']}': {message}"
        raise LoadError(message) from None


def reconcile_after_run(runner: "Runner", config: dict, source: connection_service.ResolvedSource | None) -> dict:
    """Source against target after a success: inside the warehouse when the source is the default,
    as a merge of two key streams when it is another database."""
    query, target = check_source_query(config["source_query"]), config["target_table"]
    settings, database = runner.config, runner.database
    if source is None:
        return reconcile(database.source_dsn, query, target, settings.statement_timeout_s, settings.source_role).as_dict()
    if source.max_concurrent_runs is not None:
        # The run's slot is already free: reading the source again now would exceed the limit.
        return {"error": f"not compared after the load: source connection '{source.name}' limits its concurrent "
                         "runs and this run's slot is already free; use Reconcile now"}
    return reconcile_streams(
        source.dsn, database.source_dsn, query, target, source.statement_timeout_s or settings.statement_timeout_s
    ).as_dict()
