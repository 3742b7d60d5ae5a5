"""What a browser may and may not do to this service, checked before anything else runs.

- Host: a request naming a host this service is not served as gets 400. Otherwise a page on
  evil.example whose name an attacker re-points at 127.0.0.1 (DNS rebinding) could read and write
  the loopback service as its own origin. ETL_ALLOWED_HOSTS lists the names (see `AllowedHosts`).
- Origin: a state-changing request (anything but GET/HEAD/OPTIONS) that a browser marks as coming
  from another origin (`Origin` not this service's own scheme://host, or `Sec-Fetch-Site:
  cross-site`) gets 403. A web page can send a JSON body without a Content-Type, a form to /run,
  or text/plain without a CORS preflight; only these headers tell such a request apart. Clients
  without an Origin (curl, scripts, the contract's clients) are not affected. The console's own
  htmx and form posts are same-origin and pass; its CSRF tokens remain the first line there.
- Chunked bodies: werkzeug stops reading a body without Content-Length at ETL_MAX_BODY_BYTES and
  hands the truncated prefix to the view; here the end of such a body is checked, and a longer one
  is 413 like a body whose Content-Length is over the limit.
- Framing and content: HTML pages send a Content-Security-Policy with frame-ancestors 'none' and
  X-Frame-Options: DENY (no clickjacking of the console's buttons), every response nosniff.

Runs inside ProxyFix (wsgi.py wraps the app after create_app), so Host and scheme are the ones the
client used through nginx, exactly as the rest of the app sees them.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import flask

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}

# Console and login pages: scripts only from /static (htmx, console.js: no inline script, no eval);
# inline styles are allowed (the login page's <style>, htmx's indicator style, bar widths).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# The API docs page (flask-smorest's Swagger UI template) starts Swagger UI with an inline script.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATH = "/api/v1/docs"
DRAIN_AT_MOST = 1 << 20  # of a refused chunked body; beyond, the client may see a reset instead


class AllowedHostsError(ValueError):
    pass


def split_host(value: str) -> tuple[str, int | None] | None:
    """'Example.org:8080' -> ('example.org', 8080), '[::1]' -> ('::1', None); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return None
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        if value.count(":") > 1:
            return None  # a bare IPv6 address: RFC 9110 wants it in brackets
        name, _, port_text = value.partition(":")
        name = name.rstrip(".")  # "localhost." is localhost
        if not name or not all(c.isalnum() or c in "-._" for c in name):
            return None
    if port_text is None:
        return None
    if not port_text:
        return name, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return name, int(port_text)


@dataclass(frozen=True)
class AllowedHosts:
    """ETL_ALLOWED_HOSTS: comma-separated host names, any port. `*` allows any host; `.example.org`
    allows example.org and its subdomains. The loopback names are always allowed: a browser never
    sends them for a page of another site (a rebound name is still the attacker's name), and
    health checks and the Dockerfile's HEALTHCHECK ask 127.0.0.1. Unset, the rest depends on the
    address a request arrived on: over loopback (or a unix socket) nothing more; over another
    address, that address and this machine's host name. A deployment reached under a DNS name
    (behind nginx or not) lists that name."""

    names: tuple[str, ...] | None  # None: the default above

    @classmethod
    def parse(cls, raw: str | None) -> "AllowedHosts":
        if raw is None or not raw.strip():
            return cls(None)
        names = []
        for entry in (item.strip() for item in raw.split(",")):
            if not entry:
                continue
            if entry == "*":
                names.append("*")
                continue
            suffix = entry.startswith(".")
            parsed = split_host(entry[1:] if suffix else entry)
            if parsed is None or parsed[1] is not None:
                raise AllowedHostsError(
                    f"ETL_ALLOWED_HOSTS entry {entry!r}: give a host name or address without a port "
                    "(e.g. etl.example.org, .example.org, 10.0.0.5, [::1])"
                )
            names.append(("." if suffix else "") + parsed[0])
        return cls(tuple(names))

    def depends_on_arrival_address(self, name: str) -> bool:
        """Whether `allows(name, …)` reads the address a request arrived on (only the default list does)."""
        return self.names is None and name not in LOOPBACK_NAMES

    def allows(self, name: str, arrived_on: str | None) -> bool:
        if name in LOOPBACK_NAMES:
            return True
        if self.names is None:
            return name in _default_names(arrived_on)
        for allowed in self.names:
            if allowed == "*" or name == allowed or (allowed.startswith(".") and (name == allowed[1:] or name.endswith(allowed))):
                return True
        return False


def _default_names(arrived_on: str | None) -> frozenset[str]:
    if arrived_on is None or _is_loopback_address(arrived_on):
        return frozenset(LOOPBACK_NAMES)
    return frozenset((*LOOPBACK_NAMES, arrived_on.lower(), socket.gethostname().lower()))


