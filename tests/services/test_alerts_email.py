"""Email channels: refused without an SMTP server, delivered through one (a minimal SMTP server on
loopback, speaking just enough of RFC 5321 to accept a message)."""
from __future__ import annotations

import socketserver
import threading

import pytest

from tests.api.conftest import body_of


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 test ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += self.rfile.readline()
                self.server.messages.append(data.decode("utf-8", "replace"))
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def app_overrides(request):
    server = request.getfixturevalue("smtp_server")
    return {"START_RUNNER": False, "smtp_host": "127.0.0.1", "smtp_port": server.server_address[1],
            "smtp_starttls": False, "smtp_from": "etl@example.org"}


def test_an_email_channel_sends_through_the_configured_smtp_server(client, smtp_server):
    channel = body_of(client.post("/api/v1/alert-channels/", json={
        "name": "ops-mail", "kind": "email", "email": "ops@example.org"}), 201)
    assert channel["email"] == "ops@example.org" and channel["secret_set"] is False
    result = body_of(client.post(f"/api/v1/alert-channels/{channel['id']}/test"), 200)
    assert result["delivered"] is True and result["status"] == "DELIVERED", result
    (message,) = smtp_server.messages
    assert "Subject: [etl-console] alert.test" in message and "To: ops@example.org" in message
    assert "X-Etl-Delivery:" in message and "alert.test:" in message
