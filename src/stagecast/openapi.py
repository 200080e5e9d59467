"""The OpenAPI document: every operation lists its problem+json error responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from stagecast.admin.maintenance import gated
from stagecast.errors import PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA, problem_responses

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Generate the document once: Problem schema in, FastAPI's own 422 shape out."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = PROBLEM_SCHEMA
    always = problem_responses(500)
    limited = problem_responses(429)
    closed = {
        503: {
            "description": "Maintenance mode is on (`MAINTENANCE`, with `Retry-After`)",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
    }
    for path, path_item in schema.get("paths", {}).items():
        # The API (not health, probes, metrics or keys) is rate limited.
        is_limited = path.startswith("/api/v1/") and not path.startswith("/api/v1/health")
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = problem_responses(422)[422]
            for status, response in (always | limited if is_limited else always).items():
                responses.setdefault(str(status), response)
            if gated(path):
                responses.setdefault("503", closed[503])
            for response in responses.values():
                content = response.get("content", {})
                if "application/json" in content and content["application/json"].get(
                    "schema", {}
                ).get("$ref", "").endswith("/Problem"):
                    content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
    app.openapi_schema = schema
    return schema
