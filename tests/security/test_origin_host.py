"""A web page the operator visits must not be able to drive the service, and the service answers
only as the hosts it is served as (no DNS rebinding).

Written as the attacker's page would send its requests: the simple cross-origin requests a browser
sends without a CORS preflight (a JSON body with no Content-Type, a form, text/plain), each with
the Origin the browser adds. The default setup is used (no auth, bound to loopback): the one
in which nothing else stands in the way.
"""
from __future__ import annotations

import json
import socket
import threading
import uuid

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server

from etl_console.web_security import AllowedHosts, AllowedHostsError, split_host
from tests.conftest import FILM_DIM_QUERY
from tests.console.conftest import csrf_token

EVIL = "http://evil.example"


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}


def pipeline_body(name: str | None = None) -> str:
    return json.dumps(
        {"name": name or f"xo_{uuid.uuid4().hex[:8]}", "target_table": "analytics.film_dim", "source_query": FILM_DIM_QUERY}
    )


def count_pipelines(sql) -> int:
    return sql("SELECT count(*) FROM etl_pipelines")[0][0]


def assert_refused(reply, status: int = 403) -> None:
    assert reply.status_code == status, reply.get_data(as_text=True)[:300]
    assert reply.content_type == "application/json"
    body = reply.get_json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"]


# cross-origin writes ------------------------------------------------------------------------------
def test_json_without_content_type_from_another_origin_is_403_and_creates_nothing(client, sql):
    # What fetch(url, {method: "POST", mode: "no-cors", body: JSON.stringify(...)}) sends.
    reply = client.post("/api/v1/pipelines/", data=pipeline_body(), headers={"Origin": EVIL})
    assert_refused(reply)
    assert "Origin" in reply.get_json()["detail"]
    assert count_pipelines(sql) == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json"]
)
def test_every_body_type_from_another_origin_is_403(client, sql, content_type):
    reply = client.post("/api/v1/pipelines/", data=pipeline_body(), content_type=content_type, headers={"Origin": EVIL})
    assert_refused(reply)
    assert count_pipelines(sql) == 0


