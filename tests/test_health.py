"""Health, readiness and metrics endpoints."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from stagecast.app import create_app
from stagecast.config import MoneySettings, Settings
from stagecast.db import migrate
from stagecast.db.engine import Database
from stagecast.runtime import Runtime
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, fresh_database_url, make_settings
from tests.factories import register

EXPECTED_DIALECT = "postgresql" if TEST_DATABASE_URL else "sqlite"


@asynccontextmanager
async def serve(
    settings: Settings, database: Database | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, database=database)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        yield app, http


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    """stagecast_http_requests_total samples by (method, route, status)."""
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stagecast_http_requests_total":
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] = sample.value
    return counts


@pytest.mark.parametrize("path", ["/api/v1/health", "/healthz", "/health"])
async def test_liveness_endpoints_answer_ok(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


@pytest.fixture
async def health_client(tmp_path: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app on its own engine (no open test transaction): the health checks only read."""
    async with serve(make_settings(tmp_path, database_url)) as (_, http):
        yield http


def assert_full_report(report: dict[str, Any]) -> None:
    checks: dict[str, Any] = report["checks"]
    expected = {"database", "disk", "ffmpeg"} | ({"redis"} if TEST_REDIS_URL else set())
    assert set(checks) == expected
    for check in checks.values():
        assert check["status"] in {"ok", "degraded", "down"}
        assert isinstance(check["details"], dict)
    all_ok = all(c["status"] == "ok" for c in checks.values())
    assert report["status"] == ("healthy" if all_ok else "degraded")

    database = checks["database"]
    assert database["status"] == "ok", database
    assert database["details"]["dialect"] == EXPECTED_DIALECT
    assert database["details"]["revision"] == database["details"]["head"]
    assert database["details"]["head"] == migrate.head_revision()
    assert database["details"]["latency_ms"] >= 0
    assert checks["disk"]["details"]["free_bytes"] > 0
    if TEST_REDIS_URL:
        assert checks["redis"]["status"] == "ok"
    assert report["config"] == {
        "environment": "test",
        "database": EXPECTED_DIALECT,
        "redis_configured": TEST_REDIS_URL is not None,
        "media_store": "local",
        "rate_limiting": True,
        "access_token_ttl_s": 900,
        # Seed 003's keys: the test settings use the sandbox payouts and no scheduled jobs.
        "jwt_secret_set": True,
        "jwt_key_source": "data_dir",
        "stripe_connect_enabled": False,
        "platform_fee_rate": 0.2,
        "transfer_retry_enabled": False,
    }
    assert "T" in report["timestamp"]


async def test_deep_health_reports_every_check(health_client: httpx.AsyncClient) -> None:
    response = await health_client.get("/api/v1/health/deep")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert_full_report(response.json())


async def test_deep_health_has_seed_003s_config_block(tmp_path: Path, database_url: str) -> None:
    # Seed 003's example: a 10 % platform fee, failed transfers retried.
    settings = make_settings(
        tmp_path, database_url, money=MoneySettings(platform_fee_percent=10, jobs_enabled=True)
    )
    async with serve(settings) as (_, http):
        response = await http.get("/api/v1/health/deep")
    config = response.json()["config"]
    assert config["jwt_secret_set"] is True
    assert config["stripe_connect_enabled"] is False
    assert config["platform_fee_rate"] == 0.10
    assert config["transfer_retry_enabled"] is True


async def test_health_checks_do_not_wait_for_open_write_transactions(
    client: httpx.AsyncClient,
) -> None:
    # `client`'s database holds a write transaction open for the whole test, as any
    # request writing to the database does for a moment. A probe only reads.
    deep = await client.get("/api/v1/health/deep")
    ready = await client.get("/readyz")
    assert deep.json()["checks"]["database"]["status"] == "ok", deep.json()["checks"]
    assert deep.status_code == 200
    assert_full_report(deep.json())
    assert ready.status_code == 200, ready.json()
    assert ready.json() == {"status": "ready"}


async def test_deep_health_is_503_when_the_disk_is_nearly_full(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, disk_unhealthy_bytes=10**18)
    async with serve(settings) as (_, http):
        response = await http.get("/api/v1/health/deep")
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "unhealthy"
    assert report["checks"]["disk"]["status"] == "down"
    assert report["checks"]["database"]["status"] == "ok"


async def test_deep_health_is_degraded_when_disk_runs_low(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, disk_degraded_bytes=10**18, disk_unhealthy_bytes=0
    )
    async with serve(settings) as (_, http):
        response = await http.get("/api/v1/health/deep")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "degraded"
    assert report["checks"]["disk"]["status"] == "degraded"


async def test_deep_health_without_ffmpeg_is_degraded(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, ffmpeg_path="no-such-ffmpeg-binary")
    async with serve(settings) as (_, http):
        response = await http.get("/api/v1/health/deep")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "degraded"
    assert report["checks"]["ffmpeg"] == {
        "status": "degraded",
        "details": {"error": "ffmpeg not found"},
    }


