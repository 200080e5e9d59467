"""The directory micro-cache: served from memory, dropped when a stream event commits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from stagecast.app import create_app
from stagecast.config import RateLimits
from stagecast.db.engine import Database
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from tests.conftest import make_settings
from tests.factories import go_live, make_channel, make_stream, register


@pytest.fixture
async def cached_app(
    tmp_path: Path, database_url: str, database: Database
) -> AsyncIterator[FastAPI]:
    app = create_app(
        make_settings(tmp_path, database_url, directory_cache_seconds=60), database=database
    )
    async with LifespanManager(app):
        yield app


async def test_browse_and_stream_pages_are_cached_until_a_stream_event(
    cached_app: FastAPI,
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cached_app), base_url="http://testserver"
    ) as client:
        owner = await register(client)
        channel = await make_channel(client, owner)
        stream = await make_stream(client, owner, title="First title")
        assert (await client.get("/api/v1/browse")).json()["data"] == []
        first = await client.get(f"/api/v1/streams/{stream['id']}")
        assert first.json()["title"] == "First title"

        # A viewer-count change publishes no event: within the TTL the cached bytes stand.
        runtime: Runtime = cached_app.state.runtime
        stream_id = await go_live(cached_app, channel["slug"])  # stream:started drops pages
        live = (await client.get("/api/v1/browse")).json()["data"]
        assert [s["id"] for s in live] == [stream_id]
        async with runtime.db.session() as session, session.begin():
            live_id = uuid.UUID(stream_id)
            record = await streams.get_stream(session, live_id)
            await streams.record_viewer_count(session, stream=record, count=99)
        assert (await client.get("/api/v1/browse")).json()["data"][0]["viewer_count"] == 0
        assert (await client.get("/api/v1/browse?sort=newest")).json()["data"][0][
            "viewer_count"
        ] == 99  # another query is another page

        # An update commits stream:updated: both pages are fresh at once.
        await client.patch(
            f"/api/v1/streams/{live_id}", headers=owner.headers, json={"title": "Renamed"}
        )
        assert (await client.get(f"/api/v1/streams/{live_id}")).json()["title"] == "Renamed"
        assert (await client.get("/api/v1/browse")).json()["data"][0]["title"] == "Renamed"


async def test_cached_hits_keep_the_rate_limit_and_headers(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        directory_cache_seconds=60,
        rate_limits=RateLimits(anonymous="3/hour"),
    )
    app = create_app(settings, database=database)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        answers = [await client.get("/api/v1/browse") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert (
        answers[1].json()
        == answers[0].json()
        == {
            "data": [],
            "next_cursor": None,
            "has_more": False,
        }
    )
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-request-id"] == refused.json()["request_id"]
    assert refused.headers["x-frame-options"] == "DENY"