def test_run_pause_and_patch_posted_as_forms_from_another_origin_change_nothing(client, create_pipeline, sql):
    pipeline = create_pipeline()
    pid = pipeline["id"]
    form = {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
    assert_refused(client.post(f"/api/v1/pipelines/{pid}/run", data="x=1", headers=form))
    assert_refused(client.post(f"/api/v1/pipelines/{pid}/pause", data="", headers=form))
    assert_refused(client.patch(f"/api/v1/pipelines/{pid}", data='{"enabled": false}', headers={"Origin": EVIL}))
    assert_refused(client.delete(f"/api/v1/pipelines/{pid}", headers={"Origin": EVIL}))
    assert sql("SELECT status, enabled FROM etl_pipelines WHERE id = %s", (pid,)) == [("IDLE", True)]
    assert sql("SELECT count(*) FROM etl_pipeline_runs")[0][0] == 0


@pytest.mark.parametrize(
    "origin",
    [
        "null",  # sandboxed iframes, data: pages
        "http://localhost.evil.example",
        "http://localhost:8001",  # another service on this machine
        "https://localhost",  # another scheme is another origin
        "http://evil.example@localhost",
        "http://localhost/path",
        "file://",
        "",
        "garbage",
    ],
)
def test_any_origin_but_our_own_is_refused(client, sql, origin):
    assert_refused(client.post("/api/v1/pipelines/", data=pipeline_body(), headers={"Origin": origin}))
    assert count_pipelines(sql) == 0


def test_sec_fetch_site_cross_site_is_refused_even_without_origin(client, sql):
    assert_refused(client.post("/api/v1/pipelines/", data=pipeline_body(), headers={"Sec-Fetch-Site": "cross-site"}))
    mixed = {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}
    assert_refused(client.post("/api/v1/pipelines/", data=pipeline_body(), headers=mixed))
    assert count_pipelines(sql) == 0


# what must keep working -----------------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["http://localhost", "http://LOCALHOST", "http://localhost:80"])
def test_same_origin_browser_writes_work(client, sql, origin):
    headers = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
    reply = client.post("/api/v1/pipelines/", data=pipeline_body(), headers=headers)
    assert reply.status_code == 201, reply.get_data(as_text=True)
    assert count_pipelines(sql) == 1


def test_clients_without_origin_see_the_contract_unchanged(client, sql):
    created = client.post("/api/v1/pipelines/", data=pipeline_body("plain"), content_type="application/json")
    assert created.status_code == 201
    duplicate = client.post("/api/v1/pipelines/", data=pipeline_body("plain"), content_type="application/json")
    assert duplicate.status_code == 400 and duplicate.get_json() == {"detail": "Pipeline with this name already exists"}
    missing = client.post(f"/api/v1/pipelines/{uuid.uuid4()}/run")
    assert missing.status_code == 404 and missing.get_json() == {"detail": "Pipeline not found"}
    no_type = client.post("/api/v1/pipelines/", data=pipeline_body("no_type"))
    assert no_type.status_code == 201  # as the contract's implementation accepted it
    assert client.post("/api/v1/pipelines/", data=pipeline_body(), headers={"Sec-Fetch-Site": "none"}).status_code == 201
    assert count_pipelines(sql) == 3


def test_cross_origin_reads_are_not_refused(client):
    """A read changes nothing, and the browser keeps its answer from the page (no CORS headers)."""
    reply = client.get("/api/v1/pipelines/", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert reply.status_code == 200
    assert "Access-Control-Allow-Origin" not in reply.headers


def test_behind_a_tls_proxy_the_origin_is_the_one_the_browser_used(app, sql):
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
    client = app.test_client()
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "localhost:8443"}
    same = client.post("/api/v1/pipelines/", data=pipeline_body(), headers={**proxied, "Origin": "https://localhost:8443"})
    assert same.status_code == 201, same.get_data(as_text=True)
    plain_http = client.post("/api/v1/pipelines/", data=pipeline_body(), headers={**proxied, "Origin": "http://localhost:8443"})
    assert_refused(plain_http)
    assert count_pipelines(sql) == 1


# the console -----------------------------------------------------------------------------------------
def test_console_form_from_another_origin_is_refused_even_with_a_token(client, create_pipeline, sql):
    """The CSRF token stops a foreign page already; the Origin check holds even if one leaked."""
    pipeline = create_pipeline()
    token = csrf_token(client, f"/pipelines/{pipeline['id']}")
    reply = client.post(f"/pipelines/{pipeline['id']}/pause", data={"csrf_token": token}, headers={"Origin": EVIL})
    assert reply.status_code == 403
    assert reply.content_type.startswith("text/html")  # the console's error page, not the API's JSON
    assert "Cross-origin request refused" in reply.get_data(as_text=True)
    assert sql("SELECT status FROM etl_pipelines")[0][0] == "IDLE"
    htmx = client.post(
        f"/pipelines/{pipeline['id']}/pause",
        data={"csrf_token": token},
        headers={"Origin": EVIL, "HX-Request": "true", "Sec-Fetch-Site": "cross-site"},
    )
    assert htmx.status_code == 403
    assert sql("SELECT status FROM etl_pipelines")[0][0] == "IDLE"


def test_console_same_origin_htmx_post_works(client, create_pipeline, sql):
    pipeline = create_pipeline()
    token = csrf_token(client, f"/pipelines/{pipeline['id']}")
    reply = client.post(
        f"/pipelines/{pipeline['id']}/pause",
        headers={"Origin": "http://localhost", "HX-Request": "true", "X-CSRFToken": token, "Sec-Fetch-Site": "same-origin"},
    )
    assert reply.status_code == 200, reply.get_data(as_text=True)[:300]
    assert sql("SELECT status FROM etl_pipelines")[0][0] == "PAUSED"


# Host -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:5000", "localhost.evil.example", "127.0.0.2", "[::2]", "bad host", "a:b:c"])
def test_foreign_host_is_400_on_the_api_and_the_console(client, sql, host):
    api = client.get("/api/v1/pipelines/", headers={"Host": host})
    assert_refused(api, 400)
    assert "ETL_ALLOWED_HOSTS" in api.get_json()["detail"]
    write = client.post("/api/v1/pipelines/", data=pipeline_body(), headers={"Host": host})
    assert_refused(write, 400)
    assert count_pipelines(sql) == 0
    console = client.get("/", headers={"Host": host})
    assert console.status_code == 400 and console.content_type.startswith("text/html")
    assert client.get("/api/v1/health/live", headers={"Host": host}).status_code == 400


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:8000", "[::1]", "[::1]:8000", "localhost."])
def test_loopback_names_with_any_port_are_served(client, host):
    assert client.get("/api/v1/pipelines/", headers={"Host": host}).status_code == 200


def test_dns_rebinding_against_a_real_loopback_server(app):
    """A page on evil.example re-pointed at 127.0.0.1: the browser connects to loopback but names
    its own host. Raw bytes on a socket, as the browser would send them."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = server.server_port

        def status(host: str, method: str = "GET", extra: str = "") -> int:
            body = pipeline_body() if method == "POST" else ""
            request = (
                f"{method} /api/v1/pipelines/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(request)
                head = conn.recv(65536)
            return int(head.split()[1])

        assert status(f"evil.example:{port}") == 400
        assert status(f"evil.example:{port}", "POST", "Origin: http://evil.example\r\n") == 400
        assert status(f"127.0.0.1:{port}") == 200
        assert status(f"localhost:{port}") == 200
        assert status(f"127.0.0.1:{port}", "POST", f"Origin: http://evil.example:{port}\r\n") == 403
        assert status(f"127.0.0.1:{port}", "POST", f"Origin: http://127.0.0.1:{port}\r\n") == 201
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_allowed_hosts_setting(database_url, clean_database, monkeypatch):
    from tests.conftest import close_app, make_app

    monkeypatch.setenv("ETL_ALLOWED_HOSTS", "etl.example.org, .corp.example, [::1]")
    app = make_app(database_url, START_RUNNER=False)
    try:
        client = app.test_client()
        for host in ("etl.example.org", "etl.example.org:443", "corp.example", "a.b.corp.example:8080", "[::1]:8000"):
            assert client.get("/api/v1/health/live", headers={"Host": host}).status_code == 200, host
        # The loopback names stay allowed (health checks ask 127.0.0.1); nothing else is added.
        assert client.get("/api/v1/health/live", headers={"Host": "127.0.0.1:8000"}).status_code == 200
        for host in ("evil.example", "xcorp.example", "etl.example.org.evil.example", "10.0.0.5"):
            assert client.get("/api/v1/health/live", headers={"Host": host}).status_code == 400, host
    finally:
        close_app(app)


def test_allowed_hosts_parsing_and_the_non_loopback_default():
    assert AllowedHosts.parse("*").allows("anything.example", "10.0.0.5")
    configured = AllowedHosts.parse("etl.example.org")
    assert configured.allows("etl.example.org", "10.0.0.5") and configured.allows("localhost", "10.0.0.5")
    assert not configured.allows("10.0.0.5", "10.0.0.5")  # a list given is the list (plus loopback)
    assert AllowedHosts.parse(None).names is None
    default = AllowedHosts.parse("")
    # Reached over loopback (or a unix socket, or the test client): only the loopback names.
    assert default.allows("localhost", "127.0.0.1") and default.allows("::1", None)
    assert not default.allows("10.0.0.5", "127.0.0.1")
    # Reached over another address: also that address and this machine's name.
    assert default.allows("10.0.0.5", "10.0.0.5") and default.allows(socket.gethostname().lower(), "10.0.0.5")
    assert default.allows("localhost", "10.0.0.5")
    assert not default.allows("evil.example", "10.0.0.5") and not default.allows("10.0.0.6", "10.0.0.5")
    for bad in ("etl.example.org:8000", "http://etl.example.org", "a b", "[::1]:80", "::1"):
        with pytest.raises(AllowedHostsError):
            AllowedHosts.parse(bad)
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("Example.ORG.") == ("example.org", None)
    for junk in ("", "a:b:c", "[::1", "x:99999", "x:-1", "a/b", "[evil]:80"):
        assert split_host(junk) is None, junk
