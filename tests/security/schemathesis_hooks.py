"""schemathesis hooks for tests/security/test_schemathesis.py (loaded by `hooks = ...` in its config).

One `filter_failure` hook, which drops exactly two kinds of false findings and keeps every other one:

1. negative_data_rejection (ST201) on a request whose only schema violations are the lax-mode
   coercions of the contract's Pydantic models: a boolean given as 0 / 1 (0.0 / 1.0) or as one of
   "0 off f false n no 1 on t true y yes" in any case, an integer given as a boolean, as an integral
   finite float (12.0) or as an integer string ("12", " -1_000 ", "12.00"). v1 parses bodies that way
   (etl_console/api/fields.py) and documents those fields, as FastAPI did, as plain boolean and
   integer. The failure is dropped only when the request, with those values converted as Pydantic
   converts them, satisfies the operation's schema in every location schemathesis made invalid (so
   `"batch_size": "0"` under `minimum: 1`, `"enabled": 2`, `"enabled": " true"`, a string for a
   number, a missing required field or an unknown property all still fail the check). The rules are
   written out here from Pydantic's conversion table, not imported from the server's fields.

2. use_after_free (ST301) after DELETE /api/v1/pipelines/{id}/schedule or /state, when the GET of
   the same path answers the reset value (schedule, next run and watermark null). These are a
   pipeline's settings, which exist as long as the pipeline does; DELETE resets them ("Remove the
   schedule", "Reset the watermark").
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import UseAfterFree

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
_INT_STRING = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?", re.ASCII)
_NOT = object()  # no lax conversion applies


def lax_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):  # 0, 1, 0.0, 1.0 (not nan, not 2)
        return bool(value)
    if isinstance(value, str):
        lowered = value.lower()  # no trimming: " true" is refused
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return _NOT


def lax_int(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, str) and _INT_STRING.fullmatch(value.strip()):
        return int(value.strip().split(".")[0].replace("_", ""))
    return _NOT


def _resolve(schema: Any, root: dict) -> Any:
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/"):
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema, seen = target, seen + 1
        if seen > 50:
            break
    return schema


def lax(schema: Any, value: Any, root: dict) -> Any:
    """`value` with every boolean / integer the schema expects converted as Pydantic's lax mode does."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return value
    for sub in schema.get("allOf", []):
        value = lax(sub, value, root)
    for keyword in ("anyOf", "oneOf"):
        for sub in schema.get(keyword, []):
            converted = lax(sub, value, root)
            if converted is not value:  # the first branch that converts it (e.g. integer of integer | null)
                value = converted
                break
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    if "boolean" in types and not isinstance(value, bool):
        converted = lax_bool(value)
        if converted is not _NOT:
            return converted
    if "integer" in types and (isinstance(value, bool) or not isinstance(value, int)):
        converted = lax_int(value)
        if converted is not _NOT:
            return converted
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        converted = {}
        for name, item in value.items():
            if name in properties:
                converted[name] = lax(properties[name], item, root)
            elif isinstance(extra, dict):
                converted[name] = lax(extra, item, root)
            else:
                converted[name] = item
        return converted if _differs(converted, value) else value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        converted_list = [lax(schema["items"], item, root) for item in value]
        return converted_list if _differs(converted_list, value) else value
    return value


def _differs(converted: Any, value: Any) -> bool:
    """True == 1 in Python; compare with the types."""
    return json.dumps(converted, sort_keys=True, default=repr) != json.dumps(value, sort_keys=True, default=repr)


def only_lax_coercions(case: Any) -> bool:
    """Whether every location schemathesis made invalid is valid once its lax conversions are made."""
    from schemathesis.specs.openapi.checks import _get_openapi_schema
    from schemathesis.core.parameters import plain_str_values
    from schemathesis.core.jsonschema import make_validator

    meta = case.meta
    if meta is None:
        return False
    negative = [location for location in (
        ParameterLocation.PATH, ParameterLocation.QUERY, ParameterLocation.HEADER, ParameterLocation.COOKIE,
        ParameterLocation.BODY,
    ) if meta.is_negative_at(location)]
    if not negative:
        return False
    validator_cls = _get_openapi_schema(case).adapter.jsonschema_validator_cls
    for location in negative:
        if location == ParameterLocation.BODY:
            if case.media_type is None:
                return False
            alternative = case.operation.get_body_for_media_type(case.media_type)
            if alternative is None:
                return False
            schema = alternative.optimized_schema
            converted = lax(schema, case.body, schema)
            if not _differs(converted, case.body) or not make_validator(schema, validator_cls).is_valid(converted):
                return False
        else:
            container = case.operation.get_parameter_set(location)
            values = case.get_container(location)
            if not container or not isinstance(values, dict):
                return False
            # What the server reads: text (a query's 0 arrives as "0", its True as "true").
            sent = {name: value if isinstance(value, str) else json.dumps(value) for name, value in values.items()}
            converted = lax(container.schema, sent, container.schema)
            if not _differs(converted, sent) or not container.get_strict_validator().is_valid(plain_str_values(converted)):
                return False
    return True


_RESET = re.compile(r"DELETE (/api/v1/pipelines/[^/?]+/(schedule|state))")
_RESET_VALUES = {"schedule": ("schedule", "next_run_at"), "state": ("watermark",)}


def is_settings_reset(failure: UseAfterFree, response: Any) -> bool:
    match = _RESET.fullmatch(failure.free)
    if match is None or failure.usage != f"GET {match.group(1)}" or response.status_code != 200:
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and all(body.get(key, "") is None for key in _RESET_VALUES[match.group(2)])


def _record(failure: Any, case: Any, why: str) -> None:
    """One line per dropped failure in $ETL_ST_DROPPED, which the test prints."""
    path = os.environ.get("ETL_ST_DROPPED")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"check": type(failure).__name__, "operation": case.operation.label, "why": why},
                                 default=repr) + "\n")


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    if isinstance(failure, AcceptedNegativeData) and only_lax_coercions(case):
        sent = {"body": case.body} if case.meta.is_negative_at(ParameterLocation.BODY) else {}
        sent.update({"query": case.query} if case.meta.is_negative_at(ParameterLocation.QUERY) else {})
        _record(failure, case, f"only lax conversions in {json.dumps(sent, default=repr)[:300]}")
        return False
    if isinstance(failure, UseAfterFree) and is_settings_reset(failure, response):
        _record(failure, case, f"{failure.free} reset it, {failure.usage} shows the reset value")
        return False
    return True
