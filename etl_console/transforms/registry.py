"""Which transforms are installed: the entry-point group, read afresh on every call (a package
installed while the service runs shows up without a restart), plus any registered in-process."""
from __future__ import annotations

import inspect
import logging
from importlib.metadata import entry_points
from typing import Any

import marshmallow as ma

from .base import Transform

ENTRY_POINT_GROUP = "etl_console.transforms"

log = logging.getLogger(__name__)

_registered: dict[str, type[Transform]] = {}  # register_transform(): an embedding process's own


class UnknownTransform(Exception):
    def __init__(self, kind: str, installed: list[str]) -> None:
        super().__init__(f"unknown transform kind '{kind}' (installed: {', '.join(installed) or 'none'})")
        self.kind = kind


def register_transform(kind: str, transform: type[Transform]) -> None:
    """Make a transform available in this process only (a benchmark, an application embedding the
    runner). Services use the entry points; a kind registered here is unknown to other processes."""
    _check_class(kind, transform)
    _registered[kind] = transform


def installed_transforms() -> dict[str, type[Transform]]:
    found: dict[str, type[Transform]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found:
            continue  # one distribution installed twice (editable and not): the first wins, as pip's path order
        try:
            transform = entry.load()
            _check_class(entry.name, transform)
        except Exception:  # noqa: BLE001 - one broken plugin must not hide the others
            log.exception("transform %s (%s) could not be loaded", entry.name, entry.value)
            continue
        found[entry.name] = transform
    found.update(_registered)
    return dict(sorted(found.items()))


def transform_class(kind: str) -> type[Transform]:
    installed = installed_transforms()
    if kind not in installed:
        raise UnknownTransform(kind, list(installed))
    return installed[kind]


def describe_transforms() -> list[dict[str, Any]]:
    """Kinds with their docs and config schemas, for the CLI, the API and the console."""
    return [
        {
            "kind": kind,
            "doc": inspect.getdoc(transform) or "",
            "source": f"{transform.__module__}:{transform.__qualname__}",
            "config_schema": schema_description(transform.ConfigSchema()),
        }
        for kind, transform in installed_transforms().items()
    ]


def schema_description(schema: ma.Schema) -> dict[str, Any]:
    """A small JSON-Schema-like description of a marshmallow schema: enough to fill in a config."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in schema.fields.items():
        described: dict[str, Any] = {"type": _field_type(field)}
        if field.metadata.get("description"):
            described["description"] = field.metadata["description"]
        choices = getattr(field.validate, "choices", None) if field.validate else None
        for validator in field.validators:
            choices = getattr(validator, "choices", choices)
        if choices is not None:
            described["enum"] = list(choices)
        if field.load_default is not ma.missing and not callable(field.load_default):
            described["default"] = field.load_default
        if isinstance(field, ma.fields.Dict) and field.value_field is not None:
            described["values"] = _field_type(field.value_field)
        if isinstance(field, ma.fields.List):
            described["items"] = _field_type(field.inner)
        properties[name] = described
        if field.required:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


def _field_type(field: ma.fields.Field) -> str:
    for cls, name in ((ma.fields.Boolean, "boolean"), (ma.fields.Integer, "integer"), (ma.fields.Number, "number"),
                      (ma.fields.String, "string"), (ma.fields.List, "array"), (ma.fields.Dict, "object")):
        if isinstance(field, cls):
            return name
    return "any"


def _check_class(kind: str, transform: Any) -> None:
    if not (inspect.isclass(transform) and issubclass(transform, Transform)):
        raise TypeError(f"transform {kind} is not a subclass of etl_console.transforms.Transform")
