"""Clip requests refused before any media is read: each gets its problem and makes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Account, end_live, go_live, make_channel, make_stream, register


async def _clips_of(client: httpx.AsyncClient, channel_id: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/channels/{channel_id}/clips")
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def _setup(client: httpx.AsyncClient) -> tuple[Account, dict[str, Any], Account]:
    owner = await register(client)
    channel = await make_channel(client, owner)
    viewer = await register(client)
    return owner, channel, viewer


async def test_a_stream_neither_live_nor_recorded_cannot_be_clipped(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, channel, viewer = await _setup(client)
    scheduled = await make_stream(client, owner)
    answer = await client.post(
        "/api/v1/clips", json={"stream_id": scheduled["id"]}, headers=viewer.headers
    )
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "CLIP_SOURCE_UNAVAILABLE"
    # Ended without a recording: still nothing to clip.
    stream_id = await go_live(app, channel["id"])
    await end_live(app, stream_id)
    answer = await client.post(
        "/api/v1/clips", json={"stream_id": stream_id, "duration": 10}, headers=viewer.headers
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "CLIP_SOURCE_UNAVAILABLE"
    assert await _clips_of(client, channel["id"]) == []


async def test_unknown_streams_and_recordings_are_not_found(client: httpx.AsyncClient) -> None:
    _, _, viewer = await _setup(client)
    for body in (
        {"stream_id": "01a23444-b005-7776-91cf-312ab601b175"},
        {"vod_id": "01a23444-b005-7776-91cf-312ab601b175", "start": 0},
    ):
        answer = await client.post("/api/v1/clips", json=body, headers=viewer.headers)
        assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    "body",
    [
        {"duration": 4.9},
        {"duration": 60.1},
        {"duration": -1},
        {"offset": -1},
        {"start": -2},
        {"title": ""},
        {"title": "x" * 141},
        {"unknown": 1},
    ],
)
async def test_out_of_bounds_fields_are_refused(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, Any]
) -> None:
    _, channel, viewer = await _setup(client)
    stream_id = await go_live(app, channel["id"])
    answer = await client.post(
        "/api/v1/clips", json={"stream_id": stream_id, **body}, headers=viewer.headers
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "VALIDATION_ERROR"
    assert await _clips_of(client, channel["id"]) == []


async def test_one_source_exactly(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, channel, viewer = await _setup(client)
    stream_id = await go_live(app, channel["id"])
    for body in ({}, {"stream_id": stream_id, "vod_id": stream_id}, {"vod_id": stream_id}):
        answer = await client.post("/api/v1/clips", json=body, headers=viewer.headers)
        assert answer.status_code == 422, answer.text


async def test_clipping_needs_an_account(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, channel, _ = await _setup(client)
    stream_id = await go_live(app, channel["id"])
    answer = await client.post("/api/v1/clips", json={"stream_id": stream_id})
    assert answer.status_code == 401


@pytest.mark.parametrize("allowed", ["nobody", "followers", "subscribers"])
async def test_a_channel_that_forbids_clipping_refuses_its_viewers(
    client: httpx.AsyncClient, app: FastAPI, allowed: str
) -> None:
    owner, channel, viewer = await _setup(client)
    changed = await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        json={"clips": {"allowed": allowed}},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["clips"]["allowed"] == allowed
    assert changed.json()["clips"]["per_user_per_hour"] == 20
    stream_id = await go_live(app, channel["id"])
    answer = await client.post(
        "/api/v1/clips", json={"stream_id": stream_id}, headers=viewer.headers
    )
    assert answer.status_code == 403
    assert answer.json()["code"] == "CLIPPING_NOT_ALLOWED"
    # The owner is not held by the setting: past it, the stream has no media on this server.
    answer = await client.post(
        "/api/v1/clips", json={"stream_id": stream_id}, headers=owner.headers
    )
    assert answer.json()["code"] == "CLIP_SOURCE_UNAVAILABLE"


async def test_a_follower_may_clip_a_followers_only_channel(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, channel, viewer = await _setup(client)
    await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        json={"clips": {"allowed": "followers"}},
        headers=owner.headers,
    )
    followed = await client.post(f"/api/v1/channels/{channel['id']}/follow", headers=viewer.headers)
    assert followed.status_code in {200, 201}, followed.text
    stream_id = await go_live(app, channel["id"])
    answer = await client.post(
        "/api/v1/clips", json={"stream_id": stream_id}, headers=viewer.headers
    )
    assert answer.json()["code"] == "CLIP_SOURCE_UNAVAILABLE"  # past the permission check


@pytest.mark.parametrize(
    "clips", [{"allowed": "everyone"}, {"per_user_per_hour": 0}, {"per_user_per_hour": 1001}]
)
async def test_bad_clip_settings_are_refused(
    client: httpx.AsyncClient, clips: dict[str, Any]
) -> None:
    owner, channel, _ = await _setup(client)
    answer = await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        json={"clips": clips},
        headers=owner.headers,
    )
    assert answer.status_code == 422, answer.text
    kept = await client.get(f"/api/v1/channels/{channel['id']}/settings", headers=owner.headers)
    assert kept.json()["clips"] == {"allowed": "signed_in", "per_user_per_hour": 20}


async def test_unknown_clips_are_not_found(client: httpx.AsyncClient) -> None:
    _, _, viewer = await _setup(client)
    missing = "01a23444-b005-7776-91cf-312ab601b175"
    for method, path in (
        ("GET", f"/api/v1/clips/{missing}"),
        ("PATCH", f"/api/v1/clips/{missing}"),
        ("DELETE", f"/api/v1/clips/{missing}"),
        ("POST", f"/api/v1/clips/{missing}/like"),
        ("DELETE", f"/api/v1/clips/{missing}/like"),
        ("POST", f"/api/v1/clips/{missing}/views"),
        ("GET", f"/hls/clips/{missing}/master.m3u8"),
    ):
        body = {"json": {"title": "x"}} if method == "PATCH" else {}
        answer = await client.request(method, path, headers=viewer.headers, **body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query", ["sort=hot", "period=year", "limit=0", "limit=101", "cursor=%%%", "page=0"]
)
async def test_bad_list_queries_are_refused(client: httpx.AsyncClient, query: str) -> None:
    _, channel, _ = await _setup(client)
    for path in (f"/api/v1/channels/{channel['id']}/clips", "/api/v1/clips/trending"):
        if path.endswith("trending") and query.startswith(("sort", "period")):
            continue
        answer = await client.get(f"{path}?{query}")
        assert answer.status_code == 422, (path, query, answer.text)