def _is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _local_address(environ: dict) -> str | None:
    """The server-side address of this request's connection (None: a unix socket, or no socket,
    as with Flask's test client, both of which only local processes reach)."""
    connection = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    try:
        local = connection.getsockname() if connection is not None else None
    except OSError:
        return None
    if not isinstance(local, tuple):
        return None
    address = local[0].split("%", 1)[0]  # an IPv6 zone ("fe80::1%eth0") is not part of the host
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(getattr(parsed, "ipv4_mapped", None) or parsed)


def _origin_of(scheme: str, host: str) -> str | None:
    parsed = split_host(host)
    if parsed is None:
        return None
    name, port = parsed
    if port == DEFAULT_PORTS.get(scheme):
        port = None
    shown = f"[{name}]" if ":" in name else name
    return f"{scheme}://{shown}" + (f":{port}" if port else "")


def _normalized_origin(origin: str) -> str | None:
    """An Origin header as scheme://host[:port], default port dropped; None for "null" or junk."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc or parts.path not in ("", "/"):
        return None
    if "@" in parts.netloc:
        return None
    return _origin_of(parts.scheme, parts.netloc)


def safe_redirect_target(target: str | None, default: str) -> str:
    """`target` when it is a path on this site, else `default`. The one check for every redirect
    that takes a URL from the request (login's and the console's `next`).

    Refused: anything not starting with one "/" ("//host" and "/\\host" are other sites to a
    browser), schemes, backslashes, and control characters: browsers drop tab/CR/LF inside URLs
    ("/\\t/evil.example" is "//evil.example") and CR/LF would break the Location header.
    """
    if not isinstance(target, str) or not target:
        return default
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target) or "\\" in target:
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def init_web_security(app: flask.Flask, config) -> None:
    """Register the checks. They run as the first url_value_preprocessor: before authentication
    (a foreign Host is a 400, whatever the credentials), CSRF, body parsing and the views."""
    from .api.errors import json_error

    allowed_hosts = AllowedHosts.parse(getattr(config, "allowed_hosts", None))
    app.extensions["etl_allowed_hosts"] = allowed_hosts

    def refuse(status: int, detail: str):
        if flask.request.path.startswith("/api/") or flask.request.path == "/metrics":
            flask.abort(json_error(detail, status))
        flask.abort(status, description=detail)

    @app.url_value_preprocessor
    def _check_browser_request(_endpoint=None, _values=None):
        request = flask.request
        host = split_host(request.host)
        # getsockname() is a system call: made only when the default host list needs its answer
        arrived_on = _local_address(request.environ) if host and allowed_hosts.depends_on_arrival_address(host[0]) else None
        if host is None or not allowed_hosts.allows(host[0], arrived_on):
            refuse(400, f"Invalid Host header: {request.host[:100]!r} is not an allowed host (ETL_ALLOWED_HOSTS)")
        if request.method not in SAFE_METHODS:
            _check_same_origin(request, refuse)
            _check_chunked_body_size(request, refuse)

    @app.after_request
    def _security_headers(response: flask.Response) -> flask.Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            policy = DOCS_POLICY if flask.request.path == DOCS_PATH else PAGE_POLICY
            response.headers.setdefault("Content-Security-Policy", policy)
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def _check_same_origin(request, refuse) -> None:
    if request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        refuse(403, "Cross-site request refused: the browser marked it Sec-Fetch-Site: cross-site")
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser (or a browser's same-origin GET): the contract's clients
    own = _origin_of(request.scheme, request.host)
    if own is None or _normalized_origin(origin) != own:
        refuse(403, f"Cross-origin request refused: Origin {origin[:100]!r} is not this service ({own})")


def _check_chunked_body_size(request, refuse) -> None:
    """A body without Content-Length (chunked) over MAX_CONTENT_LENGTH: 413, never a truncated body."""
    limit = request.max_content_length
    if limit is None or request.content_length is not None:
        return
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    body = request.get_data(cache=True)  # reads at most `limit` bytes; views then use this copy
    stream = request.environ["wsgi.input"]  # the server's de-chunked input, past werkzeug's limit
    if len(body) >= limit and stream.read(1):
        _discard(stream, max(10 * limit, DRAIN_AT_MOST))
        refuse(413, "Request Entity Too Large")


def _discard(stream, budget: int) -> None:
    """Read and drop what is left of a refused body (up to `budget` bytes), so that the server can
    close the connection cleanly and the client reads the 413 instead of a connection reset."""
    while budget > 0:
        piece = stream.read(min(budget, 64 * 1024))
        if not piece:
            return
        budget -= len(piece)
