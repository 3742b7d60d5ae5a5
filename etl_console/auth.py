"""Access control: API bearer tokens with roles, and a console login for operators.

Off by default (nothing configured: everything open, as the embedded demo on loopback needs). It is
on as soon as ETL_API_TOKENS or ETL_CONSOLE_USERS is set, and then everything needs credentials
except GET /api/v1/health[/live], the OpenAPI document, the API docs page, /static/ and the login page.

- API and /metrics: `Authorization: Bearer <token>`. ETL_API_TOKENS="tok1:operator,tok2:viewer", or
  with names the audit log shows as the actor: "ci=tok1:operator,grafana=tok2:viewer" (an unnamed
  token is shown as token-<first 8 hex digits of its SHA-256>).
  A viewer may GET (and HEAD/OPTIONS); an operator may also POST and PATCH (create, patch, run, pause).
  Tokens are compared as SHA-256 digests with hmac.compare_digest against every configured token, and
  never logged (Config does not print them; the access log never writes request headers).
  401 {"detail": "Not authenticated"} with `WWW-Authenticate: Bearer`; 403 {"detail": "..."}.
- Console: a login form at /auth/login. ETL_CONSOLE_USERS="alice=<hash>,bob:viewer=<hash>" (role
  defaults to operator; the hash is werkzeug's, printed by `python -m etl_console.auth hash-password`).
  The session cookie is HttpOnly, SameSite=Lax, and Secure whenever the request came over TLS (as
  ProxyFix reports it from nginx's X-Forwarded-Proto), or always with SESSION_COOKIE_SECURE.
  A signed-in session lives server-side (etl_console_sessions; the cookie holds only a random id)
  for 12 hours from sign-in, and logout deletes it: a copied cookie is worthless afterwards.
  Failed password logins are throttled per user name and per client address (LOGIN_LIMITS_*),
  with counters shared by every web process in the metadata database.
- Binding a non-loopback address with auth off is refused (see `check_bind`).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from .extensions import etl_of

ROLES = ("viewer", "operator")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset(
    {"/api/v1/health", "/api/v1/health/live", "/api/v1/openapi.json", "/api/v1/docs", "/auth/login", "/auth/logout"}
)
MIN_TOKEN_LENGTH = 16
SESSION_USER = "auth_user"
SESSION_LIFETIME = timedelta(hours=12)  # from sign-in, whatever the activity: then sign in again
# Failed password logins allowed before the next attempt waits for the window to end. Each longer
# window allows fewer attempts per minute, so a guesser's delays grow: about a minute after 5
# failures, the rest of the hour after 20, the rest of the day after 100. A person who mistypes
# waits a minute at most. Per address the allowance is larger (people share an office NAT).
LOGIN_LIMITS_PER_USER = "5 per minute; 20 per hour; 100 per day"
LOGIN_LIMITS_PER_ADDRESS = "10 per minute; 50 per hour; 300 per day"

ENABLE_HINT = (
    "Set ETL_API_TOKENS (e.g. ETL_API_TOKENS=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))'):operator\") "
    "and ETL_CONSOLE_USERS (name=<hash>, hash printed by `python -m etl_console.auth hash-password`), "
    "or bind 127.0.0.1, or set ETL_ALLOW_OPEN=1 if another layer authenticates every request."
)


class AuthConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AuthSettings:
    token_digests: tuple[tuple[bytes, str, str], ...] = field(default=(), repr=False)  # (digest, role, name)
    users: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # name -> (hash, role)

    @property
    def enabled(self) -> bool:
        return bool(self.token_digests or self.users)

    def role_for_token(self, presented: str) -> str | None:
        identity = self.token_identity(presented)
        return identity[0] if identity else None

    def token_identity(self, presented: str) -> tuple[str, str] | None:
        """(role, name) of a configured token. Constant time in the token's content: every
        configured token is compared, no early exit."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        identity = None
        for token_digest, token_role, token_name in self.token_digests:
            if hmac.compare_digest(digest, token_digest):
                identity = (token_role, token_name)
        return identity

    def check_password(self, name: str, password: str) -> str | None:
        """The user's role if the password matches. Unknown names cost the same hash as known ones."""
        from werkzeug.security import check_password_hash

        stored = self.users.get(name)
        ok = check_password_hash(stored[0] if stored else _dummy_hash(), password)
        return stored[1] if stored and ok else None


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash("not-a-user-password")


