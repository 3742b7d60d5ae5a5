"""/api/v1/connections: named source databases (beyond the v1 contract). Passwords are write-only."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from ..services import connections as connection_service
from . import Blueprint, fields
from .context import current_etl, db_session, secret_box, source_access
from .schemas import LABEL_ERROR, LABEL_PATTERN, DetailErrorSchema, UtcDateTime, _Input

blp = Blueprint(
    "connections",
    __name__,
    url_prefix="/api/v1/connections",
    description="Named PostgreSQL sources with their own least-privilege logins and limits (beyond the v1 contract).",
)

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PASSWORD_DOC = "Write-only: never returned (see password_set). In PATCH, null removes it."


class _NullableLiteral(fields.Literal):
    """Literal that also takes null (Pydantic's Optional[Literal[...]])."""

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is None and self.allow_none:
            return None
        return super().deserialize(value, attr, data, **kwargs)


class ConnectionCreateSchema(_Input):
    name = fields.String(required=True, min_length=1, max_length=255)
    description = fields.String(allow_none=True, load_default=None)
    url = fields.String(min_length=1, max_length=2000, metadata={
        "description": "postgresql://user[:password]@host[:port]/database[?sslmode=...&options=...], "
                       "instead of the separate fields"})
    host = fields.String(min_length=1, max_length=255)
    port = fields.Integer(ge=1, le=65535)
    database = fields.String(min_length=1, max_length=255)
    user = fields.String(min_length=1, max_length=255)
    password = fields.String(allow_none=True, max_length=1000, load_only=True, metadata={"description": PASSWORD_DOC})
    sslmode = _NullableLiteral(SSL_MODES, allow_none=True)
    options = fields.String(allow_none=True, max_length=1000, metadata={
        "description": "libpq options, e.g. \"-c search_path=content\""})
    statement_timeout_s = ma.fields.Float(allow_none=True, validate=ma.validate.Range(min=0.001, max=86400),
                                          metadata={"description": "Source query limit; null: ETL_STATEMENT_TIMEOUT_S"})
    max_concurrent_runs = fields.Integer(allow_none=True, ge=1, le=1000, metadata={
        "description": "Runs reading this source at once, across all runners; null: no limit"})
    required_label = fields.String(allow_none=True, min_length=1, max_length=64,
                                   validate=ma.validate.Regexp(LABEL_PATTERN, error=LABEL_ERROR), metadata={
        "description": "Only runners started with this label read it (etl-console worker --label)"})


class ConnectionUpdateSchema(ConnectionCreateSchema):
    """All optional; only the keys sent change. A url replaces host, port, database, user, sslmode, options."""

    name = fields.String(min_length=1, max_length=255)
    description = fields.String(allow_none=True)


class ConnectionOutSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    description = ma.fields.String(allow_none=True)
    host = ma.fields.String()
    port = ma.fields.Integer()
    database = ma.fields.String()
    user = ma.fields.String()
    sslmode = ma.fields.String(allow_none=True)
    options = ma.fields.String(allow_none=True)
    password_set = ma.fields.Boolean()
    statement_timeout_s = ma.fields.Float(allow_none=True)
    max_concurrent_runs = ma.fields.Integer(allow_none=True)
    required_label = ma.fields.String(allow_none=True)
    url = ma.fields.String(metadata={"description": "The address, without the password"})
    pipelines = ma.fields.List(ma.fields.String(), metadata={"description": "Pipelines reading this source"})
    last_test = ma.fields.Dict(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class ConnectionTestSchema(ma.Schema):
    connection_id = ma.fields.UUID()
    name = ma.fields.String()
    ok = ma.fields.Boolean(metadata={"description": "Reachable, and the login passes the privilege check"})
    server_version = ma.fields.String(allow_none=True)
    connect_ms = ma.fields.Float(allow_none=True)
    round_trip_ms = ma.fields.Float(allow_none=True)
    privilege_problems = ma.fields.List(ma.fields.String(), metadata={
        "description": "Why the login is unfit to run untrusted SQL (superuser, dangerous roles, ...)"})
    error = ma.fields.String(allow_none=True)
    tested_at = ma.fields.String()


NOT_FOUND = {"description": "Connection not found", "schema": DetailErrorSchema}
VALIDATION = {"description": "FastAPI-style validation errors", "schema": DetailErrorSchema}
BAD = {"description": "Name taken, or unusable settings", "schema": DetailErrorSchema}


def _view(connection):
    return connection_service.connection_view(
        connection, connection_service.pipelines_using(db_session(), connection.id)
    )


@blp.route("/")
class Connections(MethodView):
    @blp.response(200, ConnectionOutSchema(many=True))
    def get(self):
        """List connections, by name"""
        session = db_session()
        return [_view(connection) for connection in connection_service.list_connections(session)]

    @blp.arguments(ConnectionCreateSchema)
    @blp.response(201, ConnectionOutSchema)
    @blp.alt_response(400, **BAD)
    @blp.alt_response(422, **VALIDATION)
    def post(self, data):
        """Create a connection (the password is encrypted at rest and never returned)"""
        return _view(connection_service.create_connection(db_session(), secret_box(), data))


@blp.route("/<connection_id>")
class ConnectionById(MethodView):
    @blp.response(200, ConnectionOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def get(self, connection_id):
        """Get a connection"""
        return _view(connection_service.get_connection(db_session(), connection_id))

    @blp.arguments(ConnectionUpdateSchema)
    @blp.response(200, ConnectionOutSchema)
    @blp.alt_response(400, **BAD)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(422, **VALIDATION)
    def patch(self, changes, connection_id):
        """Change some settings; `password` sets (or with null removes) the password"""
        return _view(connection_service.update_connection(db_session(), secret_box(), connection_id, changes))

    @blp.response(204)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, description="Pipelines use this connection (named in the message)", schema=DetailErrorSchema)
    @blp.alt_response(422, **VALIDATION)
    def delete(self, connection_id):
        """Delete a connection no pipeline uses"""
        connection_service.delete_connection(db_session(), connection_id)


@blp.route("/<connection_id>/test", methods=["POST"])
@blp.response(200, ConnectionTestSchema)
@blp.alt_response(404, **NOT_FOUND)
@blp.alt_response(422, **VALIDATION)
def test_connection(connection_id):
    """Connect now (bounded by ETL_CONNECTION_TEST_TIMEOUT_S): server version, round trip, privilege check.

    A source that cannot be reached, or a login that is a superuser or holds dangerous roles,
    answers 200 with `ok: false` and says why: the test ran, its verdict is the answer."""
    return connection_service.test_connection(current_etl().database.sessions, source_access(), connection_id)
