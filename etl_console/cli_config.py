"""`etl-console export | plan | apply`: the pipelines' configuration as a YAML file kept in git.

    etl-console export > etl.yaml          # the current configuration
    etl-console plan etl.yaml              # what applying it would change; exit 2 when anything would
    etl-console apply etl.yaml --yes       # apply it, all or nothing
"""
from __future__ import annotations

import contextlib
import logging
import sys

import click

from .config import Config

EXIT_CHANGES = 2  # plan: the file differs from the database (for CI)

PRUNE_HELP = "Also delete pipelines and connections the file does not name."


@contextlib.contextmanager
def _opened():
    """The migrated database, with Alembic's INFO lines kept out of this command's output."""
    from .cli import _database

    config = Config.from_env()
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        database = _database(config)
    finally:
        alembic_log.setLevel(level)
    try:
        yield config, database
    finally:
        database.dispose()


def _read(file) -> str:
    try:
        return file.read()
    except UnicodeDecodeError:
        raise click.ClickException(f"{file.name} is not UTF-8 text") from None


def _show(plan) -> None:
    """The plan on stdout; warnings (a secret's variable not set here, a RUNNING pipeline) on stderr."""
    click.echo(plan.render(warnings=False), nl=False)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)


def _refusal(error) -> click.ClickException:
    return click.ClickException(str(error))


@click.command("export")
@click.option("--pipeline", "names", multiple=True, metavar="NAME",
              help="Only this pipeline (repeatable), with the connections it reads. Default: everything.")
def export(names: tuple[str, ...]) -> None:
    """Write the configuration as YAML to stdout: pipelines (with their schedule, tasks and checks)
    and source connections, sorted and without ids, runtime state or secrets (a connection's
    password is `password_env`, the variable `apply` reads it from)."""
    from sqlalchemy.orm import Session

    from .services import config as config_service

    with _opened() as (_config, database), Session(database.engine) as session:
        document = config_service.export_document(session, names or None)
        if missing := sorted(set(names) - {pipeline["name"] for pipeline in document["pipelines"]}):
            raise click.ClickException(f"no pipeline named {', '.join(map(repr, missing))}")
        click.echo(config_service.to_yaml(document), nl=False)


@click.command("plan")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--prune", is_flag=True, help=PRUNE_HELP)
def plan(file, prune: bool) -> None:
    """Show what applying FILE ('-' for stdin) would create, change (field by field) and, with
    --prune, delete. Changes nothing. Exit status: 0 no changes, 2 changes, 1 an invalid file."""
    from .api.config_schemas import load_document
    from .services import config as config_service
    from .services.errors import DomainError

    text = _read(file)
    with _opened() as (config, database):
        try:
            result = config_service.plan(database.engine, text, config_service.context_for(config, database, load_document),
                                         prune=prune)
        except DomainError as error:
            raise _refusal(error) from None
    _show(result)
    sys.exit(EXIT_CHANGES if result.has_changes else 0)


@click.command("apply")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--prune", is_flag=True, help=PRUNE_HELP)
@click.option("--yes", is_flag=True, help="Apply without asking (required when stdin is not a terminal).")
def apply(file, prune: bool, yes: bool) -> None:
    """Apply FILE ('-' for stdin) in one transaction: all of it or, on any refusal, nothing.
    Refused while a pipeline it would change or delete is RUNNING. Shows the plan first and asks
    for confirmation unless --yes."""
    from .api.config_schemas import load_document
    from .services import audit
    from .services import config as config_service
    from .services.errors import DomainError

    text = _read(file)
    with _opened() as (config, database):
        context = config_service.context_for(config, database, load_document)
        try:
            planned = config_service.plan(database.engine, text, context, prune=prune)
        except DomainError as error:
            raise _refusal(error) from None
        _show(planned)
        if not planned.has_changes:
            return
        if not yes:
            if not sys.stdin.isatty() or file.name == "<stdin>":
                raise click.ClickException("not applied: confirm with --yes when not at a terminal")
            click.confirm("Apply these changes?", abort=True)
        try:
            with audit.acting_as(audit.command_line_actor()), database.sessions.begin() as session:
                result = config_service.apply(session, text, context, prune=prune)
        except DomainError as error:
            raise _refusal(error) from None
    summary = result.summary()
    click.echo(f"Applied: {summary['create']} created, {summary['update']} changed, {summary['delete']} deleted.")
