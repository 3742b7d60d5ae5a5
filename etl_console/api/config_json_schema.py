"""JSON Schema (2020-12) of the pipelines-as-code document, generated from its marshmallow schemas
by apispec (OpenAPI 3.1's schema objects are JSON Schema), so editors validate what the API does."""
from __future__ import annotations

import functools
from typing import Any

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF_PREFIX = "#/components/schemas/"


@functools.lru_cache(maxsize=4)
def document_json_schema(schema_class: type) -> dict[str, Any]:
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    spec = APISpec("etl-console configuration", "1", "3.1.0", plugins=[MarshmallowPlugin()])
    spec.components.schema("ConfigDocument", schema=schema_class)
    definitions = _local_refs(spec.to_dict()["components"]["schemas"])
    root = definitions.pop("ConfigDocument")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "etl-console configuration (etl-console export / plan / apply)",
        **root,
        "$defs": definitions,
    }


def _local_refs(value: Any) -> Any:
    """Components' references as $defs references, and null allowed by a nullable enum too."""
    if isinstance(value, dict):
        value = {key: _local_refs(item) for key, item in value.items()}
        if isinstance(value.get("$ref"), str) and value["$ref"].startswith(_REF_PREFIX):
            value["$ref"] = "#/$defs/" + value["$ref"][len(_REF_PREFIX):]
        if "enum" in value and isinstance(value.get("type"), list) and "null" in value["type"]:
            value["enum"] = [*value["enum"], None] if None not in value["enum"] else value["enum"]
        return value
    if isinstance(value, list):
        return [_local_refs(item) for item in value]
    return value
