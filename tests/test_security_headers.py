"""Security headers on every response, HSTS, Global Privacy Control and CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import ValidationError

from stagecast.app import create_app
from stagecast.config import Settings
from stagecast.db.engine import Database
from tests.conftest import make_settings
from tests.factories import PASSWORD

HSTS = "strict-transport-security"


@asynccontextmanager
async def serve(
    settings: Settings,
    database: Database,
    *,
    base_url: str = "http://testserver",
    raise_app_exceptions: bool = True,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, database=database)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions),
            base_url=base_url,
        ) as http,
    ):
        yield app, http


def directives(csp: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for part in csp.split(";"):
        name, _, value = part.strip().partition(" ")
        parsed[name] = value
    return parsed


def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    csp = directives(headers["content-security-policy"])
    assert csp["default-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert csp["script-src"] == "'self'"  # the API's policy allows no inline or CDN script
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    permissions = {p.strip() for p in headers["permissions-policy"].split(",")}
    assert "geolocation=()" in permissions
    assert "camera=(self)" in permissions
    assert headers["cross-origin-opener-policy"] == "same-origin"
    # Each header appears once, even where a route or handler set one too.
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert len(headers.get_list(name)) == 1


async def test_api_responses_carry_the_security_headers(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/health", "/openapi.json", "/healthz", "/.well-known/jwks.json"):
        response = await client.get(path)
        assert response.status_code == 200
        assert_security_headers(response)
        assert HSTS not in response.headers
        assert "gpc" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/nothing-here", None, 404),
        ("DELETE", "/api/v1/auth/me", None, 405),
        ("POST", "/api/v1/auth/register", {"username": 1}, 422),
        ("GET", "/api/v1/auth/me", None, 401),
        ("POST", "/api/v1/auth/login", {"email": "x@example.com", "password": "Nope-123x"}, 401),
    ],
)
async def test_error_responses_carry_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, body: object, status: int
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert_security_headers(response)


async def test_oversized_body_refusal_carries_the_security_headers(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b"{" + b" " * settings.max_body_bytes + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert_security_headers(response)
    assert response.headers["x-request-id"] == response.json()["request_id"]


async def test_unexpected_error_response_carries_the_security_headers(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url)

    async def explode() -> None:
        raise RuntimeError("boom")

    async with serve(settings, database, raise_app_exceptions=False) as (app, http):
        app.add_api_route("/test-only/explode", explode, methods=["GET"])
        response = await http.get("/test-only/explode")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert_security_headers(response)


async def test_docs_get_the_docs_policy(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    csp = directives(docs.headers["content-security-policy"])
    # Swagger UI is served from the build: the docs may load nothing from another host.
    for directive in ("default-src", "script-src", "style-src", "img-src"):
        sources = csp[directive].split()
        assert not [s for s in sources if ":" in s and s != "data:"], (directive, sources)
    assert "'unsafe-inline'" in csp["script-src"].split()  # Swagger UI's start script
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert docs.headers["x-frame-options"] == "DENY"
    # The document the docs load keeps the strict policy.
    spec = await client.get("/openapi.json")
    assert (
        "'unsafe-inline'" not in directives(spec.headers["content-security-policy"])["script-src"]
    )
    # Only /docs itself: a channel page whose slug starts with "docs" keeps the strict policy.
    other = await client.get("/docsfan")
    assert (
        "'unsafe-inline'" not in directives(other.headers["content-security-policy"])["script-src"]
    )


def assert_hsts(response: httpx.Response) -> None:
    value = response.headers[HSTS]
    parts = [p.strip() for p in value.split(";")]
    max_age = int(parts[0].removeprefix("max-age="))
    assert max_age >= 365 * 24 * 3600
    assert "includeSubDomains" in parts


async def test_no_hsts_over_plain_http_outside_production(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert HSTS not in response.headers


async def test_hsts_in_production_even_over_http(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path, database_url, environment="production", public_url="http://testserver"
    )
    async with serve(settings, database) as (_, http):
        ok = await http.get("/api/v1/health")
        missing = await http.get("/api/v1/missing")
    assert_hsts(ok)
    assert_hsts(missing)
    assert_security_headers(ok)


async def test_hsts_over_https(tmp_path: Path, database_url: str, database: Database) -> None:
    settings = make_settings(tmp_path, database_url)
    async with serve(settings, database, base_url="https://testserver") as (_, http):
        response = await http.get("/api/v1/health")
    assert_hsts(response)


@pytest.mark.parametrize(("sent", "echoed"), [("1", True), ("0", False), (None, False)])
async def test_global_privacy_control(
    client: httpx.AsyncClient, sent: str | None, echoed: bool
) -> None:
    headers = {"Sec-GPC": sent} if sent is not None else {}
    response = await client.get("/api/v1/health", headers=headers)
    assert response.status_code == 200
    if echoed:
        assert response.headers["gpc"] == "1"
    else:
        assert "gpc" not in response.headers


PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, authorization",
}


async def test_cors_allows_configured_origins_only(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, cors_origins=["https://app.example"])
    async with serve(settings, database) as (_, http):
        allowed = await http.options(
            "/api/v1/auth/login", headers={"Origin": "https://app.example", **PREFLIGHT}
        )
        refused = await http.options(
            "/api/v1/auth/login", headers={"Origin": "https://evil.example", **PREFLIGHT}
        )
        simple = await http.post(
            "/api/v1/auth/login",
            json={"email": "nobody@example.com", "password": PASSWORD},
            headers={"Origin": "https://app.example"},
        )
        foreign = await http.post(
            "/api/v1/auth/login",
            json={"email": "nobody@example.com", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")}
    assert "POST" in methods
    allowed_headers = {
        h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")
    }
    assert {"content-type", "authorization"} <= allowed_headers

    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers

    assert simple.status_code == 401
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    exposed = {
        h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-request-id", "retry-after", "x-ratelimit-remaining"} <= exposed
    assert "access-control-allow-origin" not in foreign.headers


async def test_no_cors_headers_without_configured_origins(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/auth/login", headers={"Origin": "https://app.example", **PREFLIGHT}
    )
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code == 405


def test_production_refuses_a_wildcard_cors_origin(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        make_settings(tmp_path, database_url, environment="production", cors_origins=["*"])
    # Outside production the wildcard is a development convenience and is accepted.
    settings = make_settings(tmp_path, database_url, environment="development", cors_origins=["*"])
    assert settings.cors_origins == ["*"]
    # And production accepts explicit origins.
    explicit = make_settings(
        tmp_path,
        database_url,
        environment="production",
        cors_origins=["https://app.example"],
        public_url="https://live.example",
    )
    assert explicit.cors_origins == ["https://app.example"]
