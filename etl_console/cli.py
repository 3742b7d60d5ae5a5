"""The `etl-console` command: a plain click group. Nothing runs until a command does: `--help` and a
mistyped command open no connection, create no files and start no runner."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import click

from .config import Config


@click.group()
def main() -> None:
    """etl-console: manage and run SQL ETL pipelines.

    Settings come from ETL_* environment variables (see the README). With no ETL_DATABASE_URL an
    embedded PostgreSQL is started under ETL_DATA_DIR.
    """


def _database(config: Config):
    """The metadata database at this version's schema; a command that needs it refuses otherwise
    (only `db upgrade` and `serve` migrate)."""
    from .db.engine import Database
    from .db.migrate import SchemaBehind, require_current_schema

    database = Database.connect(config)
    try:
        require_current_schema(database.engine)
    except SchemaBehind as behind:
        raise click.ClickException(str(behind)) from None
    return database


def _migrated_database(config: Config):
    from .db.engine import Database
    from .db.migrate import upgrade

    database = Database.connect(config)
    upgrade(database.engine)
    return database


@main.group()
def db() -> None:
    """Metadata database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations (idempotent)."""
    from .db.engine import Database
    from .db.migrate import current_revision, upgrade

    database = Database.connect(Config.from_env())
    upgrade(database.engine)
    click.echo(f"database at revision {current_revision(database.engine)}")


@db.command("provision-source-role")
@click.option("--login", default="etl_source", show_default=True, help="The login user SQL will run as.")
@click.option(
    "--password-file", type=click.Path(dir_okay=False), required=True,
    help="Its password: read from this file, or generated into it (mode 0600) when the file does not exist.",
)
@click.option(
    "--revoke-public-functions", is_flag=True,
    help="Also take advisory locks, pg_terminate_backend/pg_cancel_backend and pg_notify from PUBLIC "
    "in this database (only where no other application needs them).",
)
def db_provision_source_role(login: str, password_file: str, revoke_public_functions: bool) -> None:
    """Create or repair the least-privilege login for user SQL on the warehouse (idempotent).

    It gets SELECT on ETL_SOURCE_SCHEMAS and on ETL_ALLOWED_TARGET_TABLES, nothing else; run it again
    after creating new source schemas. Then set ETL_SOURCE_URL to that login.
    """
    from .db.engine import libpq_dsn, resolve_database_url, sqlalchemy_url
    from .db.source_login import local_password, login_url, provision_source_login

    config = Config.from_env()
    warehouse = sqlalchemy_url(config.warehouse_url) if config.warehouse_url else resolve_database_url(config)
    path = os.path.abspath(password_file)
    password = local_password(os.path.dirname(path), os.path.basename(path))
    provision_source_login(
        libpq_dsn(warehouse), login=login, password=password, schemas=config.source_schemas,
        tables=config.allowed_target_tables, revoke_public_functions=revoke_public_functions,
    )
    masked = login_url(warehouse, login, "***").replace("postgresql+psycopg2://", "postgresql://", 1)
    click.echo(f"login {login} ready; set ETL_SOURCE_URL={masked} with the password from {path}")


@main.command()
@click.option("--films", type=click.IntRange(0), help="Rows in content.film_work, exactly. [default: at least 1000]")
@click.option("--ratings", type=click.IntRange(0), help="Rows in ugc.ratings, exactly. [default: at least 5000]")
def demo(films: int | None, ratings: int | None) -> None:
    """Create the contract's world: schemas, generated rows and the two example pipelines (idempotent).

    It only ever regenerates tables it created itself, and without --films/--ratings it keeps a larger
    demo that is already there.
    """
    from .services.demo import ensure_demo
    from .warehouse.demo import DemoRefused

    config = Config.from_env()
    try:
        report = ensure_demo(_database(config), config, films, ratings)
    except DemoRefused as refusal:
        raise click.ClickException(str(refusal)) from None
    click.echo(
        f"demo ready: {report.films} films, {report.ratings} ratings "
        f"({'generated' if report.regenerated else 'already present'} in {report.seconds:.1f} s); "
        f"pipelines: {', '.join(report.pipelines)}"
    )
    if report.source_connection:
        click.echo(f"the pipelines read the production database through connection {report.source_connection!r}; "
                   f"`serve --demo` makes it the default source (ETL_DEFAULT_SOURCE_CONNECTION)")


@main.command()  # it builds what it needs; no app (and no runner) in this process
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option("--demo", "with_demo", is_flag=True, help="Create the demo world first (etl-console demo).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="gunicorn worker processes.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1), help="Threads per worker.")
def serve(host: str, port: int, with_demo: bool, workers: int, threads: int) -> None:
    """Migrate, optionally load the demo, and serve the console and API with gunicorn."""
    config = Config.from_env()
    from .auth import check_bind

    if refusal := check_bind(host, config):  # open (no auth) only on loopback
        raise click.UsageError(refusal)
    database = _migrated_database(config)  # once, here, before the workers fork
    if with_demo:
        from .services.demo import ensure_demo
        from .warehouse.demo import DemoRefused

        try:
            report = ensure_demo(database, config, None, None)
        except DemoRefused as refusal:
            raise click.ClickException(str(refusal)) from None
        click.echo(f"demo ready: {report.films} films; pipelines {', '.join(report.pipelines)}")
        if report.source_connection and not config.default_source_connection:
            # Pipelines that name no connection (every v1 client's) read the demo's production database.
            os.environ["ETL_DEFAULT_SOURCE_CONNECTION"] = report.source_connection
            click.echo(f"default source: connection {report.source_connection!r} (ETL_DEFAULT_SOURCE_CONNECTION)")
    _warn_about_source_privileges(database)
    # Workers join the server this process started instead of each resolving it again.
    os.environ["ETL_DATABASE_URL"] = database.url
    if database.source_url:
        os.environ["ETL_SOURCE_URL"] = database.source_url
    database.dispose()
    from .serving import serve_gunicorn

    click.echo(f"etl-console on http://{host}:{port}/  (API docs: http://{host}:{port}/api/v1/docs)")
    serve_gunicorn(f"{host}:{port}", workers=workers, threads=threads)


def _warn_about_source_privileges(database) -> None:
    import logging

    from .db.source_login import source_privilege_problems

    if problems := source_privilege_problems(database.source_dsn):
        message = "user SQL is not confined: " + "; ".join(problems)
        if database.source_url is None:
            message += "; set ETL_SOURCE_URL to a least-privilege login (etl-console db provision-source-role)"
        logging.getLogger("etl_console").warning(message)
        click.secho(f"WARNING: {message}", fg="yellow", err=True)


@main.command()  # it builds what it needs; no app (and no runner) in this process
@click.option("--label", "labels", multiple=True,
              help="Also take runs whose pipeline or source connection requires this label (repeatable; "
                   "adds to ETL_RUNNER_LABELS).")
def worker(labels: tuple[str, ...]) -> None:
    """Run a standalone runner: claims and executes queued runs until SIGTERM/SIGINT."""
    from dataclasses import replace

    from .runner.runner import Runner

    config = Config.from_env()
    config = replace(config, runner_labels=tuple(dict.fromkeys(config.runner_labels + labels)))
    from .logs import configure_logging
    from .metrics import serve_worker_metrics

    configure_logging(config.log_level, config.log_format)
    serve_worker_metrics(config)
    runner = Runner(_database(config), config, name="worker").start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"worker {runner.worker_id} running")
    stop.wait()
    click.echo("stopping: cancelling runs in flight")
    runner.stop()


@main.command("run")
@click.argument("name_or_id")
@click.option("--wait", is_flag=True, help="Execute here, show progress, and exit non-zero if the run fails.")
def run_command(name_or_id: str, wait: bool) -> None:
    """Start a run of the pipeline NAME_OR_ID."""
    from .db.models import RunStatus
    from .runner.runner import Runner
    from .services import audit, pipelines, runs
    from .services.errors import PipelineNotFound

    config = Config.from_env()
    database = _database(config)
    with database.sessions.begin() as session, audit.acting_as(audit.command_line_actor()):
        try:
            pipeline = pipelines.find_pipeline(session, name_or_id)
        except PipelineNotFound:
            raise click.ClickException(f"no pipeline named or with id {name_or_id!r}") from None
        pipeline, queued = runs.request_run(session, pipeline.id)
        run = runs.active_run(session, pipeline.id)
    if run is None:
        raise click.ClickException(f"pipeline {pipeline.name} is {pipeline.status}: a cancelled run is still stopping")
    click.echo(f"run {run.id} of {pipeline.name} {'queued' if queued else 'already running'}")
    if not wait:
        return
    runner = Runner(database, config, name="cli", only_run=run.id).start()  # this run only
    try:
        final = _watch(database, run.id)
    finally:
        runner.stop()
    if final.status != RunStatus.SUCCESS:
        click.echo(f"FAILED: {final.error_message}", err=True)
        sys.exit(1)
    click.echo(f"SUCCESS: {final.rows_written:,} rows written")


def _watch(database, run_id):
    """Poll the run until it ends and show its progress on stderr; returns the finished run.

    On a terminal: click's progress bar, redrawn in place (against the last successful run's row
    count when there is one). Anywhere else (a pipe, a CI log): a plain line every
    PLAIN_PROGRESS_EVERY_S and one at the end, never a carriage return."""
    import itertools

    from sqlalchemy import select

    from .db.models import PipelineRun, RunStatus

    def poll() -> PipelineRun:
        with database.sessions() as session:
            return session.get(PipelineRun, run_id)

    def rate(run: PipelineRun, elapsed: float) -> str:
        return f"{run.rows_read / max(elapsed, 1e-6):,.0f} rows/s"

    def line(run: PipelineRun, elapsed: float) -> str:
        return f"{run.status:<8} {run.rows_read:>12,} rows  {rate(run, elapsed):>15}  {elapsed:6.1f} s"

    started = time.monotonic()
    run = poll()
    if not sys.stderr.isatty():
        shown_at = None
        while True:
            elapsed = time.monotonic() - started
            if run.status != RunStatus.RUNNING or shown_at is None or elapsed - shown_at >= PLAIN_PROGRESS_EVERY_S:
                click.echo(line(run, elapsed), err=True)
                shown_at = elapsed
            if run.status != RunStatus.RUNNING:
                return run
            time.sleep(0.5)
            run = poll()

    with database.sessions() as session:
        expected = session.scalar(
            select(PipelineRun.rows_read)
            .where(PipelineRun.pipeline_id == run.pipeline_id, PipelineRun.status == RunStatus.SUCCESS)
            .order_by(PipelineRun.finished_at.desc())
            .limit(1)
        )
    # Without an expected size the bar has no length (itertools.count has none): click then draws
    # a moving marker and the count.
    size = {"length": expected} if expected else {"iterable": itertools.count()}
    with click.progressbar(
        **size, label=f"run {str(run_id)[:8]}", file=sys.stderr, show_pos=True,
        item_show_func=lambda shown: rate(shown, time.monotonic() - started) if shown is not None else None,
    ) as bar:
        while run.status == RunStatus.RUNNING:
            bar.update(max(0, run.rows_read - bar.pos), current_item=run)
            time.sleep(0.5)
            run = poll()
        bar.update(max(0, run.rows_read - bar.pos), current_item=run)
    click.echo(line(run, time.monotonic() - started), err=True)
    return run


PLAIN_PROGRESS_EVERY_S = 5.0


def _add_command_groups() -> None:
    from .cli_config import apply, export, plan
    from .cli_connections import connections
    from .cli_transforms import transforms

    main.add_command(connections)
    main.add_command(transforms)
    for command in (export, plan, apply):  # pipelines as code
        main.add_command(command)


_add_command_groups()
