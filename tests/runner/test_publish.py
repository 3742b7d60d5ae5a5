"""A full load is built in a shadow and published by an exchange of milliseconds: readers never wait
for the load, see only the old or the new rows, and everything attached to the target survives.

Each test names the exchange it expects: "rename" when nothing is bound to the target's OID,
"rows" (MVCC delete/update/insert from the shadow) when something is."""
from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from tests.conftest import wait_for
from tests.runner.helpers import film_rows_query, slow_film_query, target_count

SHADOWS = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'etl_console_shadow' AND c.relkind = 'r'"


def run_detail(client, pipeline_id: str, run_id: str) -> dict:
    response = client.get(f"/api/v1/pipelines/{pipeline_id}/runs/{run_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def load(client, create_pipeline, run_to_end, query: str, **fields) -> tuple[dict, dict]:
    pipeline = create_pipeline(source_query=query, **fields)
    run = run_to_end(pipeline["id"])
    return run, run_detail(client, pipeline["id"], run["id"])


class Reader(threading.Thread):
    """Polls count(*) every 10 ms and records how long each answer took. With a lock timeout, a
    query that waits that long for a lock is recorded in lock_timeouts instead of failing."""

    def __init__(self, dsn: str, table: str = "analytics.film_dim", lock_timeout_ms: int | None = None) -> None:
        super().__init__(daemon=True)
        self.dsn, self.table, self.lock_timeout_ms = dsn, table, lock_timeout_ms
        self.counts: list[int] = []
        self.waits: list[float] = []
        self.lock_timeouts = 0
        self.stop = threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            if self.lock_timeout_ms:
                cur.execute(f"SET lock_timeout = {int(self.lock_timeout_ms)}")
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    cur.execute(f"SELECT count(*) FROM {self.table}")
                except psycopg2.errors.LockNotAvailable:
                    self.lock_timeouts += 1
                    continue
                self.counts.append(cur.fetchone()[0])
                self.waits.append(time.monotonic() - started)
                time.sleep(0.01)
        conn.close()


@pytest.mark.parametrize("dependent_view", [False, True], ids=["no-dependents", "dependent-view"])
def test_readers_never_wait_for_the_load_and_see_old_or_new_rows(dependent_view, client, create_pipeline,
                                                                   run_to_end, sql, dsn):
    old_run, _ = load(client, create_pipeline, run_to_end, film_rows_query(1500, "old"))
    assert old_run["status"] == "SUCCESS"
    if dependent_view:
        sql("CREATE VIEW analytics.film_dim_count AS SELECT film_id, title FROM analytics.film_dim")
    # Rows exchange: a reader must never queue behind its lock at all, whatever the machine's load
    # does to the count's own time; 200 ms of lock wait counts as a conflict.
    reader = (Reader(dsn, "analytics.film_dim_count", lock_timeout_ms=200) if dependent_view
              else Reader(dsn, "analytics.film_dim"))
    reader.start()
    try:
        time.sleep(0.2)
        run, detail = load(client, create_pipeline, run_to_end, film_rows_query(1_000_000, "new"), batch_size=50_000)
        time.sleep(0.2)
    finally:
        reader.stop.set()
        reader.join(10)
        if dependent_view:
            sql("DROP VIEW analytics.film_dim_count")
    assert run["status"] == "SUCCESS", run
    assert detail["publish"]["method"] == ("rows" if dependent_view else "rename")
    assert set(reader.counts) == {1500, 1_000_000}, sorted(set(reader.counts))
    # The load took seconds; no answer waited for it. Rename: at most the exchange's lock (plus
    # scheduling noise on a shared machine); rows: readers never conflict with its lock at all.
    if dependent_view:
        assert reader.lock_timeouts == 0, (detail["publish"], detail["timings"])
    else:
        allowance = detail["publish"]["locked_ms"] / 1000 + 0.3
        assert max(reader.waits) <= allowance, (max(reader.waits), detail["publish"], detail["timings"])
    assert sql(SHADOWS) == [(0,)]


def test_plain_target_is_published_by_rename_and_keeps_everything(client, create_pipeline, run_to_end, sql):
    sql("DROP ROLE IF EXISTS etl_test_grantee")
    sql("CREATE ROLE etl_test_grantee")
    setup = [
        "CREATE INDEX film_dim_title_idx ON analytics.film_dim (title) WITH (fillfactor = 80)",
        "COMMENT ON INDEX analytics.film_dim_title_idx IS 'title lookups'",
        "COMMENT ON TABLE analytics.film_dim IS 'one row per film'",
        "COMMENT ON COLUMN analytics.film_dim.title IS 'as released'",
        "GRANT SELECT, UPDATE ON analytics.film_dim TO etl_test_grantee WITH GRANT OPTION",
        "GRANT SELECT ON analytics.film_dim TO PUBLIC",
        "ALTER TABLE analytics.film_dim ALTER COLUMN title SET STATISTICS 500",
        "ALTER TABLE analytics.film_dim SET (autovacuum_vacuum_scale_factor = 0.05)",
        "ALTER TABLE analytics.film_dim REPLICA IDENTITY FULL",
        "ALTER TABLE analytics.film_dim ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE analytics.film_dim CLUSTER ON film_dim_title_idx",
        "ALTER TABLE analytics.film_dim ADD CONSTRAINT film_dim_rating_range CHECK (rating BETWEEN 0 AND 10)",
    ]
    for statement in setup:
        sql(statement)
    fingerprint = """
        SELECT (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(c.relacl) a), c.reloptions, c.relreplident, c.relrowsecurity, obj_description(c.oid, 'pg_class'),
               col_description(c.oid, 2), (SELECT attstattarget FROM pg_attribute WHERE attrelid = c.oid AND attname = 'title'),
               (SELECT array_agg(pg_get_indexdef(indexrelid) || indisclustered ORDER BY pg_get_indexdef(indexrelid)) FROM pg_index WHERE indrelid = c.oid),
               (SELECT array_agg(conname || pg_get_constraintdef(oid) ORDER BY conname) FROM pg_constraint WHERE conrelid = c.oid),
               obj_description('analytics.film_dim_title_idx'::regclass, 'pg_class'), c.relowner
        FROM pg_class c WHERE c.oid = 'analytics.film_dim'::regclass"""
    try:
        before = sql(fingerprint)
        oid_before = sql("SELECT 'analytics.film_dim'::regclass::oid")
        run, detail = load(client, create_pipeline, run_to_end, film_rows_query(2000))
        assert run["status"] == "SUCCESS", run
        assert detail["publish"]["method"] == "rename", detail["publish"]["reasons"]
        assert sql("SELECT 'analytics.film_dim'::regclass::oid") != oid_before  # really a new table
        assert sql(fingerprint) == before
        assert sql("SELECT has_table_privilege('etl_test_grantee', 'analytics.film_dim', 'UPDATE WITH GRANT OPTION')") == [(True,)]
        assert target_count(sql) == 2000
        assert sql("SELECT n_live_tup > 0 OR reltuples > 0 FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                   "WHERE s.relid = 'analytics.film_dim'::regclass") == [(True,)]  # analyzed: statistics are there
        assert sql(SHADOWS) == [(0,)]
    finally:
        for statement in [
            "ALTER TABLE analytics.film_dim DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE analytics.film_dim REPLICA IDENTITY DEFAULT",
            "ALTER TABLE analytics.film_dim RESET (autovacuum_vacuum_scale_factor)",
            "ALTER TABLE analytics.film_dim ALTER COLUMN title SET STATISTICS -1",
            "ALTER TABLE analytics.film_dim DROP CONSTRAINT IF EXISTS film_dim_rating_range",
            "DROP INDEX IF EXISTS analytics.film_dim_title_idx",
            "COMMENT ON TABLE analytics.film_dim IS NULL",
            "COMMENT ON COLUMN analytics.film_dim.title IS NULL",
            "REVOKE ALL ON analytics.film_dim FROM etl_test_grantee, PUBLIC",
            "DROP ROLE IF EXISTS etl_test_grantee",
        ]:
            sql(statement)


# (setup, check after the load, teardown); each binds the target's OID, so the row exchange is taken.
DEPENDENTS = {
    "view-on-view": (
        ["CREATE VIEW analytics.film_dim_top AS SELECT film_id, title, rating FROM analytics.film_dim WHERE rating >= 1",
         "CREATE VIEW analytics.film_dim_top_titles AS SELECT title FROM analytics.film_dim_top"],
        "SELECT count(*) = 2000 FROM analytics.film_dim_top_titles",
        ["DROP VIEW analytics.film_dim_top_titles", "DROP VIEW analytics.film_dim_top"],
    ),
    "materialized-view": (
        ["CREATE MATERIALIZED VIEW analytics.film_dim_mv AS SELECT count(*) AS n FROM analytics.film_dim"],
        "REFRESH MATERIALIZED VIEW analytics.film_dim_mv; SELECT n = 2000 FROM analytics.film_dim_mv",
        ["DROP MATERIALIZED VIEW analytics.film_dim_mv"],
    ),
    "foreign-key-into-target": (
        ["CREATE TABLE analytics.film_notes (film_id uuid REFERENCES analytics.film_dim (film_id), note text)",
         "INSERT INTO analytics.film_notes SELECT film_id, 'kept' FROM analytics.film_dim LIMIT 10"],
        "SELECT count(*) = 10 FROM analytics.film_notes n JOIN analytics.film_dim d USING (film_id)",
        ["DROP TABLE analytics.film_notes"],
    ),
    "trigger": (
        ["CREATE TABLE analytics.film_audit (film_id uuid)",
         "CREATE FUNCTION analytics.film_audit_fn() RETURNS trigger LANGUAGE plpgsql AS "
         "$$ BEGIN INSERT INTO analytics.film_audit VALUES (NEW.film_id); RETURN NEW; END $$",
         "CREATE TRIGGER film_dim_audit AFTER INSERT ON analytics.film_dim FOR EACH ROW "
         "EXECUTE FUNCTION analytics.film_audit_fn()"],
        "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname = 'film_dim_audit' "
        "AND tgrelid = 'analytics.film_dim'::regclass) = 1 AND (SELECT count(*) FROM analytics.film_audit) = 1000",
        ["DROP TRIGGER film_dim_audit ON analytics.film_dim", "DROP FUNCTION analytics.film_audit_fn()",
         "DROP TABLE analytics.film_audit"],
    ),
    "rls-policy": (
        ["DROP ROLE IF EXISTS etl_test_policy_reader", "CREATE ROLE etl_test_policy_reader",
         "GRANT USAGE ON SCHEMA analytics TO etl_test_policy_reader",
         "GRANT SELECT ON analytics.film_dim TO etl_test_policy_reader",
         "ALTER TABLE analytics.film_dim ENABLE ROW LEVEL SECURITY",
         "CREATE POLICY film_dim_new_only ON analytics.film_dim FOR SELECT TO etl_test_policy_reader "
         "USING (title LIKE 'new %')"],
        "SELECT (SELECT relrowsecurity FROM pg_class WHERE oid = 'analytics.film_dim'::regclass) "
        "AND (SELECT count(*) FROM pg_policy WHERE polname = 'film_dim_new_only') = 1",
        ["DROP POLICY film_dim_new_only ON analytics.film_dim",
         "ALTER TABLE analytics.film_dim DISABLE ROW LEVEL SECURITY",
         "REVOKE ALL ON analytics.film_dim FROM etl_test_policy_reader",
         "REVOKE USAGE ON SCHEMA analytics FROM etl_test_policy_reader", "DROP ROLE etl_test_policy_reader"],
    ),
}


@pytest.mark.parametrize("kind", list(DEPENDENTS))
def test_objects_bound_to_the_target_survive_through_the_row_exchange(kind, client, create_pipeline, run_to_end, sql):
    setup, check, teardown = DEPENDENTS[kind]
    # 1000 rows that stay (same keys) plus 1000 new ones: FKs into kept rows stay satisfied.
    first, _ = load(client, create_pipeline, run_to_end, film_rows_query(1000, "new"))
    assert first["status"] == "SUCCESS"
    for statement in setup:
        sql(statement)
    try:
        oid_before = sql("SELECT 'analytics.film_dim'::regclass::oid")
        run, detail = load(client, create_pipeline, run_to_end, film_rows_query(2000, "new"))
        assert run["status"] == "SUCCESS", run
        assert detail["publish"]["method"] == "rows", detail["publish"]
        assert detail["publish"]["reasons"], detail["publish"]
        assert detail["publish"]["rows"] == {"deleted": 0, "updated": 0, "inserted": 1000}
        assert sql("SELECT 'analytics.film_dim'::regclass::oid") == oid_before
        assert sql(check) == [(True,)]
        assert target_count(sql) == 2000
        if kind == "rls-policy":  # the policy still filters for its role
            sql("SET ROLE etl_test_policy_reader")
            try:
                assert target_count(sql) == 2000
            finally:
                sql("RESET ROLE")
        assert sql(SHADOWS) == [(0,)]
    finally:
        for statement in teardown:
            sql(statement)


def test_row_exchange_refuses_to_orphan_referencing_rows(client, create_pipeline, run_to_end, sql):
    """A key that other rows reference cannot leave: the run fails and nothing changes (no CASCADE)."""
    load(client, create_pipeline, run_to_end, film_rows_query(100, "old"))
    sql("CREATE TABLE analytics.film_notes (film_id uuid REFERENCES analytics.film_dim (film_id), note text)")
    sql("INSERT INTO analytics.film_notes SELECT film_id, 'x' FROM analytics.film_dim LIMIT 1")
    try:
        before = sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id")
        run, detail = load(client, create_pipeline, run_to_end, film_rows_query(100, "other"))
        assert run["status"] == "FAILED"
        assert "film_notes" in run["error_message"], run["error_message"]
        assert sql("SELECT film_id, title FROM analytics.film_dim ORDER BY film_id") == before
        assert sql(SHADOWS) == [(0,)]
    finally:
        sql("DROP TABLE analytics.film_notes")


def test_a_long_reader_makes_the_publish_retry_without_blocking_other_readers(client, create_pipeline, run_to_end,
                                                                               sql, dsn):
    load(client, create_pipeline, run_to_end, film_rows_query(500, "old"))
    long_reader = psycopg2.connect(dsn)
    pipeline = create_pipeline(source_query=film_rows_query(3000, "new"))
    try:
        with long_reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM analytics.film_dim")  # holds ACCESS SHARE until commit
        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")

        def waiting():
            run = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]
            publish = run_detail(client, pipeline["id"], run["id"]).get("publish") or {}
            return run if publish.get("state") == "waiting" and publish.get("lock_attempts", 0) >= 3 else None

        run = wait_for(waiting, timeout=30, message="the publish to wait for the long reader")
        detail = run_detail(client, pipeline["id"], run["id"])
        assert any("AccessShareLock" in holder for holder in detail["publish"]["holders"]), detail["publish"]
        # Other readers are not queued behind the waiting publish.
        other = psycopg2.connect(dsn)
        try:
            for _ in range(20):
                started = time.monotonic()
                with other.cursor() as cur:
                    cur.execute("SELECT count(*) FROM analytics.film_dim")
                    assert cur.fetchone()[0] == 500
                other.rollback()
                assert time.monotonic() - started < 0.3
                time.sleep(0.02)
        finally:
            other.close()
        assert client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]["status"] == "RUNNING"
        long_reader.rollback()
    finally:
        long_reader.close()
    from tests.conftest import finished_run

    done = finished_run(client, pipeline["id"])
    assert done["status"] == "SUCCESS", done
    publish = run_detail(client, pipeline["id"], done["id"])["publish"]
    assert publish["state"] == "published" and publish["lock_attempts"] > 3 and publish["method"] == "rename"
    assert target_count(sql) == 3000


