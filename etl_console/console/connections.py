"""Console pages for named source connections: the list with each one's last test, create and edit
forms, and a Test button whose result htmx swaps into the row.

A password is only ever typed in: the form's password box is always rendered empty (leave it empty
to keep the stored one), and no page or fragment receives it back. Validation is the API's
(its marshmallow schemas) and the service's, so the console says what the API would.
"""
from __future__ import annotations

import uuid
from typing import Any, Mapping

import flask
import marshmallow as ma
from werkzeug.exceptions import NotFound

from ..api.connections import SSL_MODES, ConnectionCreateSchema, ConnectionUpdateSchema
from ..api.context import current_etl, db_session, secret_box, source_access
from ..services import connections as connection_service
from ..services import errors

bp = flask.Blueprint("console_connections", __name__)

TEXT_FIELDS = ("name", "description", "host", "port", "database", "user", "sslmode", "options",
               "statement_timeout_s", "max_concurrent_runs", "required_label")
_OPTIONAL = ("description", "sslmode", "options", "statement_timeout_s", "max_concurrent_runs", "port",
             "required_label")
FORM_ERROR = "__form__"
_create_schema = ConnectionCreateSchema()
_update_schema = ConnectionUpdateSchema()


def _connection_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("Connection not found") from None


def _htmx() -> bool:
    return flask.request.headers.get("HX-Request") == "true"


# the list --------------------------------------------------------------------------------------
@bp.get("/connections")
def connections():
    return _list_page()


def _list_page(error: str | None = None, status: int = 200):
    session = db_session()
    used = connection_service.usage_counts(session)
    rows = [
        {**connection_service.connection_view(connection), "pipeline_count": used.get(connection.id, 0)}
        for connection in connection_service.list_connections(session)
    ]
    return flask.render_template("console/connections.html", connections=rows, error=error), status


@bp.post("/connections/<connection_id>/test")
def test_connection(connection_id: str):
    """Connect now; htmx gets the row's result cell, a plain form post the list again."""
    cid = _connection_uuid(connection_id)
    result = connection_service.test_connection(current_etl().database.sessions, source_access(), cid)
    if _htmx():
        return flask.render_template("console/_connection_test.html", test=result, connection_id=cid)
    return flask.redirect(flask.url_for(".connections"), 303)


@bp.post("/connections/<connection_id>/delete")
def delete_connection(connection_id: str):
    try:
        connection_service.delete_connection(db_session(), _connection_uuid(connection_id))
    except errors.ConnectionInUse as in_use:
        return _list_page(str(in_use), 409)
    return flask.redirect(flask.url_for(".connections"), 303)


# create and edit -------------------------------------------------------------------------------
@bp.route("/connections/new", methods=["GET", "POST"])
def new_connection():
    if flask.request.method == "GET":
        return _form_page(_blank(), {}, None)
    values = _submitted(flask.request.form)
    form_errors: dict[str, str] = {}
    data = _load(_create_schema, _payload(values, flask.request.form, editing=False), form_errors)
    if data is not None:
        try:
            connection_service.create_connection(db_session(), secret_box(), data)
        except errors.DomainError as error:
            form_errors[_field_of(error)] = str(error)
        else:
            return flask.redirect(flask.url_for(".connections"), 303)
    return _form_page(values, form_errors, None), 400


@bp.route("/connections/<connection_id>/edit", methods=["GET", "POST"])
def edit_connection(connection_id: str):
    cid = _connection_uuid(connection_id)
    session = db_session()
    connection = connection_service.get_connection(session, cid)
    if flask.request.method == "GET":
        return _form_page(_of(connection), {}, connection)
    values = _submitted(flask.request.form)
    form_errors: dict[str, str] = {}
    data = _load(_update_schema, _payload(values, flask.request.form, editing=True), form_errors)
    if data is not None:
        try:
            connection_service.update_connection(session, secret_box(), cid, data)
        except errors.ConnectionNotFound:
            raise
        except errors.DomainError as error:
            form_errors[_field_of(error)] = str(error)
        else:
            return flask.redirect(flask.url_for(".connections"), 303)
    return _form_page(values, form_errors, connection_service.get_connection(session, cid)), 400


def _form_page(values: dict[str, Any], form_errors: dict[str, str], connection):
    return flask.render_template(
        "console/connection_form.html",
        values=values,
        errors=form_errors,
        connection=connection,
        password_set=connection is not None and connection.password_token is not None,
        ssl_modes=SSL_MODES,
    )


def _blank() -> dict[str, Any]:
    return {name: "" for name in TEXT_FIELDS} | {"port": "5432"}


def _of(connection) -> dict[str, Any]:
    view = connection_service.connection_view(connection)
    return {name: "" if view[name] is None else str(view[name]) for name in TEXT_FIELDS}


def _submitted(form: Mapping[str, str]) -> dict[str, Any]:
    """What the browser sent, to show back with the errors; never the password."""
    return {name: form.get(name, "").strip() for name in TEXT_FIELDS}


def _payload(values: dict[str, Any], form: Mapping[str, str], *, editing: bool) -> dict[str, Any]:
    """The form as the API's JSON body: empty optional boxes are null (or, for the port, the default)."""
    data: dict[str, Any] = {}
    for name, value in values.items():
        if value == "" and name in _OPTIONAL:
            if name != "port":
                data[name] = None
            continue
        data[name] = value
    password = form.get("password", "")
    if password:
        data["password"] = password
    elif editing and form.get("remove_password"):
        data["password"] = None
    return data


def _load(schema: ma.Schema, data: dict[str, Any], form_errors: dict[str, str]) -> dict[str, Any] | None:
    try:
        return schema.load(data)
    except ma.ValidationError as error:
        for name, messages in error.normalized_messages().items():
            message = messages[0] if isinstance(messages, list) else messages
            form_errors[name if name in (*TEXT_FIELDS, "password") else FORM_ERROR] = str(message)
        return None


def _field_of(error: errors.DomainError) -> str:
    """The field the error concerns (the service names it), if the form has one; else the whole form."""
    return error.field if error.field in (*TEXT_FIELDS, "password") else FORM_ERROR
