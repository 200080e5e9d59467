"""Reactions over HTTP: the channel's set, live streams only, bans, the per-user limit, and the
burst they are counted into."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stagecast.config import RateLimits, Settings
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import Account, go_live, make_channel, register


async def react(
    client: httpx.AsyncClient, account: Account, stream_id: str, emoji: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/reactions", json={"stream_id": stream_id, "emoji": emoji}, headers=account.headers
    )


async def live_channel(
    client: httpx.AsyncClient, app: FastAPI
) -> tuple[Account, dict[str, Any], str]:
    owner = await register(client)
    channel = await make_channel(client, owner)
    return owner, channel, await go_live(app, channel["id"])


def bursts(runtime: Runtime, sent: list[tuple[str, dict[str, Any]]]) -> None:
    """Record the reaction bursts the pulse sends instead of sending them to sockets."""
    assert runtime.realtime is not None

    async def emit(name: str, payload: dict[str, Any], *, rooms: tuple[str, ...]) -> None:
        if name == "reaction:sent":
            sent.append((name, payload))

    runtime.realtime.bus.emit = emit  # type: ignore[method-assign]


async def test_reactions_are_counted_into_one_burst_per_window(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    assert runtime.pulse is not None
    sent: list[tuple[str, dict[str, Any]]] = []
    bursts(runtime, sent)
    _, channel, stream_id = await live_channel(client, app)
    fans = [await register(client) for _ in range(4)]
    for fan in fans:
        accepted = await react(client, fan, stream_id, "scHype")
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"stream_id": stream_id, "emoji": "scHype", "window_ms": 250}
    shown = await react(client, fans[0], stream_id, "🔥")  # the emoji an emote shows
    assert shown.status_code == 202
    assert shown.json()["emoji"] == "scFire"
    await runtime.pulse.flush()
    assert [name for name, _ in sent] == ["reaction:sent"]
    burst = sent[0][1]
    assert burst["channel_id"] == channel["id"]
    assert burst["stream_id"] == stream_id
    assert burst["total"] == 5
    assert burst["reactions"] == [
        {"emoji": "scHype", "fallback": "🎉", "count": 4},
        {"emoji": "scFire", "fallback": "🔥", "count": 1},
    ]
    await runtime.pulse.flush()
    assert len(sent) == 1  # an empty window sends nothing


async def test_bad_reactions_are_refused_and_counted_nowhere(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    assert runtime.pulse is not None
    sent: list[tuple[str, dict[str, Any]]] = []
    bursts(runtime, sent)
    owner, channel, stream_id = await live_channel(client, app)
    fan = await register(client)
    outside = await react(client, fan, stream_id, "🍕")
    assert outside.status_code == 422
    assert outside.json()["code"] == "REACTION_NOT_ALLOWED"
    unknown = await react(client, fan, str(uuid.uuid4()), "scHype")
    assert unknown.status_code == 404
    anonymous = await client.post(
        "/api/v1/reactions", json={"stream_id": stream_id, "emoji": "scHype"}
    )
    assert anonymous.status_code == 401

    narrowed = await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        json={"reactions": {"allowed": ["scGG"]}},
        headers=owner.headers,
    )
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["reactions"] == {"enabled": True, "allowed": ["scGG"]}
    runtime.pulse._gates.forget(uuid.UUID(channel["id"]))  # read less than a cache period ago
    assert (await react(client, fan, stream_id, "scHype")).status_code == 422
    assert (await react(client, fan, stream_id, "scGG")).status_code == 202
    not_an_emote = await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        json={"reactions": {"allowed": ["pizza"]}},
        headers=owner.headers,
    )
    assert not_an_emote.status_code == 422

    off = await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        json={"reactions": {"enabled": False}},
        headers=owner.headers,
    )
    assert off.status_code == 200
    runtime.pulse._gates.forget(uuid.UUID(channel["id"]))
    disabled = await react(client, fan, stream_id, "scGG")
    assert disabled.status_code == 403
    assert disabled.json()["code"] == "REACTIONS_DISABLED"

    await runtime.pulse.flush()
    assert [burst["total"] for _, burst in sent] == [1]


async def test_reactions_need_a_live_stream_and_an_unbanned_viewer(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    channel = await make_channel(client, owner)
    offline = await client.post("/api/v1/streams", json={"title": "Later"}, headers=owner.headers)
    fan = await register(client)
    refused = await react(client, fan, offline.json()["id"], "scHype")
    assert refused.status_code == 409
    assert refused.json()["code"] == "STREAM_NOT_LIVE"

    stream_id = await go_live(app, channel["id"])
    troll = await register(client)
    await client.post(
        f"/api/v1/channels/{channel['id']}/bans", json={"user_id": troll.id}, headers=owner.headers
    )
    banned = await react(client, troll, stream_id, "scHype")
    assert banned.status_code == 403
    assert banned.json()["code"] == "USER_BANNED"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, rate_limits=RateLimits(reactions="3/minute"))


async def test_reactions_past_the_limit_are_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, _, stream_id = await live_channel(client, app)
    fan = await register(client)
    answers = [(await react(client, fan, stream_id, "scHype")).status_code for _ in range(4)]
    assert answers == [202, 202, 202, 429]
