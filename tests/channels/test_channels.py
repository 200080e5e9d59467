"""Channels: creation rules, settings, and who may change what (the ownership matrix)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Account, make_admin, make_channel, make_stream, register, unique_name


async def test_create_channel_makes_the_owner_a_creator(client: httpx.AsyncClient) -> None:
    account = await register(client)
    channel = await make_channel(
        client, account, slug="Pixel-Painter", category="art", description="Painting live"
    )
    assert channel["slug"] == "pixel-painter"  # slugs are lower case
    assert channel["owner"]["id"] == account.id
    assert channel["category"] == "art"
    assert channel["is_live"] is False
    assert channel["follower_count"] == 0
    me = (await client.get("/api/v1/auth/me", headers=account.headers)).json()
    assert me["role"] == "creator"
    by_slug = await client.get("/api/v1/channels/PIXEL-PAINTER")
    by_id = await client.get(f"/api/v1/channels/{channel['id']}")
    assert by_slug.json()["id"] == by_id.json()["id"] == channel["id"]


async def test_one_channel_per_account_and_unique_slugs(client: httpx.AsyncClient) -> None:
    alice = await register(client)
    bob = await register(client)
    await make_channel(client, alice, slug="alices-place")
    again = await client.post(
        "/api/v1/channels", headers=alice.headers, json={"slug": "another-one"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "CHANNEL_EXISTS"
    taken = await client.post(
        "/api/v1/channels", headers=bob.headers, json={"slug": "Alices-Place"}
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "SLUG_TAKEN"


@pytest.mark.parametrize(
    "slug", ["admin", "api", "live", "settings", "ab", "-leading", "has space", "x" * 33, "émile"]
)
async def test_invalid_and_reserved_slugs_are_refused(client: httpx.AsyncClient, slug: str) -> None:
    account = await register(client)
    response = await client.post("/api/v1/channels", headers=account.headers, json={"slug": slug})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "slug"
    assert (await client.get("/api/v1/live/streams/me", headers=account.headers)).json()[
        "data"
    ] == []


async def test_unknown_category_is_refused(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await client.post(
        "/api/v1/channels",
        headers=account.headers,
        json={"slug": unique_name("cat-"), "category": "no-such"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "UNKNOWN_CATEGORY"


async def test_settings_merge_and_validate(client: httpx.AsyncClient) -> None:
    account = await register(client)
    channel = await make_channel(client, account)
    url = f"/api/v1/channels/{channel['id']}/settings"
    defaults = (await client.get(url, headers=account.headers)).json()
    assert defaults["reconnect_window_seconds"] == 30
    assert defaults["recording_enabled"] is True
    assert defaults["latency_mode"] == "low"
    assert defaults["chat"]["rules"] == []

    patched = await client.patch(
        url,
        headers=account.headers,
        json={
            "latency_mode": "standard",
            "chat": {"rules": ["Be kind"], "slow_mode_seconds": 5},
            "category": "music",
            "title_template": "{channel} plays live",
        },
    )
    assert patched.status_code == 200, patched.text
    again = await client.patch(url, headers=account.headers, json={"chat": {"emote_only": True}})
    settings = again.json()
    assert settings["latency_mode"] == "standard"
    assert settings["chat"] == {
        "rules": ["Be kind"],
        "slow_mode_seconds": 5,
        "followers_only_minutes": None,
        "subscribers_only": False,
        "emote_only": True,
        "blocked_terms": [],
        "allow_links": True,
    }
    assert settings["recording_enabled"] is True
    assert (await client.get(f"/api/v1/channels/{channel['id']}")).json()["category"] == "music"

    for bad in [
        {"latency_mode": "ultra"},
        {"reconnect_window_seconds": -1},
        {"reconnect_window_seconds": 10_000},
        {"chat": {"slow_mode_seconds": "fast"}},
        {"unknown": 1},
        {"category": "not-a-category"},
    ]:
        response = await client.patch(url, headers=account.headers, json=bad)
        assert response.status_code == 422, bad
    assert (await client.get(url, headers=account.headers)).json() == settings


async def test_update_channel_fields(client: httpx.AsyncClient) -> None:
    account = await register(client)
    channel = await make_channel(client, account)
    response = await client.patch(
        f"/api/v1/channels/{channel['id']}",
        headers=account.headers,
        json={
            "name": "Night Owl Radio",
            "slug": "night-owl",
            "is_mature": True,
            "avatar_url": "https://cdn.example/a.png",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["slug"], body["is_mature"]) == ("Night Owl Radio", "night-owl", True)
    assert (await client.get("/api/v1/channels/night-owl")).status_code == 200
    assert (await client.get(f"/api/v1/channels/{channel['slug']}")).status_code == 404
    cleared = await client.patch(
        f"/api/v1/channels/{channel['id']}", headers=account.headers, json={"name": None}
    )
    assert cleared.status_code == 422


async def test_delete_channel_removes_its_streams(client: httpx.AsyncClient) -> None:
    account = await register(client)
    channel = await make_channel(client, account)
    stream = await make_stream(client, account)
    response = await client.delete(f"/api/v1/channels/{channel['id']}", headers=account.headers)
    assert response.status_code == 204
    assert (await client.get(f"/api/v1/channels/{channel['id']}")).status_code == 404
    gone = await client.get(f"/api/v1/streams/{stream['id']}")
    assert gone.status_code == 404
    assert gone.json()["code"] == "STREAM_NOT_FOUND"


Call = Callable[[httpx.AsyncClient, dict[str, str], dict[str, Any]], Awaitable[httpx.Response]]


def _write_routes() -> list[tuple[str, Call]]:
    """Every write route of channels and streams, as (name, call with headers)."""

    def request(method: str, path: str, body: dict[str, Any] | None = None) -> Call:
        async def call(
            client: httpx.AsyncClient, headers: dict[str, str], ids: dict[str, Any]
        ) -> httpx.Response:
            return await client.request(method, path.format(**ids), headers=headers, json=body)

        return call

    return [
        ("patch channel", request("PATCH", "/api/v1/channels/{channel}", {"name": "New"})),
        ("get settings", request("GET", "/api/v1/channels/{channel}/settings")),
        (
            "patch settings",
            request("PATCH", "/api/v1/channels/{channel}/settings", {"recording_enabled": False}),
        ),
        ("analytics", request("GET", "/api/v1/channels/{channel}/analytics")),
        ("patch stream", request("PATCH", "/api/v1/streams/{stream}", {"title": "Renamed"})),
        ("put live stream", request("PUT", "/api/v1/live/streams/{stream}", {"title": "Again"})),
        ("delete stream", request("DELETE", "/api/v1/streams/{stream}")),
        ("delete channel", request("DELETE", "/api/v1/channels/{channel}")),
    ]


@pytest.mark.parametrize("who", ["owner", "other", "anonymous", "admin"])
async def test_ownership_matrix(client: httpx.AsyncClient, app: FastAPI, who: str) -> None:
    owner = await register(client)
    other = await register(client)
    admin = await make_admin(client, app)
    callers: dict[str, Account | None] = {
        "owner": owner,
        "other": other,
        "anonymous": None,
        "admin": admin,
    }
    caller = callers[who]
    headers = caller.headers if caller else {}
    expected = {"owner": 2, "admin": 2, "other": 403, "anonymous": 401}[who]
    for name, call in _write_routes():
        # Fresh objects per route: deleting must not hide later routes' answers.
        channel = (await client.get("/api/v1/channels/" + owner.username.lower())).json()
        if "id" not in channel:
            channel = await make_channel(client, owner, slug=owner.username.lower())
        stream = await make_stream(client, owner)
        ids = {"channel": channel["id"], "stream": stream["id"]}
        response = await call(client, headers, ids)
        if expected == 2:
            assert 200 <= response.status_code < 300, (name, response.text)
        else:
            assert response.status_code == expected, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            # Nothing changed.
            assert (await client.get(f"/api/v1/streams/{stream['id']}")).json()["title"] == stream[
                "title"
            ]
            assert (await client.get(f"/api/v1/channels/{channel['id']}")).json()[
                "name"
            ] == channel["name"]
