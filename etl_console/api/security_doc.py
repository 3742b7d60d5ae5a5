"""The bearer scheme in the OpenAPI document, declared through apispec's own extension points: a
security scheme component, the document-wide requirement, and a plugin that gives every operation
its 401 (and, for writes, 403) answer, or no requirement at all on the public paths."""
from __future__ import annotations

from apispec import BasePlugin

SCHEME = "bearerAuth"
WRITE_METHODS = ("post", "put", "patch", "delete")


def _detail_response(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}},
    }


class BearerAuthPlugin(BasePlugin):
    def __init__(self, public_paths: frozenset[str]) -> None:
        self._public_paths = public_paths

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict):
                continue
            if path in self._public_paths:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", _detail_response("Missing or invalid bearer token"))
            if method in WRITE_METHODS:
                responses.setdefault("403", _detail_response("The token's role is viewer (read only)"))


def spec_kwargs(auth_enabled: bool, public_paths: frozenset[str]) -> dict:
    """What flask-smorest's Api passes to its APISpec: nothing when the service runs without auth."""
    if not auth_enabled:
        return {}
    return {"extra_plugins": [BearerAuthPlugin(public_paths)], "security": [{SCHEME: []}]}


def declare_scheme(api, auth_enabled: bool) -> None:
    if auth_enabled:
        api.spec.components.security_scheme(SCHEME, {"type": "http", "scheme": "bearer"})
