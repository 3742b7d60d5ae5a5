"""User SQL runs as a least-privilege login: tried as an attacker would, past the save-time guard.

The guard (services/sql_guard.py) refuses the known names with a 400, but it is not the boundary.
These tests run each attack on a source session opened exactly as the runner opens it, and through
real runs with functions the guard does not list, and check that PostgreSQL itself refuses.
"""
from __future__ import annotations

import psycopg2
import pytest
from psycopg2 import errors as pg_errors

from etl_console.db.engine import libpq_dsn
from etl_console.db.source_login import (
    DANGEROUS_ROLES,
    DEFAULT_LOGIN,
    login_url,
    provision_source_login,
    source_privilege_problems,
)
from etl_console.warehouse.source import open_read_only
from tests.conftest import close_app, finished_run, make_app

# Every way the PostgreSQL docs give to run SQL handed over as a string, each aimed at something the
# login must not reach. {q} is the inner query.
STRING_EXECUTORS = [
    "SELECT ts_stat('SELECT to_tsvector(string_agg(rolpassword, '' '')) FROM pg_authid')",
    "SELECT ts_rewrite('a'::tsquery, 'SELECT rolname::tsquery, rolpassword::tsquery FROM pg_authid')",
    "SELECT query_to_xml('SELECT rolpassword FROM pg_authid', true, true, '')",
    "SELECT query_to_xmlschema('SELECT rolpassword FROM pg_authid', true, true, '')",
    "SELECT query_to_xml_and_xmlschema('SELECT * FROM etl_pipelines', true, true, '')",
    "SELECT table_to_xml('pg_authid', true, false, '')",
    "SELECT table_to_xml('etl_pipelines', true, false, '')",
    "SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, true, '')",
    "SELECT query_to_xml('SELECT pg_ls_dir(''/'')', true, true, '')",
    "SELECT query_to_xml('SELECT pg_reload_conf()', true, true, '')",
    "SELECT query_to_xml('SELECT lo_export(lo_from_bytea(0, ''x''), ''/tmp/etl-owned'')', true, true, '')",
]
DIRECT_ATTACKS = [
    "SELECT rolname, rolpassword FROM pg_authid",
    "SELECT * FROM etl_pipelines",
    "SELECT * FROM etl_pipeline_runs",
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT pg_read_binary_file('/etc/passwd')",
    "SELECT pg_ls_dir('/')",
    "SELECT pg_stat_file('/etc/hostname')",
    "SELECT current_setting('data_directory')",
    "SELECT pg_reload_conf()",
    "SELECT pg_rotate_logfile()",
    "SELECT lo_import('/etc/hostname')",
    "SELECT lo_from_bytea(0, 'x')",
    "SELECT set_config('role', 'postgres', false)",
    "SELECT set_config('session_authorization', 'postgres', false)",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_try_advisory_xact_lock(1)",
    "SELECT pg_notify('etl', 'x')",
]


@pytest.fixture
def source_cursor(source_url, app):
    """A source session as the runner opens it: the source login, READ ONLY, statement_timeout.
    (After `app`, which has migrated: the metadata tables exist and are worth attacking.)"""
    connection = psycopg2.connect(libpq_dsn(source_url))
    cursor = open_read_only(connection, statement_timeout_s=10)
    yield cursor
    connection.close()


def refused(cursor, statement: str) -> BaseException | None:
    cursor.execute("SAVEPOINT attack")
    try:
        cursor.execute(statement)
        cursor.fetchall()
    except psycopg2.Error as error:
        cursor.execute("ROLLBACK TO SAVEPOINT attack")
        return error
    return None


