"""Broken and hostile requests through nginx and gunicorn: always a 4xx, never a 5xx.

Requests are written byte for byte on a socket, so that nothing on our side cleans them up.
"""
from __future__ import annotations

import json
import select
import socket
import time

import pytest

from .stack import OPERATOR_TOKEN

AUTH = f"Authorization: Bearer {OPERATOR_TOKEN}\r\n".encode()


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` and return everything the server answers, until it closes the connection.

    A server may answer before the request is fully sent: a 413 for a body over its limit, after
    which it closes. If the client kept writing it would get a broken pipe or a reset, sooner or
    later depending on the machine's load. So the client stops writing as soon as an answer arrives
    or the connection breaks, and reads what came. Bounded by `timeout` in all."""
    deadline = time.monotonic() + timeout
    pending = memoryview(data)
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.setblocking(False)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete answer within {timeout} s; got {bytes(received[:200])!r}")
            writers = [conn] if pending else []
            readable, writable, _ = select.select([conn], writers, [], remaining)
            if readable:
                try:
                    chunk = conn.recv(65536)
                except ConnectionResetError:
                    break  # reset after answering: it closed with our unread bytes; keep what came
                if not chunk:
                    break
                received += chunk
                pending = pending[:0]  # it has answered: the rest of the request is not wanted
            elif writable:
                try:
                    pending = pending[conn.send(pending[:65536]):]
                except (BrokenPipeError, ConnectionResetError):
                    pending = pending[:0]  # it stopped reading: read its answer
    if not received:
        raise ConnectionError("the server closed the connection without answering")
    return bytes(received)


def raw(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    head, _, body = exchange(port, data, timeout).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
    return status, headers, body


def post(port: int, body: bytes, content_type: bytes = b"application/json", extra: bytes = b"") -> tuple[int, dict, bytes]:
    return raw(
        port,
        b"POST /api/v1/pipelines/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + AUTH
        + b"Content-Type: " + content_type + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body,
    )


def assert_json_4xx(status: int, headers: dict, body: bytes, expected: int | None = None) -> dict:
    assert 400 <= status < 500, (status, body[:300])
    if expected is not None:
        assert status == expected, (status, body[:300])
    assert headers.get("content-type") == "application/json", headers
    payload = json.loads(body)
    assert "detail" in payload
    return payload


def test_body_over_the_limit_is_413_json(stack):
    status, headers, body = post(stack.http_port, b'{"name": "' + b"x" * (2 << 20) + b'"}')
    assert assert_json_4xx(status, headers, body, 413) == {"detail": "Request Entity Too Large"}


def test_chunked_body_over_the_limit_is_413_json(stack):
    chunk = b"x" * 65536
    data = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    status, headers, body = raw(
        stack.http_port,
        b"POST /api/v1/pipelines/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + AUTH
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + data,
    )
    assert assert_json_4xx(status, headers, body, 413) == {"detail": "Request Entity Too Large"}


def test_body_over_the_apps_limit_without_nginx_is_413_json(stack):
    status, headers, body = post(stack.gunicorn_port, b'{"name": "' + b"x" * (2 << 20) + b'"}')
    assert assert_json_4xx(status, headers, body, 413) == {"detail": "Request Entity Too Large"}


def test_very_long_header_is_4xx(stack):
    for port in (stack.http_port, stack.gunicorn_port):
        status, _, body = raw(
            port, b"GET /api/v1/pipelines/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Long: " + b"a" * 40_000 + b"\r\n\r\n"
        )
        assert 400 <= status < 500, (port, status, body[:200])


def test_header_longer_than_gunicorn_allows_but_nginx_passes_is_4xx(stack):
    status, _, body = raw(
        stack.http_port, b"GET /api/v1/pipelines/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + AUTH + b"X-Long: " + b"a" * 10_000 + b"\r\n\r\n"
    )
    assert 400 <= status < 500, (status, body[:200])


def test_many_headers_are_4xx(stack):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    status, _, body = raw(stack.http_port, b"GET /api/v1/pipelines/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + AUTH + many + b"\r\n")
    assert 400 <= status < 500, (status, body[:200])


def test_very_long_url_is_414_json(stack):
    status, headers, body = raw(stack.http_port, b"GET /api/v1/pipelines/?" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_json_4xx(status, headers, body, 414)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "\xff\xfe", "target_table": "analytics.film_dim", "source_query": "select 1"}',  # not UTF-8
        b"\xff\xfe\x00{\x00}",  # UTF-16 noise
        b'{"name": "caf\xe9", "target_table": "analytics.film_dim", "source_query": "select 1"}',  # latin-1
        b'{"name": "a\\u0000", "target_table": "analytics.film_dim", "source_query": "select 1"}',  # NUL
        b'{"name": "a\\ud800", "target_table": "analytics.film_dim", "source_query": "select 1"}',  # lone surrogate
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any parser's recursion
        b'{"name": ' + b"9" * 5000 + b"}",  # an integer over Python's 4300-digit limit
    ],
    ids=["invalid-utf8", "utf16-noise", "latin1", "nul", "lone-surrogate", "deep-nesting", "huge-int"],
)
def test_hostile_json_bodies_are_4xx(stack, body):
    status, headers, reply = post(stack.http_port, body)
    assert_json_4xx(status, headers, reply)


def test_non_utf8_text_body_is_4xx(stack):
    status, headers, reply = post(stack.http_port, b"\xc3\x28\xa0\xa1", content_type=b"text/plain; charset=utf-8")
    assert_json_4xx(status, headers, reply, 422)


@pytest.mark.parametrize(
    "target",
    [b"/api/v1/pipelines/%FF%FE", b"/api/v1/pipelines/\xff\xfe", b"/api/v1/pipelines/?limit=%FF", b"/api/v1/pipelines/%00"],
)
def test_non_utf8_urls_are_never_5xx(stack, target):
    status, _, body = raw(stack.http_port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + AUTH + b"\r\n")
    assert status < 500, (status, body[:200])


def test_non_utf8_header_values_are_never_5xx(stack):
    status, _, body = raw(
        stack.http_port,
        b"GET /api/v1/pipelines/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + AUTH + b"X-Request-ID: \xff\xfe\r\nX-Other: \x80\x81\r\n\r\n",
    )
    assert status == 200, (status, body[:200])


def test_malformed_framing_is_4xx(stack):
    for data in (
        b"POST /api/v1/pipelines/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n{}",
        b"POST /api/v1/pipelines/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}",
        # (an unknown Transfer-Encoding gets nginx's 501, as RFC 9112 asks: not a case for this list)
        b"POST /api/v1/pipelines/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"POST /api/v1/pipelines/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",  # TLS on the plain port
    ):
        status, _, body = raw(stack.http_port, data)
        assert 400 <= status < 500, (data[:40], status, body[:200])
