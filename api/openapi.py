"""``/openapi.json``: FastAPI's schema, each dialect's declarations, the control token.

A dialect whose routes read their parameters from the raw signed request (so FastAPI cannot see
them) declares them with a ``declare_openapi(schema)`` hook in its routes module
(api/dialects.py); the control plane and the dashboard take the control token.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from perpsim.api.dialects import DIALECTS, dialect_module

CONTROL_TOKEN = {"type": "http", "scheme": "bearer",
                 "description": "the control token, when the server has one "
                                "(--control-token; docs/security.md)"}
CONTROL_PREFIXES = ("/control", "/ui")


def declare(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every dialect's declarations and the control token's security."""
    for name in DIALECTS:
        hook = getattr(dialect_module(name), "declare_openapi", None)
        if hook is not None:
            schema = hook(schema)
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["ControlToken"] = CONTROL_TOKEN
    for path, operations in schema.get("paths", {}).items():
        if path.startswith(CONTROL_PREFIXES):
            for operation in operations.values():
                operation["security"] = [{}, {"ControlToken": []}]
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the dialects (computed once, then cached by FastAPI)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
