"""Console, login and docs pages cannot be framed by another site (clickjacking the Run and Pause
buttons). That htmx and Swagger UI still work under the policy, and that chromium refuses to frame
the console, is tried in a real browser in tests/console/test_console_csp_browser.py (where the
session's one browser lives)."""
from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash


def policy(reply) -> dict[str, str]:
    header = reply.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


def assert_unframeable(reply) -> None:
    assert reply.headers.get("X-Frame-Options") == "DENY", dict(reply.headers)
    assert policy(reply)["frame-ancestors"] == "frame-ancestors 'none'"
    assert reply.headers.get("X-Content-Type-Options") == "nosniff"


def test_console_pages_forbid_framing_and_inline_scripts(client, create_pipeline):
    pipeline = create_pipeline()
    for path in ("/", "/pipelines/new", f"/pipelines/{pipeline['id']}", "/pipelines/does-not-exist"):
        reply = client.get(path)
        assert reply.content_type.startswith("text/html"), path
        assert_unframeable(reply)
        rules = policy(reply)
        assert rules["script-src"] == "script-src 'self'"  # no inline script, no eval
        assert rules["object-src"] == "object-src 'none'" and rules["base-uri"] == "base-uri 'self'"
    fragment = client.get("/pipelines/live", headers={"HX-Request": "true"})
    assert_unframeable(fragment)


def test_the_api_docs_page_cannot_be_framed_either(client):
    reply = client.get("/api/v1/docs")
    assert reply.status_code == 200
    assert_unframeable(reply)


def test_json_answers_are_nosniff(client):
    reply = client.get("/api/v1/pipelines/")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.content_type == "application/json"


class TestLoginPage:
    @pytest.fixture
    def app_overrides(self):
        return {"console_users": f"alice={generate_password_hash('operator-password-1')}", "START_RUNNER": False}

    def test_login_page_and_its_redirect_forbid_framing(self, client):
        assert_unframeable(client.get("/auth/login"))
        login_page = client.get("/", follow_redirects=True)
        assert login_page.request.path == "/auth/login"
        assert_unframeable(login_page)
