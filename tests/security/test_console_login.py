"""Console login: sessions for configured users, cookie flags, CSRF, roles, safe redirects."""
from __future__ import annotations

import re

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import generate_password_hash

OPERATOR_PASSWORD = "operator-password-1"
VIEWER_PASSWORD = "viewer-password-22"


@pytest.fixture(scope="module")
def users() -> str:
    return f"alice={generate_password_hash(OPERATOR_PASSWORD)},bob:viewer={generate_password_hash(VIEWER_PASSWORD)}"


@pytest.fixture
def app_overrides(users):
    return {"console_users": users, "START_RUNNER": False, "allowed_hosts": "localhost,etl.example.test"}


def csrf_token(client, path="/auth/login") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def login(client, name, password, next_="/", **kwargs):
    token = csrf_token(client)
    return client.post(
        "/auth/login", data={"csrf_token": token, "username": name, "password": password, "next": next_}, **kwargs
    )


def set_cookie_flags(response) -> list[str]:
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies, "no cookie was set"
    return [part.strip().lower() for part in cookies[-1].split(";")]


def test_console_needs_a_login(client):
    reply = client.get("/")
    assert reply.status_code == 302
    assert reply.headers["Location"] == "/auth/login?next=/"
    htmx = client.get("/pipelines/live", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/auth/login")
    assert client.post("/pipelines/00000000-0000-0000-0000-000000000000/run").status_code in (400, 401)


def test_operator_logs_in_with_a_hardened_cookie_and_out_again(client):
    reply = login(client, "alice", OPERATOR_PASSWORD, next_="/pipelines/new")
    assert reply.status_code == 302 and reply.headers["Location"] == "/pipelines/new"
    flags = set_cookie_flags(reply)
    assert "httponly" in flags and "samesite=lax" in flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    assert client.get("/").status_code == 200
    out = client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    assert out.status_code == 302
    assert client.get("/").status_code == 302


def test_cookie_is_secure_over_tls(client):
    reply = login(client, "alice", OPERATOR_PASSWORD, base_url="https://localhost", headers={"Referer": "https://localhost/auth/login"})
    assert reply.status_code == 302, reply.get_data(as_text=True)[:300]
    assert "secure" in set_cookie_flags(reply)


def test_cookie_is_secure_behind_a_tls_proxy(app):
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
    client = app.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "etl.example.test", "Referer": "https://etl.example.test/auth/login"}
    page = client.get("/auth/login", headers=forwarded)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    reply = client.post(
        "/auth/login",
        data={"csrf_token": token, "username": "alice", "password": OPERATOR_PASSWORD, "next": "/"},
        headers=forwarded,
    )
    assert reply.status_code == 302, reply.get_data(as_text=True)[:300]
    assert "secure" in set_cookie_flags(reply)


@pytest.mark.parametrize("name, password", [("alice", "wrong-password"), ("mallory", OPERATOR_PASSWORD), ("", "")])
def test_wrong_credentials_are_refused(client, name, password):
    reply = login(client, name, password)
    assert reply.status_code == 401
    assert "Wrong user name or password." in reply.get_data(as_text=True)
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["missing", "forged"])
def test_a_login_without_a_valid_form_token_gets_the_form_again_saying_it_expired(client, token):
    data = {"username": "alice", "password": OPERATOR_PASSWORD}
    if token:
        data["csrf_token"] = token
    reply = client.post("/auth/login", data=data)
    page = reply.get_data(as_text=True)
    assert reply.status_code == 400
    assert "The form expired; please try again." in page
    assert re.search(r'name="csrf_token" value="[^"]+"', page)  # a fresh form to try again with
    assert client.get("/").status_code == 302  # not signed in
    assert login(client, "alice", OPERATOR_PASSWORD).status_code == 302  # and the next try works


def test_logout_without_the_form_token_keeps_the_session(client):
    assert login(client, "alice", OPERATOR_PASSWORD).status_code == 302
    assert client.post("/auth/logout").status_code == 400
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"])
def test_next_never_leaves_the_site(client, target):
    reply = login(client, "alice", OPERATOR_PASSWORD, next_=target)
    assert reply.status_code == 302 and reply.headers["Location"] == "/"


def test_viewer_user_may_look_but_not_act(client):
    assert login(client, "bob", VIEWER_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    token = csrf_token(client)
    reply = client.post("/pipelines/00000000-0000-0000-0000-000000000000/run", data={"csrf_token": token})
    assert reply.status_code == 403


def test_console_session_does_not_open_the_api(client):
    """The API takes bearer tokens only: a browser session cannot be ridden by cross-site requests."""
    assert login(client, "alice", OPERATOR_PASSWORD).status_code == 302
    assert client.get("/api/v1/pipelines/").status_code == 401


def test_login_page_says_what_to_set_when_no_users(database_url, clean_database):
    from tests.conftest import close_app, make_app

    app = make_app(database_url, START_RUNNER=False, api_tokens="only-an-api-token-xxxxxxxx:operator")
    try:
        page = app.test_client().get("/auth/login").get_data(as_text=True)
        assert "ETL_CONSOLE_USERS" in page and "hash-password" in page
    finally:
        close_app(app)


def test_hash_password_command(capsys, monkeypatch):
    import io

    from werkzeug.security import check_password_hash

    from etl_console import auth

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert auth.main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert check_password_hash(printed, "a long enough password")
    assert auth.parse_users(f"carol={printed}")["carol"][1] == "operator"
