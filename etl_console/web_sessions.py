"""Console sessions for Flask: signed-in sessions live server-side, in the metadata database.

Before sign-in a session holds only the login form's CSRF secret; it stays the usual signed cookie,
so anonymous visitors add no rows. Signing in moves the session into etl_console_sessions under a
fresh random id (never one the browser brought: no session fixation), and the cookie then carries
only that id. Logout, or the end of the 12-hour lifetime, deletes the row: the old cookie, replayed,
opens an empty session and the console asks for a login.
"""
from __future__ import annotations

import flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy import Engine

from .auth import SESSION_USER
from .services import console_sessions

_SESSION_ID = "_sid"  # the cookie's only key while signed in


class ConsoleSession(SecureCookieSession):
    session_id: str | None = None  # the row's id while signed in
    stored_user: str | None = None  # the user the row belongs to
    expires_at = None


class ServerSideSessionInterface(SecureCookieSessionInterface):
    session_class = ConsoleSession

    def __init__(self, database) -> None:
        self._database = database  # read at each use: the app's database connects on first request

    @property
    def engine(self) -> Engine:
        return self._database.engine

    def get_cookie_secure(self, app) -> bool:
        """Secure whenever the request came over TLS (ProxyFix applies X-Forwarded-Proto)."""
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        return bool(flask.request) and flask.request.is_secure

    def open_session(self, app, request) -> ConsoleSession | None:
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            # What the signed-cookie interface answers without a cookie, minus building its signer:
            # API clients, health checks and first visits carry none.
            return self.session_class()
        cookie = super().open_session(app, request)
        if cookie is None:
            return None
        session_id = cookie.get(_SESSION_ID)
        if session_id is None:
            if SESSION_USER in cookie:
                # A signed-in cookie from before sessions moved server-side: it could never be
                # ended by a logout, so it no longer counts.
                cookie.pop(SESSION_USER)
            return cookie
        stored = console_sessions.load_session(self.engine, session_id) if isinstance(session_id, str) else None
        if stored is None:
            ended = self.session_class()
            ended.modified = True  # the response deletes the dead cookie
            return ended
        session = self.session_class(self.serializer.loads(stored.data))
        session.session_id, session.stored_user, session.expires_at = session_id, stored.user_name, stored.expires_at
        return session

    def save_session(self, app, session: ConsoleSession, response) -> None:
        user = session.get(SESSION_USER)
        if user is None:
            if session.session_id is not None:  # signed out
                console_sessions.end_session(self.engine, session.session_id)
                session.session_id = None
                session.modified = True
            super().save_session(app, session, response)
            return
        if session.accessed:
            response.vary.add("Cookie")
        data = self.serializer.dumps(dict(session))
        if session.session_id is None or session.stored_user != user:
            if session.session_id is not None:
                console_sessions.end_session(self.engine, session.session_id)
            session.session_id, session.expires_at = console_sessions.create_session(
                self.engine, user, data, app.permanent_session_lifetime
            )
            session.stored_user = user
            self._set_id_cookie(app, session, response)
        elif session.modified:
            console_sessions.save_session_data(self.engine, session.session_id, data)

    def _set_id_cookie(self, app, session: ConsoleSession, response) -> None:
        response.set_cookie(
            self.get_cookie_name(app),
            self.get_signing_serializer(app).dumps({_SESSION_ID: session.session_id}),
            expires=session.expires_at,  # the row's end: the browser forgets the cookie when it is useless
            httponly=self.get_cookie_httponly(app),
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            partitioned=self.get_cookie_partitioned(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")
