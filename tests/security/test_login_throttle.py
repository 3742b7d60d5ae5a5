"""Guessing console passwords: failures are throttled per user name and per client address, with
waits that grow, and the counters are shared by every web process (they live in the database).

Limits (etl_console.auth): per user 5 a minute, 20 an hour, 100 a day; per address 10 a minute,
50 an hour, 300 a day. Only failed attempts count.
"""
from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from etl_console import auth

PASSWORD = "operator-password-1"
BOB_PASSWORD = "bob-password-333"


@pytest.fixture(scope="module")
def users() -> str:
    return f"alice={generate_password_hash(PASSWORD)},bob={generate_password_hash(BOB_PASSWORD)}"


@pytest.fixture
def app_overrides(users):
    return {"console_users": users, "START_RUNNER": False}


def attempt(client, name: str, password: str, address: str = "203.0.113.7"):
    """One login POST as a browser at `address` sends it (fresh CSRF token each time)."""
    environ = {"REMOTE_ADDR": address}
    page = client.get("/auth/login", environ_base=environ)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post(
        "/auth/login",
        data={"csrf_token": token, "username": name, "password": password, "next": "/"},
        environ_base=environ,
    )


def test_thirty_wrong_passwords_are_not_all_answered(client, sql):
    replies = [attempt(client, "alice", f"guess-{n}") for n in range(30)]
    statuses = [r.status_code for r in replies]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 25, statuses  # the password is not even checked any more
    throttled = replies[-1]
    assert 0 < int(throttled.headers["Retry-After"]) <= 60
    page = throttled.get_data(as_text=True)
    assert "Too many failed sign-in attempts. Try again in" in page
    assert 'name="username"' in page  # still the login page, with the message on it
    # The right password, too, waits out the window: the user name is what is being guessed.
    assert attempt(client, "alice", PASSWORD).status_code == 429
    assert attempt(client, "alice", PASSWORD, address="198.51.100.9").status_code == 429
    # Another user at the same address (5 failures there, under its 10) signs in.
    assert attempt(client, "bob", BOB_PASSWORD).status_code == 302


def test_spraying_many_names_from_one_address_is_throttled(client):
    statuses = [attempt(client, f"user{n}", "Winter2026!", address="203.0.113.50").status_code for n in range(15)]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses
    # Everyone at that address now waits, even with the right password ...
    assert attempt(client, "bob", BOB_PASSWORD, address="203.0.113.50").status_code == 429
    # ... but nobody else does: the limit is that address's.
    assert attempt(client, "bob", BOB_PASSWORD, address="203.0.113.51").status_code == 302


def test_an_ipv6_client_cannot_rotate_through_its_64(client):
    statuses = [
        attempt(client, f"user{n}", "guess", address=f"2001:db8:1:2::{n + 1:x}").status_code for n in range(12)
    ]
    assert statuses.count(429) == 2, statuses
    assert attempt(client, "bob", BOB_PASSWORD, address="2001:db8:1:3::1").status_code == 302


def test_successes_do_not_count(client):
    for _ in range(12):
        assert attempt(client, "bob", BOB_PASSWORD).status_code == 302
    assert attempt(client, "alice", "wrong").status_code == 401


def test_waits_grow_with_the_window_that_was_used_up(client, sql):
    """After the hour's 20 failures, the wait is the rest of the hour, not a minute."""
    for _ in range(20):
        attempt(client, "alice", "wrong", address="203.0.113.60")
        # Each minute's allowance used up: start the next minute (the server's clock is the
        # database's, so the window is moved there).
        sql("UPDATE etl_login_throttle SET expires_at = now() - interval '1 second' WHERE key LIKE '%%/1/minute%%'")
    reply = attempt(client, "alice", "wrong", address="203.0.113.61")
    assert reply.status_code == 429
    assert int(reply.headers["Retry-After"]) > 60 * 50
    assert "Try again in" in reply.get_data(as_text=True) and "minutes" in reply.get_data(as_text=True)


def test_counters_are_shared_by_every_web_process(database_url, clean_database, users, client):
    """Two apps stand for two gunicorn workers: failures on either count against one allowance."""
    from tests.conftest import close_app, make_app

    other_worker = make_app(database_url, START_RUNNER=False, console_users=users)
    try:
        second = other_worker.test_client()
        assert [attempt(client, "alice", "wrong").status_code for _ in range(3)] == [401] * 3
        assert [attempt(second, "alice", "wrong").status_code for _ in range(2)] == [401] * 2
        assert attempt(second, "alice", "wrong").status_code == 429
        assert attempt(client, "alice", "wrong").status_code == 429
    finally:
        close_app(other_worker)


def test_counters_expire_with_their_window(client, sql):
    for _ in range(6):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", PASSWORD).status_code == 429
    sql("UPDATE etl_login_throttle SET expires_at = now() - interval '1 second' WHERE key LIKE '%%/1/minute%%'")
    assert attempt(client, "alice", PASSWORD).status_code == 302


def test_the_limits_are_the_documented_ones():
    assert auth.LOGIN_LIMITS_PER_USER == "5 per minute; 20 per hour; 100 per day"
    assert auth.LOGIN_LIMITS_PER_ADDRESS == "10 per minute; 50 per hour; 300 per day"