async def test_unreachable_redis_degrades_but_does_not_stop(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, redis_url="redis://127.0.0.1:1/0")
    async with serve(settings) as (_, http):
        deep = await http.get("/api/v1/health/deep")
        ready = await http.get("/readyz")
    assert deep.status_code == 200
    assert deep.json()["status"] == "degraded"
    assert deep.json()["checks"]["redis"]["status"] == "degraded"
    assert deep.json()["checks"]["database"]["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert "redis" in ready.json()["details"]


async def test_readiness_is_ready(health_client: httpx.AsyncClient) -> None:
    response = await health_client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readiness_is_not_ready_while_shutting_down(
    tmp_path: Path, database_url: str
) -> None:
    async with serve(make_settings(tmp_path, database_url)) as (app, http):
        runtime: Runtime = app.state.runtime
        runtime.shutting_down = True
        try:
            response = await http.get("/readyz")
        finally:
            runtime.shutting_down = False
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "details": {"reason": "shutting down"}}


@pytest.fixture
def old_database_url(tmp_path: Path) -> str:
    """A database migrated only to the first revision."""
    url = fresh_database_url(tmp_path, "oldrev")
    migrate.upgrade(url, "0001_accounts")
    return url


async def test_readiness_is_not_ready_with_pending_migrations(
    tmp_path: Path, old_database_url: str
) -> None:
    settings = make_settings(tmp_path, old_database_url)
    async with serve(settings) as (_, http):
        ready = await http.get("/readyz")
        deep = await http.get("/api/v1/health/deep")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["details"]["reason"] == "database migrations pending"
    assert body["details"]["revision"] == "0001_accounts"
    assert body["details"]["head"] == migrate.head_revision()
    assert deep.status_code == 200
    assert deep.json()["status"] == "degraded"
    assert deep.json()["checks"]["database"]["status"] == "degraded"


async def test_metrics_label_routes_by_template(client: httpx.AsyncClient) -> None:
    user_id = str(uuid.uuid4())
    missing = await client.get(f"/api/v1/users/{user_id}")
    assert missing.status_code == 404
    account = await register(client)
    found = await client.get(f"/api/v1/users/{account.id}")
    assert found.status_code == 200
    await client.get("/api/v1/definitely-not-a-route/123")
    # Ids in a router's prefix and in the route itself, and a method the route refuses.
    channel_id, banned_id = str(uuid.uuid4()), str(uuid.uuid4())
    moderators = await client.get(f"/api/v1/channels/{channel_id}/moderators")
    assert moderators.status_code == 404
    unban = await client.delete(
        f"/api/v1/channels/{channel_id}/bans/{banned_id}", headers=account.headers
    )
    assert unban.status_code == 404
    refused = await client.put(f"/api/v1/users/{user_id}")
    assert refused.status_code == 405

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "version=" in response.headers["content-type"]
    counts = request_counts(response.text)
    assert counts[("GET", "/api/v1/users/{user_id}", "404")] == 1
    assert counts[("GET", "/api/v1/users/{user_id}", "200")] == 1
    assert counts[("POST", "/api/v1/auth/register", "201")] == 1
    assert counts[("GET", "<unmatched>", "404")] == 1
    assert counts[("GET", "/api/v1/channels/{channel_id}/moderators", "404")] == 1
    assert counts[("DELETE", "/api/v1/channels/{channel_id}/bans/{user_id}", "404")] == 1
    assert counts[("PUT", "/api/v1/users/{user_id}", "405")] == 1
    assert user_id not in response.text
    assert channel_id not in response.text
    assert banned_id not in response.text
    assert account.id not in response.text
    assert "definitely-not-a-route" not in response.text
    assert "stagecast_http_request_duration_seconds_bucket" in response.text
    assert "stagecast_http_requests_in_flight" in response.text


async def test_metrics_route_label_when_the_id_equals_a_path_segment(
    client: httpx.AsyncClient,
) -> None:
    # A user reference that happens to equal a fixed segment of the path.
    for ref in ("users", "v1"):
        assert (await client.get(f"/api/v1/users/{ref}")).status_code == 404
    counts = request_counts((await client.get("/metrics")).text)
    assert counts.get(("GET", "/api/v1/users/{user_id}", "404")) == 2, counts


async def test_metrics_route_label_of_a_catch_all_path(client: httpx.AsyncClient) -> None:
    # `{path:path}` swallows any number of segments: none of them may become a label.
    stream_id = str(uuid.uuid4())
    for path in ("master.m3u8", "source/index.m3u8", "a/b/c/d/e/f.m4s"):
        await client.get(f"/hls/{stream_id}/{path}")
        await client.get(f"/livestream/{stream_id}/{path}")
    text = (await client.get("/metrics")).text
    counts = request_counts(text)
    routes = {route for _, route, _ in counts}
    assert "/hls/{stream_id}/{path}" in routes
    assert "/livestream/{stream_id}/{path}" in routes
    assert not [r for r in routes if r.startswith(("/hls", "/livestream")) and r.count("/") != 3]
    assert stream_id not in text
    assert "a/b/c" not in text


async def test_metrics_token_is_required_when_set(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, metrics_token="metrics-s3cret")
    async with serve(settings, database) as (_, http):
        anonymous = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await http.get("/metrics", headers={"Authorization": "Bearer metrics-s3cret"})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.json()["code"] == "AUTHENTICATION_REQUIRED"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "stagecast_http_requests_total" not in anonymous.text
    assert wrong.status_code == 401
    assert right.status_code == 200
    counts = request_counts(right.text)
    assert counts[("GET", "/metrics", "401")] == 2
