"""The browser checks as deployed: through nginx (deploy/nginx.conf) and gunicorn with auth on,
a foreign Host is 400, a cross-origin write 403, same-origin works, and no page can be framed."""
from __future__ import annotations

import json
import uuid

from .client import request
from .stack import REPO


def body(name: str) -> str:
    return json.dumps({"name": name, "target_table": "analytics.film_dim", "source_query": "SELECT id AS film_id, title, rating FROM content.film_work"})


def test_foreign_host_is_400_through_nginx(stack):
    reply = request(f"{stack.http}/api/v1/pipelines/", headers={"Host": "evil.example"})
    assert reply.status == 400 and "ETL_ALLOWED_HOSTS" in reply.json()["detail"]
    assert request(f"{stack.http}/", role=None, headers={"Host": "evil.example"}).status == 400
    assert request(f"{stack.http}/api/v1/pipelines/", headers={"Host": "etl.example.test"}).status == 200


def test_cross_origin_write_with_a_valid_token_is_403_through_nginx(stack):
    name = f"xo_{uuid.uuid4().hex[:6]}"
    port = stack.http_port
    refused = request(f"{stack.http}/api/v1/pipelines/", "POST", body(name), headers={"Origin": "http://evil.example"})
    assert refused.status == 403 and refused.header("Content-Type") == "application/json"
    assert list(refused.json()) == ["detail"]
    # Same origin as the browser sees it through nginx (its Host, its scheme): accepted.
    same = request(f"{stack.http}/api/v1/pipelines/", "POST", body(name), headers={"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"})
    assert same.status == 201, same.body[:300]
    if stack.https:
        https_port = stack.https.rsplit(":", 1)[1]
        wrong_scheme = request(f"{stack.https}/api/v1/pipelines/", "POST", body(name + "_s"), headers={"Origin": f"http://127.0.0.1:{https_port}"})
        assert wrong_scheme.status == 403
        tls_same = request(f"{stack.https}/api/v1/pipelines/", "POST", body(name + "_s"), headers={"Origin": f"https://127.0.0.1:{https_port}"})
        assert tls_same.status == 201, tls_same.body[:300]


def test_nothing_served_can_be_framed(stack):
    for path in ("/auth/login", "/static/console.css", "/api/v1/docs", "/api/v1/pipelines/"):
        reply = request(f"{stack.http}{path}", role=None)
        assert reply.headers.get_all("X-Frame-Options") == ["DENY"], (path, reply.headers.get_all("X-Frame-Options"))
        policies = reply.headers.get_all("Content-Security-Policy") or []
        assert "frame-ancestors 'none'" in policies, (path, policies)
    login = request(f"{stack.http}/auth/login", role=None)
    assert any("script-src 'self'" in p for p in login.headers.get_all("Content-Security-Policy")), "the app's own policy"
    # nginx's own error answers too.
    too_big = request(f"{stack.http}/api/v1/pipelines/", "POST", b"x" * (2 << 20), headers={"Content-Type": "application/json"})
    assert too_big.status == 413 and too_big.headers.get_all("X-Frame-Options") == ["DENY"]
    assert (REPO / "deploy" / "nginx.conf").read_text().count("add_header X-Frame-Options DENY") == 2
