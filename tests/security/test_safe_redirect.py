"""`next` never sends a browser off the site, and never breaks the response: the login's and the
console's redirects share one helper (etl_console.web_security.safe_redirect_target)."""
from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from etl_console.web_security import safe_redirect_target
from tests.conftest import FILM_DIM_QUERY
from tests.console.conftest import csrf_token

PASSWORD = "operator-password-1"

HOSTILE = [
    "/\t/evil.example",  # browsers drop the tab: //evil.example
    "/\n/evil.example",
    "/\r\nSet-Cookie: pwned=1",  # header injection (a 500 before)
    "/x\r\nLocation: https://evil.example",
    "/%0d%0a\r\n",
    "\t//evil.example",
    " //evil.example",
    "//evil.example",
    "//evil.example/path",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "http:/evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "pipelines",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "/\x1b[31m",
    "",
]
SAME_SITE = ["/", "/pipelines/new", "/pipelines/?status=FAILED&q=a%20b", "/%2F%2Fevil.example", "/a//b"]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_targets_fall_back_to_the_default(target):
    assert safe_redirect_target(target, "/home") == "/home"


@pytest.mark.parametrize("target", SAME_SITE)
def test_paths_on_this_site_are_kept(target):
    assert safe_redirect_target(target, "/home") == target


def test_non_strings_fall_back():
    assert safe_redirect_target(None, "/home") == "/home"


# through the login ------------------------------------------------------------------------------------
TOKEN = "redirect-test-operator-token-0123"


@pytest.fixture
def app_overrides():
    return {"console_users": f"alice={generate_password_hash(PASSWORD)}", "api_tokens": f"{TOKEN}:operator", "START_RUNNER": False}


@pytest.fixture
def pipeline(client) -> dict:
    body = {"name": "redirects", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
    reply = client.post("/api/v1/pipelines/", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 201
    return reply.get_json()


def login(client, next_: str):
    page = client.get("/auth/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/auth/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD, "next": next_})


@pytest.mark.parametrize("target", HOSTILE)
def test_login_redirects_home_for_hostile_next(client, target):
    reply = login(client, target)
    assert reply.status_code == 302
    assert reply.headers["Location"] == "/"
    assert not any(h.lower().startswith("pwned") for h in reply.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("target", SAME_SITE[1:3])
def test_login_follows_a_same_site_next(client, target):
    assert login(client, target).headers["Location"] == target


@pytest.mark.parametrize("query", ["%0d%0aSet-Cookie:%20x=1", "/%09/evil.example", "%2F%2Fevil.example", "https:%2F%2Fevil.example"])
def test_login_page_with_hostile_next_in_the_query_renders(client, query):
    page = client.get(f"/auth/login?next={query}")
    assert page.status_code == 200
    hidden = re.search(r'name="next" value="([^"]*)"', page.get_data(as_text=True)).group(1)
    assert hidden == "/"


# through the console's plain-form actions --------------------------------------------------------------
@pytest.mark.parametrize("target", ["/\t/evil.example", "/\r\nX-Injected: 1", "//evil.example", "/\\evil.example", "https://evil.example"])
def test_console_action_redirects_to_the_pipeline_for_hostile_next(client, pipeline, target):
    login(client, "/")
    token = csrf_token(client, f"/pipelines/{pipeline['id']}")
    reply = client.post(f"/pipelines/{pipeline['id']}/pause", data={"csrf_token": token, "next": target})
    assert reply.status_code == 303
    assert reply.headers["Location"] == f"/pipelines/{pipeline['id']}"
    assert "X-Injected" not in reply.headers


def test_console_action_follows_a_same_site_next(client, pipeline):
    login(client, "/")
    token = csrf_token(client, "/")
    reply = client.post(f"/pipelines/{pipeline['id']}/pause", data={"csrf_token": token, "next": "/?status=PAUSED"})
    assert reply.status_code == 303 and reply.headers["Location"] == "/?status=PAUSED"
