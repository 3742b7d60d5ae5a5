"""A tiny HTTP client for the deployment tests: no redirects followed, TLS unverified (self-signed)."""
from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from .stack import OPERATOR_TOKEN, VIEWER_TOKEN

AUTH = {"operator": OPERATOR_TOKEN, "viewer": VIEWER_TOKEN}


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def request(
    url: str,
    method: str = "GET",
    body: bytes | str | dict | list | None = None,
    *,
    role: str | None = "operator",
    headers: dict | None = None,
    timeout: float = 30.0,
) -> Reply:
    parts = urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    all_headers = {}
    if role:
        all_headers["Authorization"] = f"Bearer {AUTH[role]}"
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()
