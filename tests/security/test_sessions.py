"""Console sessions end when they should: at logout (server-side, whatever the browser kept) and
12 hours after sign-in. Tried as someone holding a copy of the cookie would try."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import generate_password_hash

from etl_console.web_sessions import ServerSideSessionInterface

PASSWORD = "operator-password-1"
VIEWER_PASSWORD = "viewer-password-22"
COOKIE = "session"


@pytest.fixture(scope="module")
def users() -> str:
    return f"alice={generate_password_hash(PASSWORD)},bob:viewer={generate_password_hash(VIEWER_PASSWORD)}"


@pytest.fixture
def app_overrides(users):
    return {"console_users": users, "START_RUNNER": False}


def csrf_token(client, path: str = "/auth/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def sign_in(client, name: str = "alice", password: str = PASSWORD):
    reply = client.post(
        "/auth/login", data={"csrf_token": csrf_token(client), "username": name, "password": password, "next": "/"}
    )
    assert reply.status_code == 302, reply.get_data(as_text=True)[:300]
    return reply


def session_cookie(client) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "no session cookie"
    return cookie.value


def stranger_with(app, cookie_value: str):
    """Another browser that was handed a copy of the cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, cookie_value)
    return other


def assert_asks_for_login(client) -> None:
    page = client.get("/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/auth/login"), page.status_code
    htmx = client.get("/pipelines/live", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/auth/login")


def test_sessions_are_server_side(app, client, sql):
    assert isinstance(app.session_interface, ServerSideSessionInterface)
    sign_in(client)
    rows = sql("SELECT user_name, id_digest FROM etl_console_sessions")
    assert [r[0] for r in rows] == ["alice"]
    cookie = session_cookie(client)
    assert rows[0][1] not in cookie  # the table keeps a digest, not the id the browser holds
    payload = SecureCookieSessionInterface().get_signing_serializer(app).loads(cookie)
    assert set(payload) == {"_sid"}  # the cookie carries the id and nothing else


def test_reusing_the_cookie_after_logout_gives_the_login_page(app, client, sql):
    sign_in(client)
    copied = session_cookie(client)
    assert stranger_with(app, copied).get("/").status_code == 200  # the copy works while signed in

    out = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    assert out.status_code == 302
    assert sql("SELECT count(*) FROM etl_console_sessions")[0][0] == 0

    replayed = stranger_with(app, copied)
    assert_asks_for_login(replayed)
    # Not for a write either, not even with the CSRF token the page showed before logout.
    assert replayed.post("/pipelines/new", data={"csrf_token": "x", "name": "p"}).status_code in (400, 401)
    assert sql("SELECT count(*) FROM etl_pipelines")[0][0] == 0


def test_the_ended_cookie_is_deleted_from_the_browser(app, client):
    sign_in(client)
    copied = session_cookie(client)
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    replayed = stranger_with(app, copied)
    reply = replayed.get("/")
    deleted = [c for c in reply.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}=;")]
    assert deleted, reply.headers.getlist("Set-Cookie")


def test_session_lives_twelve_hours_from_sign_in(app, client, sql):
    assert app.permanent_session_lifetime == timedelta(hours=12)
    reply = sign_in(client)
    set_cookie = next(c for c in reply.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}="))
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", set_cookie).group(1))
    now = datetime.now(timezone.utc)
    assert timedelta(hours=11, minutes=58) < expires - now <= timedelta(hours=12, minutes=1)
    (lifetime,) = sql("SELECT expires_at - created_at FROM etl_console_sessions")[0]
    assert lifetime == timedelta(hours=12)

    # Activity does not stretch it: the row's end stays where sign-in put it.
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert sql("SELECT expires_at - created_at FROM etl_console_sessions")[0][0] == timedelta(hours=12)

    # Twelve hours later (moved in the database: the server's clock is what counts).
    sql("UPDATE etl_console_sessions SET created_at = created_at - interval '12 hours 1 second', "
        "expires_at = expires_at - interval '12 hours 1 second'")
    assert_asks_for_login(client)


def test_a_signed_in_cookie_from_before_server_side_sessions_no_longer_counts(app, client):
    """Such a cookie (the user's name signed into the cookie itself) could never be ended by logout."""
    legacy = SecureCookieSessionInterface().get_signing_serializer(app).dumps({"auth_user": "alice", "_permanent": True})
    assert_asks_for_login(stranger_with(app, legacy))


@pytest.mark.parametrize("value", ["garbage", "eyJfc2lkIjoibm9wZSJ9.AAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBB", ""])
def test_forged_or_broken_cookies_are_anonymous(app, value):
    assert_asks_for_login(stranger_with(app, value))


def test_an_unknown_session_id_is_anonymous(app):
    """Signed correctly (as with a leaked secret key) but naming no live session."""
    forged = SecureCookieSessionInterface().get_signing_serializer(app).dumps({"_sid": "made-up-id", "auth_user": "alice"})
    assert_asks_for_login(stranger_with(app, forged))


def test_signing_in_on_a_planted_cookie_gets_a_new_session(app, client, sql):
    """Session fixation: an attacker plants their own (viewer) session cookie in the victim's
    browser; the victim signs in as an operator. The attacker's copy must not become the victim's."""
    attacker = app.test_client()
    sign_in(attacker, "bob", VIEWER_PASSWORD)
    planted = session_cookie(attacker)

    victim = stranger_with(app, planted)
    sign_in(victim, "alice", PASSWORD)
    assert session_cookie(victim) != planted
    # The session the browser brought is ended, not taken over: the attacker's copy opens nothing.
    assert [r[0] for r in sql("SELECT user_name FROM etl_console_sessions")] == ["alice"]
    assert_asks_for_login(stranger_with(app, planted))
    assert victim.get("/").status_code == 200


def test_logout_ends_only_that_session(app, sql):
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop)
    sign_in(phone)
    assert sql("SELECT count(*) FROM etl_console_sessions")[0][0] == 2
    laptop.post("/auth/logout", data={"csrf_token": csrf_token(laptop, "/")})
    assert_asks_for_login(laptop)
    assert phone.get("/").status_code == 200


def test_a_user_removed_from_the_configuration_is_signed_out(database_url, clean_database, users, client):
    from tests.conftest import close_app, make_app

    sign_in(client)
    cookie = session_cookie(client)
    only_bob = make_app(
        database_url, START_RUNNER=False, secret_key="test-secret",
        console_users=f"bob:viewer={generate_password_hash(VIEWER_PASSWORD)}",
    )
    try:
        assert_asks_for_login(stranger_with(only_bob, cookie))
    finally:
        close_app(only_bob)


def test_anonymous_visitors_add_no_rows(client, sql):
    for _ in range(5):
        assert client.get("/auth/login").status_code == 200
    assert sql("SELECT count(*) FROM etl_console_sessions")[0][0] == 0
