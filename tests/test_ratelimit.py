"""Rate limits: auth attempts per IP, general limits per user or IP, headers, Redis sharing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from stagecast.app import create_app
from stagecast.config import RateLimits, Settings
from stagecast.db.engine import Database
from tests.conftest import TEST_REDIS_URL, make_settings
from tests.factories import PASSWORD, register, unique_name

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
# Windows are aligned to the clock; tests that check exact remaining counts over several
# requests use hour windows so that a window turning over mid-test is vanishingly rare.


@asynccontextmanager
async def serve(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    app = create_app(settings, database=database)
    async with LifespanManager(app):
        yield app


def client_for(app: FastAPI, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
        base_url="http://testserver",
    )


async def bad_login(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "Wrong-Pass-99"}
    )


def limit_headers(response: httpx.Response, window_s: int = 3600) -> tuple[int, int]:
    """(limit, remaining), after checking the reset time is an epoch second in the window."""
    reset = int(response.headers["x-ratelimit-reset"])
    assert time.time() - 1 <= reset <= time.time() + window_s + 2
    return int(response.headers["x-ratelimit-limit"]), int(
        response.headers["x-ratelimit-remaining"]
    )


def assert_rate_limited(response: httpx.Response, limit: int, window_s: int = 3600) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "RATE_LIMIT_EXCEEDED"
    assert problem["type"] == "urn:stagecast:problem:rate-limit-exceeded"
    assert problem["status"] == 429
    assert problem["request_id"] == response.headers["x-request-id"]
    assert 1 <= int(response.headers["retry-after"]) <= window_s + 1
    assert limit_headers(response, window_s) == (limit, 0)


def assert_no_limit_headers(response: httpx.Response) -> None:
    assert not any(h in response.headers for h in RATE_HEADERS), dict(response.headers)


async def test_fourth_login_attempt_in_the_window_is_refused(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    # An hour window: with a minute one, a minute turning over mid-test (1 run in 60) would
    # shift the sliding-window counts this test asserts exactly.
    settings = make_settings(tmp_path, database_url, rate_limits=RateLimits(auth="3/hour"))
    async with serve(settings, database) as app, client_for(app) as http:
        attempts = [await bad_login(http) for _ in range(3)]
        refused = await bad_login(http)
        async with client_for(app, "10.0.0.9") as elsewhere:
            other_ip = await bad_login(elsewhere)
    assert [r.status_code for r in attempts] == [401, 401, 401]
    assert [limit_headers(r, 3600) for r in attempts] == [(3, 2), (3, 1), (3, 0)]
    assert_rate_limited(refused, 3, window_s=3600)
    assert "auth" in refused.json()["detail"]
    # The limit is per IP: another address still gets to try.
    assert other_ip.status_code == 401
    assert limit_headers(other_ip, 3600) == (3, 2)


async def test_register_and_login_share_the_auth_limit(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, rate_limits=RateLimits(auth="3/hour"))
    async with serve(settings, database) as app, client_for(app) as http:
        first = await register(http)
        second = await register(http)
        login = await http.post(
            "/api/v1/auth/login", json={"email": first.email, "password": PASSWORD}
        )
        name = unique_name()
        refused = await http.post(
            "/api/v1/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        # The refused registration created nothing; the refresh route shares the limit too.
        refresh = await http.post(
            "/api/v1/auth/refresh", json={"refresh_token": second.refresh_token}
        )
        async with client_for(app, "10.0.0.10") as elsewhere:
            later = await elsewhere.post(
                "/api/v1/auth/register",
                json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
            )
    assert login.status_code == 200
    assert limit_headers(login) == (3, 0)
    assert_rate_limited(refused, 3)
    assert_rate_limited(refresh, 3)
    assert later.status_code == 201, later.text


async def test_successful_responses_carry_the_tightest_limit(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        rate_limits=RateLimits(auth="3/hour", anonymous="50/hour", authenticated="40/hour"),
    )
    async with serve(settings, database) as app, client_for(app) as http:
        name = unique_name()
        created = await http.post(
            "/api/v1/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        token = created.json()["access_token"]
        me = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        public = await http.get(f"/api/v1/users/{name}")
    assert created.status_code == 201
    assert limit_headers(created) == (3, 2)  # the auth limit, tighter than the general one
    assert me.status_code == 200
    assert limit_headers(me) == (40, 39)
    assert public.status_code == 200
    assert limit_headers(public) == (50, 48)  # the registration counted for this IP too


async def test_general_limits_are_per_user_when_signed_in_and_per_ip_otherwise(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        rate_limits=RateLimits(anonymous="2/hour", authenticated="5/hour"),
    )
    async with serve(settings, database) as app, client_for(app) as http:
        alice = await register(http)  # anonymous hit 1
        bob = await register(http)  # anonymous hit 2
        anonymous = await http.get(f"/api/v1/users/{alice.id}")
        forged = await http.get("/api/v1/auth/me", headers={"Authorization": "Bearer forged"})
        alice_calls = [await http.get("/api/v1/auth/me", headers=alice.headers) for _ in range(5)]
        alice_over = await http.get("/api/v1/auth/me", headers=alice.headers)
        bob_call = await http.get("/api/v1/auth/me", headers=bob.headers)
        async with client_for(app, "10.0.0.11") as elsewhere:
            other_ip = await elsewhere.get(f"/api/v1/users/{alice.id}")
    # The IP's anonymous budget is spent by the two registrations.
    assert_rate_limited(anonymous, 2)
    # A token that does not verify does not buy a fresh bucket: it counts as anonymous.
    assert_rate_limited(forged, 2)
    # Signed-in users have their own budget, per user, whatever the IP.
    assert [r.status_code for r in alice_calls] == [200] * 5
    assert [limit_headers(r) for r in alice_calls] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    assert_rate_limited(alice_over, 5)
    assert bob_call.status_code == 200
    assert limit_headers(bob_call) == (5, 4)
    assert other_ip.status_code == 200
    assert limit_headers(other_ip) == (2, 1)


async def test_disabled_rate_limiting_lets_everything_through(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        rate_limits=RateLimits(
            enabled=False, auth="1/minute", anonymous="1/minute", authenticated="1/minute"
        ),
    )
    async with serve(settings, database) as app, client_for(app) as http:
        logins = [await bad_login(http) for _ in range(4)]
        account = await register(http)
        reads = [await http.get(f"/api/v1/users/{account.id}") for _ in range(4)]
    assert [r.status_code for r in logins] == [401] * 4
    assert [r.status_code for r in reads] == [200] * 4
    for response in (*logins, *reads):
        assert_no_limit_headers(response)
    assert app.state.runtime.limiter.enabled is False


async def test_health_endpoints_are_not_limited(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        rate_limits=RateLimits(auth="1/hour", anonymous="1/hour", authenticated="1/hour"),
    )
    paths = ["/api/v1/health", "/healthz", "/health", "/metrics", "/.well-known/jwks.json"]
    async with serve(settings, database) as app, client_for(app) as http:
        responses = [await http.get(path) for path in paths for _ in range(3)]
        # Probes spent nothing: the one anonymous request of this hour is still available.
        first_api = await http.get(f"/api/v1/users/{uuid.uuid4()}")
        second_api = await http.get(f"/api/v1/users/{uuid.uuid4()}")
    for response in responses:
        assert response.status_code == 200, (response.request.url, response.text)
        assert_no_limit_headers(response)
    assert first_api.status_code == 404
    assert limit_headers(first_api) == (1, 0)
    assert_rate_limited(second_api, 1)


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs STAGECAST_TEST_REDIS_URL")
async def test_apps_sharing_redis_share_the_counters(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    prefix = f"stagecast-test:{uuid.uuid4().hex[:12]}"
    limits = RateLimits(auth="3/hour")
    settings_a = make_settings(tmp_path / "a", database_url, rate_limits=limits, key_prefix=prefix)
    settings_b = make_settings(tmp_path / "b", database_url, rate_limits=limits, key_prefix=prefix)
    settings_c = make_settings(tmp_path / "c", database_url, rate_limits=limits)
    assert settings_a.redis_url == settings_b.redis_url == TEST_REDIS_URL
    assert settings_c.key_prefix != prefix
    async with (
        serve(settings_a, database) as app_a,
        serve(settings_b, database) as app_b,
        serve(settings_c, database) as app_c,
        client_for(app_a) as on_a,
        client_for(app_b) as on_b,
        client_for(app_c) as on_c,
    ):
        first = await bad_login(on_a)
        second = await bad_login(on_a)
        third = await bad_login(on_b)
        fourth_on_a = await bad_login(on_a)
        fourth_on_b = await bad_login(on_b)
        other_install = await bad_login(on_c)
        await app_a.state.runtime.limiter.reset()
    assert [limit_headers(r) for r in (first, second)] == [(3, 2), (3, 1)]
    assert third.status_code == 401
    assert limit_headers(third) == (3, 0)
    assert_rate_limited(fourth_on_a, 3)
    assert_rate_limited(fourth_on_b, 3)
    # Another install (another key prefix) on the same Redis keeps its own counters.
    assert other_install.status_code == 401
    assert limit_headers(other_install) == (3, 2)


async def test_unreachable_redis_fails_open(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        redis_url="redis://127.0.0.1:1/0",
        rate_limits=RateLimits(auth="1/minute", anonymous="1/minute"),
    )
    async with serve(settings, database) as app, client_for(app) as http:
        logins = [await bad_login(http) for _ in range(3)]
        account = await register(http)
        me = await http.get("/api/v1/auth/me", headers=account.headers)
        reads = [await http.get(f"/api/v1/users/{account.id}") for _ in range(3)]
    assert [r.status_code for r in logins] == [401] * 3
    assert me.status_code == 200
    assert me.json()["id"] == account.id
    assert [r.status_code for r in reads] == [200] * 3
    for response in (*logins, me, *reads):
        assert_no_limit_headers(response)
