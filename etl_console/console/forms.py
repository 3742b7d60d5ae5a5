"""Create and edit forms: HTML form fields in, the API's own validation and services behind.

Types and ranges are checked by the API's marshmallow schemas and business rules by the services,
so every message a form shows is the one the API answers with. This module only translates between
an HTML form (strings, a checkbox) and those layers, and puts each error next to its field.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import marshmallow as ma
from sqlalchemy.orm import Session

from ..api.schemas import PIPELINE_MODES, PIPELINE_TYPES, PipelineCreateSchema, PipelineUpdateSchema
from ..db.models import Pipeline
from ..services import errors
from ..services import pipelines as pipeline_service

FIELDS = pipeline_service.EDITABLE_FIELDS  # the form edits exactly what the service accepts
_OPTIONAL_TEXT = ("description", "incremental_key")  # an empty box means null
FORM_ERROR = "__form__"  # errors that belong to no single field
# The named source connection (a name; empty: the deployment's default). Not an EDITABLE_FIELD: the
# service resolves it to an id, and PipelineOut never returns it.
SOURCE_FIELD = "source_connection"

_create_schema = PipelineCreateSchema()
_update_schema = PipelineUpdateSchema()


@dataclass
class PipelineForm:
    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    present: set[str] = field(default_factory=lambda: set(FIELDS))
    types: tuple[str, ...] = PIPELINE_TYPES
    modes: tuple[str, ...] = PIPELINE_MODES

    def error(self, name: str) -> str | None:
        return self.errors.get(name)

    @property
    def form_error(self) -> str | None:
        return self.errors.get(FORM_ERROR)

    @classmethod
    def blank(cls) -> "PipelineForm":
        return cls(
            {
                "name": "",
                "description": "",
                "type": PIPELINE_TYPES[0],
                "mode": PIPELINE_MODES[0],
                "enabled": True,
                "target_table": "",
                "batch_size": "1000",
                "source_query": "",
                "incremental_key": "",
                SOURCE_FIELD: "",
            }
        )

    @classmethod
    def of(cls, pipeline: Pipeline, source_connection: str = "") -> "PipelineForm":
        values = {name: getattr(pipeline, name, None) for name in FIELDS}
        values[SOURCE_FIELD] = source_connection
        for name in _OPTIONAL_TEXT:
            values[name] = values[name] or ""
        values["batch_size"] = str(values["batch_size"])
        return cls(values)

    @classmethod
    def submitted(cls, form: Mapping[str, str]) -> "PipelineForm":
        """What the browser sent, kept as typed so the page can show it back with the errors.

        A field the request left out stays out of the payload (the API's default applies, as when
        a JSON key is missing); an unticked checkbox is simply absent, so it means enabled=false.
        """
        blank = cls.blank().values
        values: dict[str, Any] = {}
        for name in FIELDS:
            if name == "enabled":
                values[name] = form.get(name) is not None
            elif name in form:
                value = form[name].replace("\r\n", "\n")  # browsers send textarea breaks as CRLF
                stripped = name in ("name", "target_table", "batch_size", "incremental_key")
                values[name] = value.strip() if stripped else value
        if SOURCE_FIELD in form:
            values[SOURCE_FIELD] = form[SOURCE_FIELD].strip()
        form_state = cls({**blank, **values})
        form_state.present = set(values)
        return form_state

    def payload(self) -> dict[str, Any]:
        """The form as the JSON body the API would get: an empty optional box is null."""
        data = {name: self.values[name] for name in (*FIELDS, SOURCE_FIELD) if name in self.present}
        for name in (*_OPTIONAL_TEXT, SOURCE_FIELD):
            if name in data:
                data[name] = data[name] or None
        return data


def create(session: Session, allowed_targets: Iterable[str], form: PipelineForm, source_access=None) -> Pipeline | None:
    """Create the pipeline, or return None with form.errors filled in."""
    data = form.payload()
    if data.get("batch_size") == "":
        del data["batch_size"]  # the API's default, as when the key is left out
    loaded = _load(_create_schema, data, form)
    if loaded is None:
        return None
    return _call(form, pipeline_service.create_pipeline, session, allowed_targets, loaded, source_access=source_access)


def update(
    session: Session, allowed_targets: Iterable[str], pipeline_id: uuid.UUID, form: PipelineForm, source_access=None
) -> Pipeline | None:
    """Apply the fields the operator changed (a PATCH of just those), or return None with errors.

    Sending only the changes keeps the API's PATCH semantics: saving a description must not re-enable
    a paused pipeline because the form also carried enabled=true.
    """
    loaded = _load(_update_schema, form.payload(), form)
    if loaded is None:
        return None
    current = pipeline_service.get_pipeline(session, pipeline_id)
    changes = {key: value for key, value in loaded.items() if key != SOURCE_FIELD and getattr(current, key) != value}
    if SOURCE_FIELD in loaded:  # the service compares it with the current connection itself
        changes[SOURCE_FIELD] = loaded[SOURCE_FIELD]
    # The service locks and re-reads the row itself (its locked read refreshes this earlier one).
    return _call(form, pipeline_service.update_pipeline, session, allowed_targets, pipeline_id, changes,
                 source_access=source_access)


def _load(schema: ma.Schema, data: dict[str, Any], form: PipelineForm) -> dict[str, Any] | None:
    try:
        return schema.load(data)
    except ma.ValidationError as error:
        for name, messages in error.normalized_messages().items():
            message = messages[0] if isinstance(messages, list) else messages
            form.errors[name if name in (*FIELDS, SOURCE_FIELD) else FORM_ERROR] = str(message)
        return None


def _call(form: PipelineForm, service, *args, **kwargs) -> Pipeline | None:
    try:
        return service(*args, **kwargs)
    except errors.PipelineNotFound:
        raise
    except errors.DomainError as error:
        # Next to the field the error concerns; one the form has not (or none), above the form.
        form.errors[error.field if error.field in (*FIELDS, SOURCE_FIELD) else FORM_ERROR] = str(error)
        return None
