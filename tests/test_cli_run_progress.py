"""`etl-console run NAME --wait` shows progress fit for where stderr goes: click's progress bar on a
terminal, plain lines (no carriage returns) into a pipe or a log, and no Alembic chatter anywhere."""
from __future__ import annotations

import logging
import os
import pty
import re
import subprocess
import sys
import uuid

import psycopg2
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from etl_console.cli import main
from etl_console.db.engine import libpq_dsn
from tests.runner.helpers import film_rows_query

PLAIN_LINE = re.compile(r"^(RUNNING|SUCCESS|FAILED)\s+[\d,]+ rows\s+[\d,]+ rows/s\s+[\d.]+ s$")


def run_wait(database_url: str, name: str, stderr) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from etl_console.cli import main; main()", "run", name, "--wait"],
        env=dict(os.environ, ETL_DATABASE_URL=database_url), stdout=subprocess.PIPE, stderr=stderr,
        timeout=120,
    )


def test_into_a_pipe_progress_is_plain_lines(no_runner, create_pipeline, database_url):
    create_pipeline(name="cli_piped", source_query=film_rows_query(5000))
    result = run_wait(database_url, "cli_piped", subprocess.PIPE)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "\r" not in stderr
    lines = stderr.splitlines()
    assert lines and all(PLAIN_LINE.match(line) for line in lines), lines
    assert lines[-1].startswith("SUCCESS") and " 5,000 rows" in lines[-1]
    assert "SUCCESS: 5,000 rows written" in result.stdout.decode()


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed: Linux reports EIO
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_on_a_terminal_progress_is_a_bar_drawn_in_place(no_runner, create_pipeline, database_url):
    create_pipeline(name="cli_terminal", source_query=film_rows_query(5000))
    drawn = []
    for _ in range(2):  # the second run is measured against the first one's size
        controller, terminal = pty.openpty()
        try:
            result = run_wait(database_url, "cli_terminal", terminal)
        finally:
            os.close(terminal)
        drawn.append(read_all(controller))
        os.close(controller)
        assert result.returncode == 0, drawn[-1]
    first, second = drawn
    assert "\r" in first and re.search(r"\[[-#= ]+\]", first), first  # click's bar, no size known yet
    assert "5000/5000" in second and re.search(r"\[#+\]", second), second  # a full bar
    assert re.search(r"SUCCESS\s+5,000 rows", second)


def test_an_unmigrated_database_is_refused_with_what_to_run(database_url, caplog):
    """`run` never migrates (only `db upgrade` and `serve` do): on a fresh database it says what to run,
    and no Alembic line reaches its output."""
    name = f"etl_cli_fresh_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(libpq_dsn(database_url))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        fresh = make_url(database_url).set(database=name).render_as_string(hide_password=False)
        caplog.set_level(logging.INFO)
        result = CliRunner().invoke(main, ["run", "nothing_here", "--wait"], env={"ETL_DATABASE_URL": fresh})
        assert result.exit_code == 1 and "run `etl-console db upgrade`" in result.output, result.output
        assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
        assert "alembic" not in result.output.lower()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
