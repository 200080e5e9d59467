"""Follows of channels and users: idempotent, counted, listed with cursors, notified."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories import go_live, make_channel, register


async def test_following_a_channel_is_idempotent(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    fan = await register(client)
    channel = await make_channel(client, owner)
    url = f"/api/v1/channels/{channel['id']}/follow"
    first = await client.post(url, headers=fan.headers)
    second = await client.post(url, headers=fan.headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["follower_count"] == second.json()["follower_count"] == 1
    assert first.json()["followed_at"] == second.json()["followed_at"]
    state = await client.get(url, headers=fan.headers)
    assert state.json()["following"] is True
    assert (await client.get(url)).json()["following"] is False  # anonymous
    assert (await client.get(f"/api/v1/channels/{channel['id']}")).json()["follower_count"] == 1

    unfollowed = await client.delete(url, headers=fan.headers)
    assert unfollowed.json() == {"following": False, "follower_count": 0, "followed_at": None}
    again = await client.delete(url, headers=fan.headers)
    assert again.status_code == 200
    assert again.json()["follower_count"] == 0


async def test_follow_rules(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    channel = await make_channel(client, owner)
    own = await client.post(f"/api/v1/channels/{channel['id']}/follow", headers=owner.headers)
    assert own.status_code == 422
    assert own.json()["code"] == "CANNOT_FOLLOW_SELF"
    anonymous = await client.post(f"/api/v1/channels/{channel['id']}/follow")
    assert anonymous.status_code == 401
    missing = await client.post("/api/v1/channels/nobody-here/follow", headers=owner.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "CHANNEL_NOT_FOUND"
    self_user = await client.post(f"/api/v1/users/{owner.username}/follow", headers=owner.headers)
    assert self_user.status_code == 422


async def test_channel_followers_paginate_newest_first(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    channel = await make_channel(client, owner)
    fans = [await register(client) for _ in range(5)]
    for fan in fans:
        await client.post(f"/api/v1/channels/{channel['id']}/follow", headers=fan.headers)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(f"/api/v1/channels/{channel['id']}/followers", params=params)
        ).json()
        seen += [f["user"]["id"] for f in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == [fan.id for fan in reversed(fans)]
    followed = (await client.get(f"/api/v1/users/{fans[0].id}/following/channels")).json()["data"]
    assert [f["channel"]["id"] for f in followed] == [channel["id"]]


async def test_following_users(client: httpx.AsyncClient) -> None:
    alice = await register(client)
    bob = await register(client)
    carol = await register(client)
    for follower in (bob, carol):
        response = await client.post(
            f"/api/v1/users/{alice.username.upper()}/follow", headers=follower.headers
        )
        assert response.status_code == 200
    again = await client.post(f"/api/v1/users/{alice.username}/follow", headers=bob.headers)
    assert again.json()["follower_count"] == 2
    followers = (await client.get(f"/api/v1/users/{alice.id}/followers")).json()["data"]
    assert [f["user"]["id"] for f in followers] == [carol.id, bob.id]
    following = (await client.get("/api/v1/users/me/following", headers=bob.headers)).json()
    assert [f["user"]["id"] for f in following["data"]] == [alice.id]
    stats = (await client.get(f"/api/v1/users/{alice.username}/stats")).json()
    assert stats["followers"] == 2
    await client.delete(f"/api/v1/users/{alice.username}/follow", headers=bob.headers)
    assert (await client.get(f"/api/v1/users/{alice.id}/stats")).json()["followers"] == 1
    assert (await client.get("/api/v1/users/nobody-at-all/followers")).status_code == 404


async def test_going_live_notifies_followers(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    fan = await register(client)
    bystander = await register(client)
    channel = await make_channel(client, owner, name="Sunday Speedruns")
    await client.post(f"/api/v1/channels/{channel['id']}/follow", headers=fan.headers)
    stream_id = await go_live(app, channel["slug"])
    await go_live(app, channel["slug"])  # a reconnect is not a second notification

    inbox = (await client.get("/api/v1/notifications", headers=fan.headers)).json()
    [note] = inbox["data"]
    assert note["kind"] == "stream.live"
    assert note["payload"]["stream_id"] == stream_id
    assert note["payload"]["channel_name"] == "Sunday Speedruns"
    assert note["read_at"] is None
    assert (await client.get("/api/v1/notifications", headers=bystander.headers)).json()[
        "data"
    ] == []
    count = await client.get("/api/v1/notifications/unread-count", headers=fan.headers)
    assert count.json() == {"unread": 1}

    others = await client.post(
        f"/api/v1/notifications/{note['id']}/read", headers=bystander.headers
    )
    assert others.status_code == 404
    read = await client.post(f"/api/v1/notifications/{note['id']}/read", headers=fan.headers)
    assert read.json()["read_at"] is not None
    assert (await client.get("/api/v1/notifications?unread=true", headers=fan.headers)).json()[
        "data"
    ] == []
    all_read = await client.post("/api/v1/notifications/read-all", headers=fan.headers)
    assert all_read.json() == {"marked": 0}
    assert (await client.get("/api/v1/notifications")).status_code == 401
