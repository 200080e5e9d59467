"""Seed 004's WebSocket limits: connections per IP per minute, events per connection per
minute; browser-ingest chunks are held by the media's own limits instead."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import socketio

from stagecast.config import RateLimits
from tests.conftest import make_settings
from tests.factories import go_live, make_channel
from tests.realtime.conftest import serving


async def test_connections_per_ip_are_limited(tmp_path: Path, committed_database_url: str) -> None:
    assert RateLimits().socket_connections == "10/minute"  # the seed's limit is the default
    settings = make_settings(
        tmp_path, committed_database_url, rate_limits=RateLimits(socket_connections="3/minute")
    )
    async with serving(settings) as live:
        for _ in range(3):
            await live.connect()
        # As seed 004's Python example connects: python-socketio with its default transports.
        refused = socketio.AsyncClient(reconnection=False, http_session=live.sockets_http)
        errors: list[Any] = []

        @refused.on("connect_error")
        async def on_error(data: Any) -> None:
            errors.append(data)

        with contextlib.suppress(socketio.exceptions.ConnectionError):
            await refused.connect(live.url, wait_timeout=10)
        assert not refused.connected
        assert len(errors) == 1
        # The refusal carries the problem (its exact place in `connect_error` is the socket
        # refusals' own concern: err.data for the JS client).
        refusal = str(errors[0])
        assert "RATE_LIMIT_EXCEEDED" in refusal
        assert "429" in refusal
        assert "retry_after" in refusal
        # The HTTP API is not affected by the sockets' budget.
        assert (await live.http.get("/api/v1/streams")).status_code == 200


async def test_events_per_connection_are_limited_but_not_chunks(
    tmp_path: Path, committed_database_url: str
) -> None:
    assert RateLimits().socket_events == "100/minute"
    settings = make_settings(
        tmp_path, committed_database_url, rate_limits=RateLimits(socket_events="5/minute")
    )
    async with serving(settings) as live:
        owner = await live.account()
        channel = await make_channel(live.http, owner)
        stream_id = await go_live(live.app, channel["slug"])
        viewer = await live.connect()
        for _ in range(4):
            assert (await viewer.call("stream:join", {"streamId": stream_id}))["ok"]
        # Seed 004's chunks do not count: a broadcaster sends one a second for hours.
        for _ in range(20):
            chunk = await viewer.call("stream-data", {"streamKey": "stream123", "chunk": b"\x1a"})
            assert chunk["error"]["code"] == "NOT_BROADCASTING"
        assert (await viewer.call("stream:join", {"streamId": stream_id}))["ok"]
        refused = await viewer.call("stream:join", {"streamId": stream_id})
        assert refused["ok"] is False
        assert refused["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert refused["error"]["status"] == 429
        assert refused["error"]["retry_after"] >= 1
        # The budget is per connection: another socket from the same address has its own.
        other = await live.connect()
        assert (await other.call("stream:join", {"streamId": stream_id}))["ok"]
