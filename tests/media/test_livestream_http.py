"""Seed 004's HTTP API with its own payloads and curl calls: start/stop bodies, unknown ids,
health, CORS on every `/livestream` answer, and its rate limits."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stagecast.config import RateLimits
from stagecast.db.engine import Database
from tests.conftest import make_settings
from tests.factories import Account, go_live, make_channel, make_stream, register
from tests.test_health import serve

# The seed's examples, as its curl lines send them.
SEED_START = {
    "userId": "user123",
    "action": "start",
    "timestamp": 1704110400,
    "title": "My Live Stream",
    "description": "Live streaming session",
}
SEED_STOP = {"userId": "user123", "action": "stop", "timestamp": 1704110400}
SEED_CORS_METHODS = {"GET", "POST", "HEAD", "OPTIONS"}


async def _owner_and_stream(client: httpx.AsyncClient) -> tuple[Account, dict[str, Any]]:
    owner = await register(client)
    await make_channel(client, owner)
    return owner, await make_stream(client, owner)


async def test_start_checks_action_and_answers_truthfully(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, stream = await _owner_and_stream(client)
    path = f"/livestream/{stream['id']}/start"
    started = await client.post(path, headers=owner.headers, json=SEED_START)
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["status"] == "created_and_started"
    assert body["streamId"] == stream["id"]
    assert body["ingestUrl"] == "rtmp://testserver:1935/live"
    assert body["playbackUrl"] == f"/hls/{stream['id']}/master.m3u8"
    # The seed's title and description are the stream's now.
    shown = (await client.get(f"/api/v1/streams/{stream['id']}")).json()
    assert (shown["title"], shown["description"]) == ("My Live Stream", "Live streaming session")

    await go_live(app, stream["channel"]["slug"])
    again = await client.post(path, headers=owner.headers, json=SEED_START)
    assert again.json()["status"] == "already_exists"


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"action": "stop", "timestamp": 1704110400},
        {"action": "START"},
        {"action": None},
        {"action": 1},
        ["start"],
        "start",
        {"action": "start", "title": ""},
        {"action": "start", "timestamp": "yesterday"},
    ],
)
async def test_start_refuses_a_wrong_body_with_400(client: httpx.AsyncClient, body: Any) -> None:
    owner, stream = await _owner_and_stream(client)
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    response = await client.post(
        f"/livestream/{stream['id']}/start", headers=owner.headers, **kwargs
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "INVALID_REQUEST"
    assert response.headers["access-control-allow-origin"] == "*"
    shown = (await client.get(f"/api/v1/streams/{stream['id']}")).json()
    assert shown["title"] == stream["title"]  # nothing changed


async def test_stop_checks_action_and_answers_truthfully(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, stream = await _owner_and_stream(client)
    path = f"/livestream/{stream['id']}/stop"
    await go_live(app, stream["channel"]["slug"])
    for wrong in ({"action": "start"}, {"userId": "user123"}, None):
        kwargs: dict[str, Any] = {} if wrong is None else {"json": wrong}
        refused = await client.post(path, headers=owner.headers, **kwargs)
        assert refused.status_code == 400
        assert refused.json()["code"] == "INVALID_REQUEST"
    assert (await client.get(f"/api/v1/streams/{stream['id']}")).json()["status"] == "live"

    stopped = await client.post(path, headers=owner.headers, json=SEED_STOP)
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert (await client.get(f"/api/v1/streams/{stream['id']}")).json()["status"] == "ended"
    again = await client.post(path, headers=owner.headers, json=SEED_STOP)
    assert again.json()["status"] == "already_stopped"
    # An ended stream does not start again.
    restart = await client.post(
        f"/livestream/{stream['id']}/start", headers=owner.headers, json=SEED_START
    )
    assert restart.status_code == 409
    assert restart.json()["code"] == "STREAM_ENDED"


async def test_start_and_stop_are_for_the_owner(client: httpx.AsyncClient) -> None:
    _, stream = await _owner_and_stream(client)
    stranger = await register(client)
    for action, body in (("start", SEED_START), ("stop", SEED_STOP)):
        path = f"/livestream/{stream['id']}/{action}"
        assert (await client.post(path, json=body)).status_code == 401
        foreign = await client.post(path, headers=stranger.headers, json=body)
        assert foreign.status_code == 403
    assert (await client.get(f"/api/v1/streams/{stream['id']}")).json()["status"] == "scheduled"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/livestream/stream123/status"),
        ("GET", "/livestream/stream123/debug"),
        ("GET", "/livestream/stream123/stream.m3u8"),
        ("GET", "/livestream/stream123/segment_0.ts"),
        ("HEAD", "/livestream/stream123/stream.m3u8"),
        ("POST", "/livestream/stream123/start"),
        ("POST", "/livestream/stream123/stop"),
    ],
)
async def test_an_unknown_id_is_stream_not_found(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    owner = await register(client)
    body = SEED_START if path.endswith("start") else SEED_STOP
    kwargs: dict[str, Any] = {"json": body} if method == "POST" else {}
    response = await client.request(method, path, headers=owner.headers, **kwargs)
    assert response.status_code == 404, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    if method != "HEAD":
        assert response.json()["code"] == "STREAM_NOT_FOUND"
    # A well-formed id of no stream is the same answer.
    unknown = await client.get(f"/livestream/{uuid.uuid4()}/status")
    assert unknown.json()["code"] == "STREAM_NOT_FOUND"


async def test_health_has_node_style_memory_usage_and_viewers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/livestream/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "healthy"
    memory = health["memoryUsage"]
    assert set(memory) == {"rss", "heapTotal", "heapUsed", "external"}
    own = await asyncio.to_thread(Path("/proc/self/status").read_text)
    current_rss = next(int(line.split()[1]) * 1024 for line in own.splitlines() if "VmRSS" in line)
    peak = next(int(line.split()[1]) * 1024 for line in own.splitlines() if "VmHWM" in line)
    # The current resident size (this process serves the app in tests), not the peak.
    assert 0 < memory["rss"] <= peak
    assert abs(memory["rss"] - current_rss) < 64 * 1024**2
    assert memory["heapUsed"] > 0
    assert 0 < memory["heapTotal"] <= memory["rss"]
    assert memory["external"] == 0  # no ffmpeg running
    assert health["activeStreams"] == {"count": 0, "streams": []}


async def test_every_livestream_answer_is_open_to_any_origin(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, stream = await _owner_and_stream(client)
    await go_live(app, stream["channel"]["slug"])
    origin = {"Origin": "https://player.example"}
    for method, path in [
        ("GET", "/livestream/health"),
        ("GET", "/livestream/active"),
        ("GET", f"/livestream/{stream['id']}/status"),
        ("GET", f"/livestream/{stream['id']}/debug"),  # 401: errors carry it too
        ("GET", f"/livestream/{stream['id']}/stream.m3u8"),  # 404: nothing published
        ("POST", f"/livestream/{stream['id']}/start"),
        ("GET", "/hls/not-a-uuid/master.m3u8"),  # 422
    ]:
        response = await client.request(method, path, headers=origin)
        assert response.headers["access-control-allow-origin"] == "*", (path, response.text)
        assert "x-ratelimit-remaining" in response.headers["access-control-expose-headers"].lower()
    for path in (
        "/livestream/health",
        f"/livestream/{stream['id']}/start",
        f"/livestream/{stream['id']}/stream.m3u8",
    ):
        preflight = await client.options(
            path,
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        methods = {m.strip() for m in preflight.headers["access-control-allow-methods"].split(",")}
        assert methods == SEED_CORS_METHODS
        allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert {"Content-Type", "Authorization"} <= allowed
    hls = await client.options(f"/hls/{stream['id']}/master.m3u8", headers=origin)
    assert hls.status_code == 204
    assert "POST" not in hls.headers["access-control-allow-methods"]
    # The API itself stays closed unless origins are configured.
    api = await client.get("/api/v1/streams", headers=origin)
    assert "access-control-allow-origin" not in api.headers


@pytest.mark.parametrize(
    ("category", "path", "limit"),
    [
        ("livestream_status", "/livestream/health", 60),
        ("livestream_status", "/livestream/{id}/status", 60),
        ("livestream_general", "/livestream/active", 100),
        ("livestream_stream", "/livestream/{id}/stream.m3u8", 1000),
    ],
)
async def test_livestream_routes_carry_seed_004s_limits(
    tmp_path: Path, database_url: str, database: Database, category: str, path: str, limit: int
) -> None:
    # The seed's limits are the defaults; the test lowers each to 3 to reach it quickly.
    assert getattr(RateLimits(), category) == f"{limit}/minute"
    settings = make_settings(
        tmp_path, database_url, rate_limits=RateLimits(**{category: "3/minute"})
    )
    async with serve(settings, database) as (_, http):
        owner = await register(http)
        channel = await make_channel(http, owner)
        stream = await make_stream(http, owner)
        assert stream["channel"]["id"] == channel["id"]
        url = path.replace("{id}", stream["id"])
        answers = [await http.get(url) for _ in range(4)]
        refused = answers[-1]
        assert all(a.status_code != 429 for a in answers[:3])
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "RATE_LIMIT_EXCEEDED"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["x-ratelimit-limit"] == "3"
        assert refused.headers["access-control-allow-origin"] == "*"
        # Other kinds of route keep their own budget, and so does the API.
        other = "/livestream/active" if category != "livestream_general" else "/livestream/health"
        assert (await http.get(other)).status_code == 200
        assert (await http.get("/api/v1/streams")).status_code == 200