_TOKEN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def parse_tokens(raw: str | None) -> tuple[tuple[bytes, str, str], ...]:
    """Entries `[name=]token:role`. A name is what the audit log shows; without one, a fingerprint."""
    entries = []
    for number, item in enumerate((raw or "").split(","), start=1):
        item = item.strip()
        if not item:
            continue
        token, sep, role = item.rpartition(":")
        if not sep or role not in ROLES:
            raise AuthConfigError(f"ETL_API_TOKENS entry {number} must be <token>:operator or <token>:viewer")
        name, equals, named_token = token.partition("=")
        # A base64 token may end in '=': only a name-shaped prefix before a full-length token names it.
        if equals and _TOKEN_NAME.fullmatch(name) and len(named_token) >= MIN_TOKEN_LENGTH:
            token = named_token
        else:
            name = ""
        if len(token) < MIN_TOKEN_LENGTH:
            raise AuthConfigError(f"ETL_API_TOKENS entry {number}: tokens must be at least {MIN_TOKEN_LENGTH} characters")
        digest = hashlib.sha256(token.encode()).digest()
        entries.append((digest, role, name or f"token-{digest.hex()[:8]}"))
    return tuple(entries)


def parse_users(raw: str | None) -> dict[str, tuple[str, str]]:
    users = {}
    for number, item in enumerate((raw or "").split(","), start=1):
        item = item.strip()
        if not item:
            continue
        who, sep, password_hash = item.partition("=")
        name, _, role = who.partition(":")
        role = role or "operator"
        if not sep or not name or role not in ROLES:
            raise AuthConfigError(f"ETL_CONSOLE_USERS entry {number} must be name=<hash> or name:viewer=<hash>")
        if not password_hash.startswith(("scrypt:", "pbkdf2:")):
            raise AuthConfigError(
                f"ETL_CONSOLE_USERS entry {number} ({name}): give a password hash from "
                "`python -m etl_console.auth hash-password`, not a password"
            )
        users[name] = (password_hash, role)
    return users


def settings_from_config(config) -> AuthSettings:
    return AuthSettings(parse_tokens(config.api_tokens), parse_users(config.console_users))


# binding --------------------------------------------------------------------------------------------
def is_loopback(bind: str) -> bool:
    """'127.0.0.1:8000', '[::1]:8000', 'localhost', 'unix:/run/app.sock' are local; '0.0.0.0' is not."""
    bind = bind.strip()
    if bind.startswith(("unix:", "fd://")):
        return True
    host = bind
    if bind.startswith("["):
        host = bind[1 : bind.index("]")] if "]" in bind else bind
    elif bind.count(":") == 1:
        host = bind.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(binds: str | list[str], config) -> str | None:
    """None when serving on these addresses is allowed, else the message to stop with."""
    binds = [binds] if isinstance(binds, str) else list(binds)
    exposed = [b for b in binds if not is_loopback(b)]
    if not exposed or config.allow_open or settings_from_config(config).enabled:
        return None
    return f"refusing to serve on {', '.join(exposed)} without authentication. {ENABLE_HINT}"


# the Flask side ---------------------------------------------------------------------------------------
def _safe_next(target: str | None) -> str:
    from .web_security import safe_redirect_target

    return safe_redirect_target(target, default="/")


