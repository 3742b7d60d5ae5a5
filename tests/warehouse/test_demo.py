"""The demo only ever regenerates tables it created, never with CASCADE, and never shrinks unasked."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from etl_console.db.engine import libpq_dsn
from etl_console.warehouse.demo import DemoRefused, load_demo_data


@pytest.fixture
def scratch(server_url):
    """An empty database of its own, and a helper to run SQL in it."""
    name = f"etl_demo_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(libpq_dsn(server_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    connection = psycopg2.connect(libpq_dsn(url))
    connection.autocommit = True

    def run(statement: str):
        with connection.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else None

    run.url = url
    run.dsn = libpq_dsn(url)
    yield run
    connection.close()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_a_table_the_demo_did_not_create_is_never_touched(scratch):
    scratch("CREATE SCHEMA content")
    scratch("CREATE TABLE content.film_work (id uuid PRIMARY KEY, title text)")
    scratch("INSERT INTO content.film_work SELECT md5(i::text)::uuid, 'mine ' || i FROM generate_series(1, 7) i")
    scratch("CREATE VIEW content.my_report AS SELECT count(*) FROM content.film_work")
    with pytest.raises(DemoRefused, match="content.film_work exists and was not created by the demo"):
        load_demo_data(scratch.dsn, 100, 200)
    assert scratch("SELECT count(*), min(title) FROM content.film_work") == [(7, "mine 1")]
    assert scratch("SELECT * FROM content.my_report") == [(7,)]


def test_the_cli_refuses_with_a_clear_message_and_exit_code(scratch):
    scratch("CREATE SCHEMA ugc")
    scratch("CREATE TABLE ugc.ratings (film_id uuid, rating int)")
    env = dict(os.environ, ETL_DATABASE_URL=scratch.url)
    subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main()", "db", "upgrade"],
                   env=env, capture_output=True, check=True, timeout=120)
    result = subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main()", "demo", "--films", "10"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ugc.ratings exists and was not created by the demo" in result.stderr
    assert scratch("SELECT to_regclass('ugc.ratings') IS NOT NULL") == [(True,)]


def test_a_larger_demo_is_kept_unless_a_size_is_asked_for(scratch):
    first = load_demo_data(scratch.dsn, 3000, 6000)
    assert (first.films, first.ratings, first.regenerated) == (3000, 6000, True)
    kept = load_demo_data(scratch.dsn, None, None)  # what `serve --demo` asks
    assert (kept.films, kept.ratings, kept.regenerated) == (3000, 6000, False)
    assert scratch("SELECT count(*) FROM content.film_work") == [(3000,)]
    resized = load_demo_data(scratch.dsn, 1000, 5000)  # `etl-console demo --films 1000 --ratings 5000`
    assert (resized.films, resized.ratings, resized.regenerated) == (1000, 5000, True)
    assert scratch("SELECT count(*) FROM content.film_work") == [(1000,)]


def test_a_smaller_demo_grows_to_the_default(scratch):
    load_demo_data(scratch.dsn, 10, 20)
    grown = load_demo_data(scratch.dsn, None, None)
    assert (grown.films, grown.ratings) == (1000, 5000)


def test_a_view_on_the_demo_stops_a_resize_instead_of_being_dropped(scratch):
    load_demo_data(scratch.dsn, 100, 200)
    scratch("CREATE VIEW content.titles AS SELECT title FROM content.film_work")
    with pytest.raises(DemoRefused, match="other objects depend on it"):
        load_demo_data(scratch.dsn, 150, 200)
    assert scratch("SELECT count(*) FROM content.titles") == [(100,)]
