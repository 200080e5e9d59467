"""Every error is RFC 9457 problem+json: FastAPI's own, ours, oversized bodies and crashes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from stagecast.app import create_app
from stagecast.config import Settings
from stagecast.db.engine import Database
from tests.conftest import make_settings
from tests.factories import PASSWORD, register, unique_name

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance", "request_id"}
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_problem(response: httpx.Response, status: int, code: str, path: str) -> dict[str, Any]:
    """Check the problem+json shape and return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem.keys() >= PROBLEM_KEYS, problem
    assert problem["type"] == f"urn:stagecast:problem:{code.lower().replace('_', '-')}"
    assert problem["status"] == status
    assert problem["code"] == code
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    assert problem["instance"] == path
    assert problem["request_id"] == response.headers.get("x-request-id")
    return problem


def padded_registration(name: str, size: int) -> bytes:
    """A valid registration body, padded with JSON whitespace to `size` bytes."""
    body = json.dumps({"username": name, "email": f"{name}@example.com", "password": PASSWORD})
    assert len(body) < size
    return (body + " " * (size - len(body))).encode()


async def test_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/no-such-thing", "/no-such-thing"):
        response = await client.get(path)
        problem = assert_problem(response, 404, "NOT_FOUND", path)
        assert problem["title"] == "Resource not found"


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/auth/login")
    problem = assert_problem(response, 405, "METHOD_NOT_ALLOWED", "/api/v1/auth/login")
    assert "DELETE" in problem["detail"]
    assert response.headers["allow"] == "POST"


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        content=b'{"username": "broken", "email": ',
        headers={"Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400, "MALFORMED_REQUEST", "/api/v1/auth/register")
    assert "errors" not in problem


async def test_wrong_types_are_a_422_problem_with_field_errors(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": 123, "email": ["not", "an", "email"], "password": None},
    )
    problem = assert_problem(response, 422, "VALIDATION_ERROR", "/api/v1/auth/register")
    errors = problem["errors"]
    assert {e["field"] for e in errors} == {"username", "email", "password"}
    for error in errors:
        assert set(error) == {"field", "in", "message", "type"}
        assert error["in"] == "body"
        assert isinstance(error["message"], str)
        assert error["message"]
    by_field = {e["field"]: e for e in errors}
    assert by_field["username"]["type"] == "string_type"
    assert by_field["password"]["type"] == "string_type"


async def test_query_parameter_errors_name_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/streams", params={"limit": "lots"})
    problem = assert_problem(response, 422, "VALIDATION_ERROR", "/api/v1/streams")
    assert [(e["field"], e["in"], e["type"]) for e in problem["errors"]] == [
        ("limit", "query", "int_parsing")
    ]


async def test_unknown_fields_are_a_422_and_nothing_is_created(
    client: httpx.AsyncClient,
) -> None:
    name = unique_name()
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "role": "admin",
        },
    )
    problem = assert_problem(response, 422, "VALIDATION_ERROR", "/api/v1/auth/register")
    assert [(e["field"], e["in"], e["type"]) for e in problem["errors"]] == [
        ("role", "body", "extra_forbidden")
    ]
    account = await register(client, username=name)
    assert account.username == name


@pytest.fixture
def small_body_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, max_body_bytes=2048)