def init_auth(app, config) -> AuthSettings:
    import flask

    from .api.errors import json_error
    from .services import audit

    settings = settings_from_config(config)
    app.extensions["etl_auth"] = settings

    # Flask's own default (31 days) is already in app.config, so a setdefault would never apply:
    # 12 hours unless the app's overrides name another lifetime.
    if "PERMANENT_SESSION_LIFETIME" not in config.extra:
        app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    from .web_sessions import ServerSideSessionInterface

    app.session_interface = ServerSideSessionInterface(etl_of(app).database)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"

    _register_login(app, settings)

    @app.url_value_preprocessor
    def _authorize_first(_endpoint=None, _values=None):
        """Before the blueprints parse path values (a malformed id would otherwise answer 422 to an
        anonymous client) and before every before_request (CSRF among them)."""
        refusal = _authorize()
        if refusal is not None:
            flask.abort(refusal)
        flask.g.audit_actor_token = audit.bind_actor(_request_actor(settings))

    @app.teardown_request
    def _unbind_actor(_exc=None):
        token = flask.g.pop("audit_actor_token", None)
        if token is not None:
            audit.unbind_actor(token)

    def _authorize():
        if not settings.enabled:
            return None
        request = flask.request
        path = request.path
        if path in PUBLIC_PATHS or path.startswith("/static/"):
            return None
        if path.startswith("/api/") or path == "/metrics":
            header = request.headers.get("Authorization", "")
            scheme, _, presented = header.partition(" ")
            presented = presented.strip()
            identity = settings.token_identity(presented) if scheme.lower() == "bearer" and presented else None
            role, flask.g.auth_token_name = identity or (None, None)
            if role is None:
                detail = "Invalid authentication credentials" if header.strip() else "Not authenticated"
                return json_error(detail, 401, {"WWW-Authenticate": "Bearer"})
            if request.method not in READ_METHODS and role != "operator":
                return json_error("Not enough permissions: this token's role is viewer (read only)", 403)
            flask.g.auth_role = role
            return None
        # the console
        user = flask.session.get(SESSION_USER)
        known = settings.users.get(user) if user else None
        if known is None:
            if request.headers.get("HX-Request"):
                response = flask.Response("login required", status=401)
                response.headers["HX-Redirect"] = flask.url_for("auth.login", next=request.full_path.rstrip("?"))
                return response
            if request.method in READ_METHODS:
                return flask.redirect(flask.url_for("auth.login", next=request.full_path.rstrip("?")))
            flask.abort(401)
        flask.g.auth_user, flask.g.auth_role = user, known[1]
        if request.method not in READ_METHODS and known[1] != "operator":
            flask.abort(403)
        return None

    return settings


def _request_actor(settings: AuthSettings):
    """Who the audit log names for this request: the token's name, the console user, or anonymous."""
    import flask

    from .services import audit

    request = flask.request
    token_name, user = flask.g.get("auth_token_name"), flask.g.get("auth_user")
    if token_name:
        name, kind = token_name, "token"
    elif user:
        name, kind = user, "console"
    else:
        name, kind = "anonymous", "anonymous"
    return audit.Actor(name, kind, request.remote_addr, flask.g.get("request_id"))


def _record_login(user_name: str, succeeded: bool) -> None:
    """login.success / login.failure, committed at once (nothing else changes in a login request).
    A failure stores the attempted user name (cut to 64 characters), never the password."""
    import flask

    from .api.context import db_session
    from .services import audit

    request = flask.request
    actor = audit.Actor(user_name[:64], "console", request.remote_addr, flask.g.get("request_id"))
    if not succeeded:
        actor = audit.Actor("anonymous", "anonymous", request.remote_addr, flask.g.get("request_id"))
    session = db_session()
    audit.record(session, "login.success" if succeeded else "login.failure", object_type="user",
                 object_name=user_name[:64], actor=actor)
    session.commit()


