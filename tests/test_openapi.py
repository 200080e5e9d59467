"""The OpenAPI document: one Problem schema for every error, no FastAPI validation shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}

ACCOUNTS_OPERATIONS = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("get", "/api/v1/sessions"),
    ("post", "/api/v1/sessions/logout"),
    ("post", "/api/v1/sessions/logout-all"),
    ("post", "/api/v1/sessions/refresh"),
    ("post", "/api/v1/developer/api-keys"),
    ("get", "/api/v1/developer/api-keys"),
    ("delete", "/api/v1/developer/api-keys/{key_id}"),
    ("get", "/api/v1/users/{user_id}"),
    ("patch", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/users/{user_id}/preferences"),
    ("patch", "/api/v1/users/{user_id}/preferences"),
    ("get", "/api/v1/admin/users"),
    ("patch", "/api/v1/admin/users/{user_id}"),
    ("get", "/.well-known/jwks.json"),
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_problem_schema_replaces_fastapis_validation_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    assert problem["type"] == "object"
    assert set(problem["required"]) == {"type", "title", "status", "code"}
    assert {"type", "title", "status", "detail", "code", "instance", "request_id", "errors"} <= (
        problem["properties"].keys()
    )
    error_fields = problem["properties"]["errors"]["items"]["properties"]
    assert set(error_fields) == {"field", "in", "message", "type"}
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    # Every reference in the document points at a schema that exists.
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_document_is_stable_between_requests(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    again = (await client.get("/openapi.json")).json()
    assert again == document


def test_every_api_operation_documents_429_and_500_as_problems(
    document: dict[str, Any],
) -> None:
    # Health checks are not rate limited (seed 003), so they document no 429.
    api_operations = [
        (method, path, op)
        for method, path, op in operations(document)
        if path.startswith("/api/v1/") and not path.startswith("/api/v1/health")
    ]
    assert len(api_operations) > 50
    for method, path, operation in api_operations:
        responses = operation["responses"]
        for status in ("429", "500"):
            assert status in responses, (method, path, status)
            assert responses[status]["content"] == PROBLEM_CONTENT, (method, path, status)
            assert responses[status]["description"]


def test_problem_responses_are_never_plain_json(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                if content.get("schema", {}).get("$ref") == PROBLEM_REF:
                    assert media_type == "application/problem+json", (method, path, status)
            if status.startswith(("4", "5")) and "content" in response:
                assert response["content"] == PROBLEM_CONTENT, (method, path, status)


def _takes_input(dependant: Dependant) -> bool:
    """Whether a route (or any of its dependencies) reads a parameter or a body."""
    own = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
    )
    return any(own) or any(_takes_input(sub) for sub in dependant.dependencies)


def api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes as mounted (full path, router dependencies included)."""
    iterate = getattr(routing, "iter_route_contexts", None)
    if iterate is None:  # FastAPI versions that copy included routes into app.routes
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iterate(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def assert_documents_422(operation: dict[str, Any], where: tuple[str, str]) -> None:
    assert "422" in operation["responses"], where
    response = operation["responses"]["422"]
    assert response["content"] == PROBLEM_CONTENT, where
    assert response["description"] == "Request validation failed", where


def test_operations_taking_input_document_422_as_a_problem(
    app: FastAPI, document: dict[str, Any]
) -> None:
    with_input = 0
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            where = (method, route.path_format)
            operation = document["paths"][route.path_format][method.lower()]
            if _takes_input(route.dependant) or route.body_field is not None:
                with_input += 1
                assert_documents_422(operation, where)
            else:
                assert "422" not in operation["responses"], where
    assert with_input > 40


def test_operations_with_documented_input_document_422(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if operation.get("parameters") or "requestBody" in operation:
            assert_documents_422(operation, (method, path))


def test_body_and_param_operations_are_among_those_with_422(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert paths["/api/v1/auth/register"]["post"]["responses"]["422"]["content"] == (
        PROBLEM_CONTENT
    )
    assert paths["/api/v1/users/{user_id}"]["get"]["responses"]["422"]["content"] == (
        PROBLEM_CONTENT
    )
    assert paths["/api/v1/sessions"]["get"]["responses"]["422"]["content"] == PROBLEM_CONTENT
    assert "422" not in paths["/api/v1/auth/me"]["get"]["responses"]


def test_all_accounts_routes_are_documented(document: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in operations(document)}
    missing = ACCOUNTS_OPERATIONS - documented
    assert not missing, sorted(missing)


def test_health_routes_are_documented_once(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path in ("/api/v1/health", "/api/v1/health/deep", "/healthz", "/readyz", "/metrics"):
        assert "get" in paths[path], path
    # The deprecated root alias still answers but is left out of the document.
    assert "/health" not in paths
    assert "/health/deep" not in paths
    assert paths["/metrics"]["get"]["responses"]["401"]["content"] == PROBLEM_CONTENT


async def test_docs_page_serves_the_document(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    assert (await client.get("/redoc")).status_code == 404


async def test_unlimited_routes_do_not_document_429(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/health", "/.well-known/jwks.json"):
        assert "429" not in paths[path]["get"]["responses"], path
    assert "429" in paths["/api/v1/auth/login"]["post"]["responses"]
