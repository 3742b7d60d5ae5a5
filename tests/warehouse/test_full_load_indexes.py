"""How a full load uses the shadow: the target's indexes are set aside (the shadow is built without
them), rebuilt on the shadow after the COPY, and come back under their own names and definitions
when the shadow is published by the rename exchange; nothing of the shadow is left behind."""
from __future__ import annotations

import uuid

import pytest

from etl_console.db.engine import libpq_dsn
from etl_console.warehouse.full_load import FullLoad
from etl_console.warehouse.shadow import SHADOW_SCHEMA

INDEXES = "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass ORDER BY 1"
CONSTRAINTS = "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY 1"


class Hooks:
    """What a runner gives a load, reduced to recording what the load reports."""

    def __init__(self) -> None:
        self.published: dict | None = None
        self.path: str | None = None

    def bind_interrupt(self, interrupt, grace_s=None) -> None:
        pass

    def on_batch(self, rows_read: int, rows_written: int) -> None:
        pass

    def report(self, details: dict, persist: bool = False) -> None:
        self.path = details.get("path", {}).get("name", self.path)

    def commit(self, commit_target, timings, details=None) -> None:
        commit_target()
        self.published = (details or {}).get("publish")


@pytest.fixture
def target(sql):
    schema = f"full_load_test_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE SCHEMA {schema}")
    table = f"{schema}.items"
    sql(f"""CREATE TABLE {table} (
        id bigint CONSTRAINT items_pkey PRIMARY KEY WITH (fillfactor = 80),
        code text NOT NULL,
        CONSTRAINT items_code_key UNIQUE (code) WITH (fillfactor = 70) DEFERRABLE INITIALLY DEFERRED)""")
    sql(f"CREATE INDEX items_code_lower ON {table} (lower(code)) WITH (fillfactor = 60) WHERE id > 10")
    sql(f"INSERT INTO {table} VALUES (1, 'old')")
    yield table
    sql(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize("path", ["copy", "in-database"])
def test_a_full_load_rebuilds_the_targets_indexes_and_publishes_by_rename(dsn, source_url, sql, target, path):
    indexes, constraints = sql(INDEXES, (target,)), sql(CONSTRAINTS, (target,))
    old_oid = sql("SELECT %s::regclass::oid", (target,))[0][0]
    hooks = Hooks()
    # The least-privilege source login may write nowhere, so "auto" loads inside the database.
    source_dsn = libpq_dsn(source_url) if path == "in-database" else dsn
    load = FullLoad(source_dsn, dsn, "SELECT i::bigint AS id, 'code ' || i AS code FROM generate_series(1, 100) AS i",
                    target, batch_size=1000, statement_timeout_s=60, load_path="auto" if path == "in-database" else path)

    result = load.run(hooks)

    assert hooks.path == path

    assert (result.rows_read, result.rows_written) == (100, 100)
    # Index options (the fillfactors) included: anything that differed would refuse the rename.
    assert hooks.published["method"] == "rename", hooks.published
    assert sql("SELECT %s::regclass::oid <> %s", (target, old_oid)) == [(True,)]  # the shadow took its place
    assert sql(INDEXES, (target,)) == indexes
    assert sql(CONSTRAINTS, (target,)) == constraints
    assert sql(f"SELECT count(*), min(code) FROM {target}") == [(100, "code 1")]
    assert sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = %s AND c.relname LIKE %s", (SHADOW_SCHEMA, f"etl_shadow_{load.run_id.hex}%")) == [(0,)]