@pytest.fixture
async def small_body_client(
    small_body_settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(small_body_settings, database=database)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        yield http


async def _assert_nothing_was_created(client: httpx.AsyncClient, name: str) -> None:
    login = await client.post(
        "/api/v1/auth/login", json={"email": f"{name}@example.com", "password": PASSWORD}
    )
    assert login.status_code == 401
    assert login.json()["code"] == "INVALID_CREDENTIALS"
    account = await register(client, username=name)
    assert account.email == f"{name}@example.com"


async def test_body_over_the_limit_by_content_length_is_a_413(
    small_body_client: httpx.AsyncClient,
) -> None:
    name = unique_name()
    body = padded_registration(name, 2049)
    # The same body under the limit would be a valid registration.
    assert json.loads(body)["username"] == name
    response = await small_body_client.post(
        "/api/v1/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.request.headers["content-length"] == "2049"
    problem = assert_problem(response, 413, "PAYLOAD_TOO_LARGE", "/api/v1/auth/register")
    assert "2048" in problem["detail"]
    await _assert_nothing_was_created(small_body_client, name)


async def test_body_at_the_limit_is_accepted(small_body_client: httpx.AsyncClient) -> None:
    name = unique_name()
    response = await small_body_client.post(
        "/api/v1/auth/register",
        content=padded_registration(name, 2048),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["user"]["username"] == name


async def test_streamed_body_over_the_limit_is_a_413(
    small_body_client: httpx.AsyncClient,
) -> None:
    name = unique_name()
    body = padded_registration(name, 4096)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    response = await small_body_client.post(
        "/api/v1/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    await _assert_nothing_was_created(small_body_client, name)
    problem = assert_problem(response, 413, "PAYLOAD_TOO_LARGE", "/api/v1/auth/register")
    assert "2048" in problem["detail"]


async def test_unexpected_exception_is_a_generic_500(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = create_app(make_settings(tmp_path, database_url), database=database)

    async def explode() -> None:
        raise RuntimeError("secret-detail-xyz")

    app.add_api_route("/test-only/explode", explode, methods=["GET"])
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://testserver",
        ) as http,
    ):
        response = await http.get("/test-only/explode", headers={"X-Request-ID": "crash-12345"})
        # The app still serves after the crash.
        health = await http.get("/api/v1/health")
    assert "secret-detail-xyz" not in response.text
    assert "RuntimeError" not in response.text
    problem = assert_problem(response, 500, "INTERNAL_ERROR", "/test-only/explode")
    assert problem["request_id"] == "crash-12345"
    assert problem["title"] == "Internal server error"
    assert health.status_code == 200


@pytest.mark.parametrize(
    "request_id",
    ["abcdef12", "req-123_ABC.xyz", "0123456789abcdef0123456789abcdef", "a" * 128],
)
async def test_well_formed_request_id_is_echoed(client: httpx.AsyncClient, request_id: str) -> None:
    ok = await client.get("/api/v1/health", headers={"X-Request-ID": request_id})
    assert ok.status_code == 200
    assert ok.headers["x-request-id"] == request_id
    missing = await client.get("/api/v1/missing", headers={"X-Request-ID": request_id})
    problem = assert_problem(missing, 404, "NOT_FOUND", "/api/v1/missing")
    assert problem["request_id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["has spaces in it", "a" * 129, "short", "semi;colon-123", 'quote"d-12345', "ünicode-12345"],
)
async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient, request_id: str) -> None:
    headers = {b"X-Request-ID": request_id.encode()}
    ok = await client.get("/api/v1/health", headers=headers)
    assert ok.status_code == 200
    assert GENERATED_ID.match(ok.headers["x-request-id"])
    missing = await client.get("/api/v1/missing", headers=headers)
    problem = assert_problem(missing, 404, "NOT_FOUND", "/api/v1/missing")
    assert GENERATED_ID.match(problem["request_id"])
    assert problem["request_id"] != ok.headers["x-request-id"]


async def test_each_request_without_an_id_gets_a_new_one(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/api/v1/health")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(GENERATED_ID.match(i) for i in ids)


async def test_problems_carry_the_seeds_message_beside_detail(client: httpx.AsyncClient) -> None:
    """Seed 000 and 002 clients read `message`; it is the same sentence as `detail`."""
    for answer in (
        await client.get("/api/v1/no-such-route"),
        await client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "x"}),
        await client.post("/api/v1/auth/register", json={}),
    ):
        problem = answer.json()
        assert problem["message"] == problem["detail"], problem
        assert problem["code"]
