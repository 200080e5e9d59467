"""Maintenance mode and the browser-broadcasting flag at the real ingest: ffmpeg over RTMP and a
Socket.IO broadcaster. New publishers are refused; a broadcast on air continues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stagecast.accounts.models import Role
from tests.factories import Account, login, make_channel, set_role
from tests.media.conftest import (
    MediaServer,
    eventually,
    publish_briefly,
    start_publisher,
)


@pytest.fixture
async def admin(media_server: MediaServer) -> AsyncIterator[Account]:
    account = await media_server.live.account()
    await set_role(media_server.live.app, account, Role.ADMIN)
    account.access_token = (await login(media_server.live.http, account))["access_token"]
    yield account
    # The media servers share one committed database: leave the switches as they were.
    http = media_server.live.http
    await http.put("/api/v1/admin/maintenance", json={"enabled": False}, headers=account.headers)
    for name in ("browser_broadcasting",):
        await http.put(
            f"/api/v1/admin/feature-flags/{name}", json={"enabled": True}, headers=account.headers
        )


async def _maintenance(server: MediaServer, admin: Account, *, enabled: bool) -> None:
    answer = await server.live.http.put(
        "/api/v1/admin/maintenance",
        json={"enabled": enabled, "message": "Back soon"},
        headers=admin.headers,
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.timeout(120)
async def test_maintenance_refuses_new_publishers_and_keeps_those_on_air(
    media_server: MediaServer, admin: Account
) -> None:
    server = media_server
    other = await server.live.account()
    await make_channel(server.live.http, other)
    on_air = await start_publisher(server.rtmp_url, seconds=6)
    stream = await server.live_stream()
    await _maintenance(server, admin, enabled=True)

    # Another creator's browser broadcast would be new: refused.
    tab = await server.live.connect(other)
    refused = await tab.call("start-stream", {})
    assert refused["error"]["code"] == "MAINTENANCE"
    assert (await tab.wait_for("stream-error"))["problem"]["code"] == "MAINTENANCE"

    # The publisher on air finishes its six seconds and its stream ends as usual.
    _, report = await asyncio.wait_for(on_air.communicate(), 60)
    assert on_air.returncode == 0, report
    ended = await eventually(lambda: _status_if(server, admin, stream["id"], "ended"), within=40)
    assert ended == "ended"

    # A new RTMP publish (its key is good) is refused while maintenance is on.
    code, report = await publish_briefly(server.rtmp_url)
    assert code != 0
    listed = await server.live.http.get(
        f"/api/v1/channels/{server.channel['id']}/streams", headers=admin.headers
    )
    assert not [s for s in listed.json()["data"] if s["status"] == "live"]

    await _maintenance(server, admin, enabled=False)
    assert (await tab.call("start-stream", {}))["ok"]
    assert (await tab.call("end-stream", {}))["ok"]


async def _status_if(
    server: MediaServer, admin: Account, stream_id: str, wanted: str
) -> str | None:
    # During maintenance only an admin reads the API.
    answer = await server.live.http.get(f"/api/v1/streams/{stream_id}", headers=admin.headers)
    status: str = answer.json()["status"]
    return status if status == wanted else None


async def test_browser_broadcasting_off_refuses_start_stream(
    media_server: MediaServer, admin: Account
) -> None:
    server = media_server
    off = await server.live.http.put(
        "/api/v1/admin/feature-flags/browser_broadcasting",
        json={"enabled": False},
        headers=admin.headers,
    )
    assert off.status_code == 200
    tab = await server.live.connect(server.owner)
    refused = await tab.call("start-stream", {"streamKey": server.stream_key})
    assert refused["error"]["code"] == "FEATURE_DISABLED"
    assert (await tab.wait_for("stream-error"))["problem"]["code"] == "FEATURE_DISABLED"
    assert server.media.broadcasts == {}
