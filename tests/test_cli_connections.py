"""`etl-console connections list|test|rotate-key`, run as a user would run it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from etl_console.db.secret_box import derive_key
from tests.api.conftest import body_of
from tests.connection_helpers import connection_fields

SECRET = "test-secret"  # the tests' ETL_SECRET_KEY (tests/conftest.make_app): the CLI derives the same key
PASSWORD = "cli-password-never-printed"


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def etl_console(*args: str, database_url: str, **env_settings: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ETL_DATABASE_URL=database_url, ETL_SECRET_KEY=SECRET)
    env.update(env_settings)
    return subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def connections(client, source_url):
    good = {**connection_fields(source_url), "password": PASSWORD}
    body_of(client.post("/api/v1/connections/", json={"name": "good", **good, "max_concurrent_runs": 2}), 201)
    body_of(client.post("/api/v1/connections/", json={"name": "down", "host": "127.0.0.1", "port": 1,
                                                     "database": "d", "user": "u", "password": PASSWORD}), 201)


def test_list_and_test(database_url, connections):
    listed = etl_console("connections", "list", database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["down", "good"]
    assert "password set" in lines[1] and "max runs 2" in lines[1] and "never tested" in lines[1]
    good = etl_console("connections", "test", "good", database_url=database_url)
    assert good.returncode == 0 and "good: ok, PostgreSQL" in good.stdout, good.stderr
    down = etl_console("connections", "test", "down", database_url=database_url)
    assert down.returncode == 1 and "down: FAILED: cannot connect" in down.stderr
    missing = etl_console("connections", "test", "nope", database_url=database_url)
    assert missing.returncode == 1 and "no connection named" in missing.stderr
    relisted = etl_console("connections", "list", database_url=database_url).stdout
    assert "ok, PostgreSQL" in relisted and "FAILED" in relisted
    for result in (listed, good, down, missing):
        assert PASSWORD not in result.stdout + result.stderr


def test_rotate_key_moves_passwords_to_the_new_key(database_url, connections, sql):
    new_key = Fernet.generate_key().decode()
    old_key = derive_key(SECRET).decode()
    before = sql("SELECT name, password_token FROM etl_connections ORDER BY name")
    rotated = etl_console("connections", "rotate-key", database_url=database_url,
                          ETL_CONNECTION_KEY=f"{new_key},{old_key}")
    assert rotated.returncode == 0 and "2 password(s)" in rotated.stdout, rotated.stderr
    after = sql("SELECT name, password_token FROM etl_connections ORDER BY name")
    assert all(bytes(a[1]) != bytes(b[1]) for a, b in zip(after, before))
    audited = sql("SELECT actor, actor_kind FROM etl_audit_log WHERE action = 'connection.rotate'")
    assert len(audited) == 2 and all(actor.startswith("cli:") and kind == "system" for actor, kind in audited)
    # Only the new key now: the passwords still open.
    assert Fernet(new_key.encode()).decrypt(bytes(after[0][1])).decode() == PASSWORD
    good = etl_console("connections", "test", "good", database_url=database_url, ETL_CONNECTION_KEY=new_key)
    assert good.returncode == 0, good.stderr
    stale = etl_console("connections", "test", "good", database_url=database_url)  # the old derived key alone
    assert stale.returncode == 1 and "cannot be decrypted" in stale.stderr