@pytest.fixture(scope="session")
def xml_supported(dsn) -> bool:
    """The embedded server is built without libxml; the table_to_xml family then cannot even start."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT xmlparse(content '<a/>')")
        return True
    except pg_errors.FeatureNotSupported:
        return False
    finally:
        connection.close()


@pytest.mark.parametrize("statement", STRING_EXECUTORS + DIRECT_ATTACKS)
def test_the_source_login_is_refused(source_cursor, statement, xml_supported):
    if "_to_xml(" in statement and not xml_supported:
        pytest.skip("this server has no libxml, so the XML family is refused before any SQL runs")
    error = refused(source_cursor, statement)
    assert error is not None, f"{statement} succeeded as the source login"
    assert isinstance(error, (pg_errors.InsufficientPrivilege, pg_errors.ReadOnlySqlTransaction)), repr(error)


def test_a_whole_schema_as_xml_holds_nothing_of_the_metadata(source_cursor, xml_supported, create_pipeline):
    if not xml_supported:
        pytest.skip("this server has no libxml")
    create_pipeline(name="secret_pipeline_name")
    source_cursor.execute("COMMIT")
    source_cursor.execute("SELECT schema_to_xml('public', true, false, '')::text")
    assert "secret_pipeline_name" not in source_cursor.fetchone()[0]


def test_terminating_a_service_backend_is_refused(source_cursor, sql):
    service_pid = sql("SELECT pg_backend_pid()")[0][0]
    for statement in (f"SELECT pg_terminate_backend({service_pid})", f"SELECT pg_cancel_backend({service_pid})",
                      f"SELECT query_to_xml('SELECT pg_terminate_backend({service_pid})', true, true, '')"):
        assert isinstance(refused(source_cursor, statement), pg_errors.InsufficientPrivilege), statement
    assert sql("SELECT 1") == [(1,)]  # the service's session is alive


def test_the_session_user_cannot_climb(source_cursor):
    source_cursor.execute("SELECT session_user, current_user, "
                          "(SELECT rolsuper FROM pg_roles WHERE rolname = session_user)")
    assert source_cursor.fetchone() == (DEFAULT_LOGIN, DEFAULT_LOGIN, False)
    assert refused(source_cursor, "SELECT set_config('role', 'none', true)") is None  # resetting to itself is all
    source_cursor.execute("SELECT current_user")
    assert source_cursor.fetchone() == (DEFAULT_LOGIN,)


def test_what_the_login_may_read(source_cursor):
    source_cursor.execute("SELECT count(*) FROM content.film_work")
    assert source_cursor.fetchone()[0] > 0
    source_cursor.execute("SELECT count(*) FROM analytics.film_dim")  # the targets, for reconciliation
    source_cursor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE usename <> session_user AND query <> '<insufficient privilege>'"
    )
    assert source_cursor.fetchone() == (0,)  # other sessions' SQL text stays hidden


def test_a_table_outside_the_source_schemas_is_not_readable(source_cursor, sql):
    sql("CREATE SCHEMA IF NOT EXISTS private")
    sql("CREATE TABLE IF NOT EXISTS private.salaries (name text, amount int)")
    try:
        assert isinstance(refused(source_cursor, "SELECT * FROM private.salaries"), pg_errors.InsufficientPrivilege)
        assert isinstance(refused(source_cursor, "SELECT table_to_xml('private.salaries', true, false, '')"),
                          pg_errors.InsufficientPrivilege)
    finally:
        sql("DROP TABLE private.salaries")
        sql("DROP SCHEMA private")


def test_a_new_table_in_a_source_schema_is_readable_by_default(source_cursor, sql):
    sql("CREATE TABLE content.fresh AS SELECT 1 AS x")
    try:
        source_cursor.execute("COMMIT")  # a new snapshot, which sees the new table
        source_cursor.execute("SELECT x FROM content.fresh")
        assert source_cursor.fetchall() == [(1,)]
    finally:
        source_cursor.execute("COMMIT")  # release its lock on the table before dropping it
        sql("DROP TABLE content.fresh")


ROLE_ROWS_INTO_FILM_DIM = (
    "SELECT md5(rolname)::uuid AS film_id, rolname AS title, 1.0 AS rating FROM pg_authid"
)
METADATA_ROWS_INTO_FILM_DIM = "SELECT id AS film_id, name AS title, 1.0 AS rating FROM etl_pipelines"
SHADOW_OF_THE_HASHES = (  # a view over pg_authid would be refused too: privileges are checked on the view's owner
    "SELECT md5(usename)::uuid AS film_id, passwd AS title, 1.0 AS rating FROM pg_shadow"
)


@pytest.mark.parametrize("query", [ROLE_ROWS_INTO_FILM_DIM, METADATA_ROWS_INTO_FILM_DIM, SHADOW_OF_THE_HASHES])
def test_a_run_cannot_load_what_the_login_may_not_read(query, client, create_pipeline, sql):
    sql("INSERT INTO analytics.film_dim VALUES (md5('kept')::uuid, 'kept', 1)")
    pipeline = create_pipeline(source_query=query)  # the guard does not list these: the boundary must hold
    client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
    run = finished_run(client, pipeline["id"])
    assert run["status"] == "FAILED"
    assert "permission denied" in run["error_message"]
    assert "SCRAM" not in run["error_message"] and "md5" not in run["error_message"].lower().replace("md5(", "")
    assert sql("SELECT title FROM analytics.film_dim") == [("kept",)]


@pytest.mark.parametrize("query", [
    "SELECT * FROM ts_stat('SELECT 1')",
    "SELECT query_to_xml('SELECT 1', true, true, '') AS film_id",
    "SELECT pg_try_advisory_lock(42) AS film_id",
    "SELECT pg_catalog.pg_advisory_xact_lock_shared(1, 2) AS film_id",
    'SELECT "PG_NOTIFY"(\'a\', \'b\') AS film_id',
])
def test_the_guard_still_answers_the_known_names_with_a_clear_400(client, query):
    response = client.post("/api/v1/pipelines/", json={
        "name": "attack", "target_table": "analytics.film_dim", "source_query": query})
    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("source_query must not call ")


def test_reconcile_runs_as_the_source_login(client, create_pipeline):
    pipeline = create_pipeline(source_query=METADATA_ROWS_INTO_FILM_DIM)
    response = client.post(f"/api/v1/pipelines/{pipeline['id']}/reconcile")
    assert response.status_code == 400
    assert "permission denied" in response.get_json()["detail"]


# the privilege check -------------------------------------------------------------------------------
def test_the_provisioned_login_passes_the_check(source_url):
    assert source_privilege_problems(libpq_dsn(source_url)) == []


def test_a_superuser_source_fails_health_and_says_why(database_url, clean_database):
    """No ETL_SOURCE_URL on an external database: user SQL would run as the service's own login."""
    app = make_app(database_url, source_url=None, runner="off")
    try:
        reply = app.test_client().get("/api/v1/health")
        assert reply.status_code == 503
        problem = reply.get_json()["checks"]["source_privileges"]
        assert "is a superuser" in problem and "ETL_SOURCE_URL" in problem
    finally:
        close_app(app)