def _register_login(app, settings: AuthSettings) -> None:
    import flask
    from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf

    bp = flask.Blueprint("auth", __name__, url_prefix="/auth")
    limiter = _login_limiter(app, bp)

    def render(error: str | None = None, status: int = 200, headers: dict | None = None):
        body = flask.render_template(
            "auth/login.html",
            csrf_token=generate_csrf(),
            error=error,
            next=_safe_next(flask.request.values.get("next")),
            configured=bool(settings.users),
        )
        return body, status, headers or {}

    def login_failed(response) -> bool:
        return response.status_code == 401

    @bp.errorhandler(429)
    def throttled(_error):
        breached = limiter.current_limit
        wait = max(1, int(breached.reset_at - time.time())) if breached is not None else 60
        app.logger.warning(
            "console login throttled for user %r from %s: %s failed attempts",
            flask.request.form.get("username", "")[:64], flask.request.remote_addr, breached.limit if breached else "?",
        )
        message = f"Too many failed sign-in attempts. Try again in {_spoken_duration(wait)}."
        return render(message, 429, {"Retry-After": str(wait)})

    @bp.route("/login", methods=["GET", "POST"])
    @limiter.limit(
        LOGIN_LIMITS_PER_USER, key_func=_attempted_user, methods=["POST"], deduct_when=login_failed, scope="login-user"
    )
    @limiter.limit(
        LOGIN_LIMITS_PER_ADDRESS, key_func=_client_network, methods=["POST"], deduct_when=login_failed, scope="login-address"
    )
    def login():
        if flask.request.method == "GET":
            return render()
        try:
            validate_csrf(flask.request.form.get("csrf_token"))
        except CSRFError:
            return render("The form expired; please try again.", 400)
        except Exception:  # noqa: BLE001 - wtforms' ValidationError: missing or bad token
            return render("The form expired; please try again.", 400)
        name = flask.request.form.get("username", "")
        role = settings.check_password(name, flask.request.form.get("password", "")) if settings.users else None
        if role is None:
            app.logger.warning("console login failed for user %r", name[:64])
            _record_login(name, succeeded=False)
            return render("Wrong user name or password.", 401)
        flask.session.clear()
        flask.session.permanent = True
        flask.session[SESSION_USER] = name
        app.logger.info("console login: %s (%s)", name, role)
        _record_login(name, succeeded=True)
        return flask.redirect(_safe_next(flask.request.form.get("next")))

    @bp.post("/logout")
    def logout():
        try:
            validate_csrf(flask.request.form.get("csrf_token"))
        except Exception:  # noqa: BLE001
            flask.abort(400)
        flask.session.clear()
        return flask.redirect(flask.url_for("auth.login"))

    @app.context_processor
    def _auth_context():
        return {"auth_enabled": settings.enabled, "auth_user": flask.g.get("auth_user")}

    app.register_blueprint(bp)


def _login_limiter(app, login_blueprint):
    """Flask-Limiter over counters in the metadata database, shared by every web process.

    Only the login view has limits, so the extension's request hooks (look up the view's limits,
    deduct failed attempts after the response, reset) run for the login blueprint's requests
    alone: registered app-wide, they cost every API call and page for nothing."""
    from flask_limiter import Limiter

    from .services.login_attempts import STORAGE_SCHEME

    limiter = Limiter(
        key_func=_client_network,
        app=app,
        storage_uri=f"{STORAGE_SCHEME}://",
        storage_options={"database": etl_of(app).database},
        strategy="fixed-window",
        key_prefix="etl-console",
    )
    for app_hooks, register in (
        (app.before_request_funcs, login_blueprint.before_request),
        (app.after_request_funcs, login_blueprint.after_request),
        (app.teardown_request_funcs, login_blueprint.teardown_request),
    ):
        app_wide = app_hooks.get(None, [])
        for hook in [hook for hook in app_wide if _bound_to(hook, limiter)]:
            app_wide.remove(hook)
            register(hook)
    return limiter


def _bound_to(hook, owner) -> bool:
    """A bound method of `owner`, or a partial with `owner` first (how Flask-Limiter registers them)."""
    import functools

    if getattr(hook, "__self__", None) is owner:
        return True
    return isinstance(hook, functools.partial) and hook.args[:1] == (owner,)


def _spoken_duration(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size:
            count = -(-seconds // size)
            return f"{count} {unit}s"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _attempted_user(max_length: int = 64) -> str:
    import flask

    return "user:" + flask.request.form.get("username", "")[:max_length]


def _client_network() -> str:
    """The client's address (ProxyFix has replaced nginx's with the client's); an IPv6 client by its
    /64, since one machine commonly holds a whole /64 and could otherwise rotate through it."""
    import flask

    address = flask.request.remote_addr or "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return "address:" + address
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:
            return f"address:{parsed.ipv4_mapped}"
        return "address:" + str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return f"address:{parsed}"


def main(argv: list[str] | None = None) -> int:
    """`python -m etl_console.auth hash-password`: read a password (twice) and print its hash."""
    import getpass
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["hash-password"]:
        print("usage: python -m etl_console.auth hash-password   (reads the password from the terminal or stdin)")
        return 2
    from werkzeug.security import generate_password_hash

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("use at least 8 characters", file=sys.stderr)
        return 1
    print(generate_password_hash(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
