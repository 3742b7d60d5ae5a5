"""Console, login and docs pages cannot be framed by another site (clickjacking the Run and Pause
buttons), and their Content-Security-Policy still lets htmx and Swagger UI work in a real browser."""
from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from tests.console.conftest import browser, live_server, page  # noqa: F401 - fixtures used below

expect = pytest.importorskip("playwright.sync_api").expect


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


# in a browser ------------------------------------------------------------------------------------------
def csp_complaints(tab) -> list[str]:
    messages: list[str] = []
    tab.on("console", lambda message: messages.append(message.text) if "Content Security Policy" in message.text else None)
    return messages


def test_htmx_console_works_under_the_policy(page, create_pipeline, sql):
    complaints = csp_complaints(page)
    create_pipeline(name="framed_not")
    page.goto("/")
    page.get_by_role("button", name="Pause framed_not").click()
    row = page.locator("#pipeline-table tr", has_text="framed_not")
    expect(row.locator("td").nth(1)).to_have_text("Paused")  # htmx swapped the row: a same-origin POST passed
    assert sql("SELECT status FROM etl_pipelines WHERE name = 'framed_not'") == [("PAUSED",)]
    assert complaints == []


def test_swagger_ui_works_under_the_policy(page):
    complaints = csp_complaints(page)
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title").first).to_contain_text("etl-console")
    expect(page.locator(".opblock").first).to_be_visible()
    assert complaints == []


def test_another_site_cannot_frame_the_console(browser, live_server):  # noqa: F811
    """A page on another origin (another port is another origin) frames the console: refused."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Framer(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = f'<html><body><iframe id="victim" src="{live_server}/"></iframe></body></html>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    attacker = ThreadingHTTPServer(("127.0.0.1", 0), Framer)
    thread = threading.Thread(target=attacker.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    context = browser.new_context()
    try:
        tab = context.new_page()
        messages: list[str] = []
        tab.on("console", lambda message: messages.append(message.text))
        tab.goto(f"http://127.0.0.1:{attacker.server_port}/")
        tab.wait_for_timeout(1000)
        frame = tab.frame_locator("#victim")
        assert frame.locator("#pipeline-table, main").count() == 0  # nothing of the console rendered
        assert any(re.search(r"frame-ancestors|X-Frame-Options|Refused to (display|frame)", m) for m in messages), messages
    finally:
        context.close()
        attacker.shutdown()
        thread.join(5)
        attacker.server_close()