def test_a_login_holding_a_dangerous_role_fails_the_check(database_url, sql):
    sql("DROP ROLE IF EXISTS etl_test_risky")
    sql("CREATE ROLE etl_test_risky LOGIN PASSWORD 'risky'")
    sql("GRANT pg_read_server_files, pg_signal_backend TO etl_test_risky")
    try:
        problems = source_privilege_problems(libpq_dsn(login_url(database_url, "etl_test_risky", "risky")))
        assert "etl_test_risky is a member of pg_read_server_files" in problems
        assert "etl_test_risky is a member of pg_signal_backend" in problems
        # Provisioning that login repairs it.
        provision_source_login(libpq_dsn(database_url), login="etl_test_risky", password="risky",
                               schemas=["content"], tables=[])
        assert source_privilege_problems(libpq_dsn(login_url(database_url, "etl_test_risky", "risky"))) == []
    finally:
        sql("DROP OWNED BY etl_test_risky")
        sql("DROP ROLE etl_test_risky")


def test_every_listed_dangerous_role_exists_on_this_server(sql):
    names = {name for (name,) in sql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'pg\\_%%'")}
    assert set(DANGEROUS_ROLES) <= names


def test_the_console_warns_on_every_page_when_sql_is_not_confined(database_url, clean_database):
    app = make_app(database_url, source_url=None, runner="off")
    try:
        page = app.test_client().get("/").get_data(as_text=True)
        assert 'data-banner="source-privileges"' in page and "is a superuser" in page
    finally:
        close_app(app)


def test_a_confined_console_shows_no_warning(client):
    assert 'data-banner="source-privileges"' not in client.get("/").get_data(as_text=True)
