"""Carry a plan out in one transaction, through the same services the API calls.

The services only flush, so `apply` runs every change in its caller's transaction (the request's,
or the CLI's): committed by the caller at the end, or rolled back on the first refusal, which makes
the whole document all or nothing. `plan` runs the very same steps in a session of its own that is
never committed: its errors are apply's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ...db.models import Pipeline, PipelineStatus
from .. import audit
from ..connections import SourceAccess
from ..errors import DomainError, PipelineBusy
from ..runs import active_run
from . import steps
from .errors import ConfigBusy, ConfigRefused
from .plan import Plan, diff, load
from .registry import KINDS, PIPELINES


@dataclass(frozen=True)
class ConfigContext:
    """What the services need besides the session, as the API's views and the CLI hand it to them."""

    allowed_targets: tuple[str, ...]
    # The document's schema (the API's input schemas, given by the edge: services import no web code);
    # raises marshmallow.ValidationError.
    load_document: Callable[[Any], dict]
    source_access: SourceAccess | None = None
    default_source_dsn: str | None = None  # where a PYTHON pipeline's tasks are checked
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)  # password_env is read here
    smtp_configured: bool = False  # email alert channels need ETL_SMTP_HOST


def context_for(config, database, load_document: Callable[[Any], dict], *,
                environ: Mapping[str, str] | None = None) -> ConfigContext:
    """The context from the service's Config and Database, as the API and the CLI both build it."""
    from ...db.secret_box import box_for

    access = SourceAccess(box_for(config), config.connection_test_timeout_s, config.default_source_connection)
    return ConfigContext(tuple(config.allowed_target_tables), load_document, access, database.source_dsn,
                         os.environ if environ is None else environ, bool(config.smtp_host))


def plan(engine: Engine, document: str | bytes | dict, context: ConfigContext, *, prune: bool = False) -> Plan:
    """What apply would do; raises what apply would raise (except that a RUNNING pipeline is a warning)."""
    desired = load(document, context.allowed_targets, context.load_document)
    with Session(engine, expire_on_commit=False) as session:  # closed uncommitted: all of it rolled back
        result = diff(session, desired, prune=prune, context=context)
        busy = _busy(session, result)
        result.warnings += [f"pipeline '{name}' is RUNNING: apply will refuse until its run ends" for name in busy]
        _execute(session, result, context, skip=set(busy))
    return result


def apply(session: Session, document: str | bytes | dict, context: ConfigContext, *, prune: bool = False) -> Plan:
    """Apply the document in the caller's transaction, which commits it (or, after an error, rolls
    it back); ConfigBusy when a pipeline to change or delete is RUNNING."""
    desired = load(document, context.allowed_targets, context.load_document)
    try:
        return _apply(session, desired, context, prune=prune)
    except DBAPIError as error:
        # A runner recording an outcome locks a pipeline, then the pipelines after it: that order can
        # meet this one's, and PostgreSQL then ends one of the two transactions. Ours changed nothing.
        if getattr(error.orig, "pgcode", None) in DEADLOCK_OR_SERIALIZATION:
            raise ConfigBusy("Cannot apply the configuration now: it met a run finishing at the same moment; "
                             "nothing was changed, apply it again") from None
        raise


DEADLOCK_OR_SERIALIZATION = ("40P01", "40001")


def _apply(session: Session, desired: dict, context: ConfigContext, *, prune: bool) -> Plan:
    _lock_pipelines(session)
    result = diff(session, desired, prune=prune, context=context)
    if busy := _busy(session, result):
        raise ConfigBusy(f"Cannot apply the configuration: pipeline(s) {', '.join(map(repr, busy))} "
                         "RUNNING would be changed or deleted; nothing was changed (retry when the run ends, "
                         "or pause the pipeline first)")
    _execute(session, result, context)
    if result.has_changes:
        _audit(session, result, context)
    return result


def _lock_pipelines(session: Session) -> None:
    """Every pipeline, before reading them: a run or a PATCH arriving meanwhile waits for this
    transaction, then sees its result (one order, by id, so two applies cannot deadlock)."""
    session.execute(select(Pipeline.id).order_by(Pipeline.id).with_for_update())


def _busy(session: Session, result: Plan) -> list[str]:
    names = [c.name for c in result.changes if c.kind == PIPELINES.label and c.action != "create"]
    busy = []
    for name in names:
        pipeline = session.scalars(select(Pipeline).where(Pipeline.name == name)).one()
        if pipeline.status == PipelineStatus.RUNNING or active_run(session, pipeline.id) is not None:
            busy.append(name)
    return busy


def _execute(session: Session, result: Plan, context: ConfigContext, skip: Iterable[str] = ()) -> None:
    """Every change in the plan's order; then upstreams, once every pipeline they name exists."""
    sections = {kind.label: kind.section for kind in KINDS}
    changes = [c for c in result.changes if not (c.kind == PIPELINES.label and c.name in set(skip))]
    for deferred in (False, True):
        for change in changes:
            item = result.document[sections[change.kind]].get(change.name)
            step = steps.DEFERRED_STEPS.get((change.kind, change.action)) if deferred else \
                steps.STEPS[(change.kind, change.action)]
            if step is None:
                continue
            try:
                step(session, change, item, context)
            except PipelineBusy as error:
                raise ConfigBusy(f"{change.kind} '{change.name}': {error}; nothing was changed") from None
            except DomainError as error:
                raise ConfigRefused(f"{change.kind} '{change.name}': {error}; nothing was changed") from None


def _audit(session: Session, result: Plan, context: ConfigContext) -> None:
    """One config.apply row, besides the rows the services wrote for each object they changed."""
    audit.record(session, "config.apply", object_type="config", after={
        "summary": result.summary(),
        "changes": [{"kind": c.kind, "name": c.name, "action": c.action, "fields": [f.field for f in c.fields]}
                    for c in result.changes],
    })
    session.flush()