def test_a_pause_while_waiting_to_publish_leaves_the_target(client, create_pipeline, run_to_end, sql, dsn):
    load(client, create_pipeline, run_to_end, film_rows_query(500, "old"))
    long_reader = psycopg2.connect(dsn)
    pipeline = create_pipeline(source_query=film_rows_query(3000, "new"))
    try:
        with long_reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM analytics.film_dim")
        client.post(f"/api/v1/pipelines/{pipeline['id']}/run")

        def waiting():
            run = client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]
            return (run_detail(client, pipeline["id"], run["id"]).get("publish") or {}).get("state") == "waiting"

        wait_for(waiting, timeout=30, message="the publish to wait")
        client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
        from tests.conftest import finished_run

        run = finished_run(client, pipeline["id"], timeout=10)
    finally:
        long_reader.close()
    assert run["status"] == "FAILED" and "pause" in run["error_message"]
    assert target_count(sql) == 500
    assert sql(SHADOWS) == [(0,)]


@pytest.mark.parametrize("app_overrides", [{"load_path": "copy"}])  # the stream's own progress (rows counted)
def test_progress_of_a_slow_source_shows_within_a_second(client, create_pipeline, sql):
    """One row every 20 ms, batches of 1000: progress must not wait for a batch (or a 256 KiB buffer)."""
    pipeline = create_pipeline(source_query=slow_film_query(200, 1, 0.02), batch_size=1000)
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    started = time.monotonic()
    first = wait_for(lambda: client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]["rows_read"],
                     timeout=10, interval=0.05, message="progress")
    assert time.monotonic() - started < 2.5, first  # claim (poll) + ~1 s
    seen = [first]
    while client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]["status"] == "RUNNING":
        seen.append(client.get(f"/api/v1/pipelines/{pipeline['id']}/runs").get_json()[0]["rows_read"])
        time.sleep(0.2)
    assert len(set(seen)) >= 3, seen  # it grew while running, not only at the end
    client.post(f"/api/v1/pipelines/{pipeline['id']}/pause")
