"""The console's Content-Security-Policy in a real browser: htmx and Swagger UI work under it with
no violation reported, and a page on another origin cannot frame the console (clickjacking)."""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

expect = pytest.importorskip("playwright.sync_api").expect


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
    expect(row.locator("td.status")).to_have_text("Paused")  # htmx swapped the row: a same-origin POST passed
    assert sql("SELECT status FROM etl_pipelines WHERE name = 'framed_not'") == [("PAUSED",)]
    assert complaints == []


def test_swagger_ui_works_under_the_policy(page):
    complaints = csp_complaints(page)
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title").first).to_contain_text("etl-console")
    expect(page.locator(".opblock").first).to_be_visible()
    assert complaints == []


def test_another_site_cannot_frame_the_console(browser, live_server):  
    """A page on another origin (another port is another origin) frames the console: refused."""
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
