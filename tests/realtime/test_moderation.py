"""Moderation over sockets and HTTP, chat modes, viewer counts and live events."""

from __future__ import annotations

import asyncio

from tests.factories import Account, end_live, go_live, make_channel
from tests.realtime.conftest import Listener, LiveServer


async def _joined(live: LiveServer, account: Account | None, stream_id: str) -> Listener:
    client = await live.connect(account)
    answer = await client.call("stream:join", {"streamId": stream_id})
    assert answer["ok"], answer
    return client


async def _room(live: LiveServer) -> tuple[Account, str, str]:
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    return owner, channel["id"], await go_live(live.app, channel["slug"])


async def test_ban_purges_and_silences(live: LiveServer) -> None:
    owner, channel_id, stream_id = await _room(live)
    troll_account = await live.account()
    troll = await _joined(live, troll_account, stream_id)
    owner_socket = await _joined(live, owner, stream_id)
    bystander = await _joined(live, await live.account(), stream_id)
    spam = (await troll.call("chat:send", {"message": "spam"}))["message"]["id"]

    forged = await bystander.call("chat:ban", {"userId": troll_account.id})
    assert forged["error"]["code"] == "MODERATOR_REQUIRED"
    banned = await owner_socket.call("chat:ban", {"userId": troll_account.id, "reason": "spam"})
    assert banned["ok"], banned
    event = await bystander.wait_for("chat:ban")
    assert event["payload"]["user_id"] == troll_account.id
    assert event["payload"]["purged_message_ids"] == [spam]

    silenced = await troll.call("chat:send", {"message": "more spam"})
    assert silenced["error"]["code"] == "USER_BANNED"
    assert (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"] == []
    bans = await live.http.get(f"/api/v1/channels/{channel_id}/bans", headers=owner.headers)
    assert [b["user"]["id"] for b in bans.json()["data"]] == [troll_account.id]

    assert (await owner_socket.call("chat:unban", {"userId": troll_account.id}))["ok"]
    await bystander.wait_for("chat:unban")
    assert (await troll.call("chat:send", {"message": "sorry"}))["ok"]


async def test_timeout_expires(live: LiveServer) -> None:
    owner, _, stream_id = await _room(live)
    target_account = await live.account()
    target = await _joined(live, target_account, stream_id)
    mod = await _joined(live, owner, stream_id)
    timed = await mod.call("chat:timeout", {"userId": target_account.id, "duration": 1})
    assert timed["ok"]
    assert timed["ban"]["expires_at"] is not None
    refused = await target.call("chat:send", {"message": "let me talk"})
    assert refused["error"]["code"] == "USER_TIMED_OUT"
    assert refused["error"]["retry_after"] == 1
    await asyncio.sleep(1.2)
    assert (await target.call("chat:send", {"message": "back"}))["ok"]
    bad = await mod.call("chat:timeout", {"userId": target_account.id, "duration": 0})
    assert bad["error"]["code"] == "VALIDATION_ERROR"


async def test_moderators_cannot_ban_the_owner_or_each_other(live: LiveServer) -> None:
    owner, channel_id, stream_id = await _room(live)
    mods = [await live.account() for _ in range(2)]
    for mod in mods:
        await live.http.post(
            f"/api/v1/channels/{channel_id}/moderators",
            headers=owner.headers,
            json={"user_id": mod.id},
        )
    first = await _joined(live, mods[0], stream_id)
    assert (await first.call("chat:ban", {"userId": owner.id}))["error"]["code"] == (
        "PERMISSION_DENIED"
    )
    assert (await first.call("chat:ban", {"userId": mods[1].id}))["error"]["code"] == (
        "PERMISSION_DENIED"
    )
    assert (await first.call("chat:ban", {"userId": mods[0].id}))["error"]["code"] == (
        "VALIDATION_ERROR"
    )
    listed = (await live.http.get(f"/api/v1/channels/{channel_id}/moderators")).json()["data"]
    assert {m["user"]["id"] for m in listed} == {m.id for m in mods}
    removed = await live.http.delete(
        f"/api/v1/channels/{channel_id}/moderators/{mods[1].id}", headers=owner.headers
    )
    assert removed.status_code == 204
    other = await live.http.post(
        f"/api/v1/channels/{channel_id}/moderators",
        headers=mods[0].headers,
        json={"user_id": mods[1].id},
    )
    assert other.status_code == 403


async def test_bans_over_http(live: LiveServer) -> None:
    owner, channel_id, stream_id = await _room(live)
    target = await live.account()
    stranger = await live.account()
    url = f"/api/v1/channels/{channel_id}/bans"
    assert (await live.http.post(url, json={"user_id": target.id})).status_code == 401
    assert (
        await live.http.post(url, headers=stranger.headers, json={"user_id": target.id})
    ).status_code == 403
    created = await live.http.post(
        url, headers=owner.headers, json={"username": target.username, "duration_seconds": 600}
    )
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"] is not None
    assert (await live.http.get(url, headers=stranger.headers)).status_code == 403
    client = await _joined(live, target, stream_id)
    assert (await client.call("chat:send", {"message": "x"}))["error"]["code"] == ("USER_TIMED_OUT")
    lifted = await live.http.delete(f"{url}/{target.id}", headers=owner.headers)
    assert lifted.status_code == 204
    assert (await live.http.delete(f"{url}/{target.id}", headers=owner.headers)).status_code == 409
    both = await live.http.post(
        url, headers=owner.headers, json={"user_id": target.id, "username": target.username}
    )
    assert both.status_code == 422


async def test_slow_followers_emote_modes_and_blocked_terms(live: LiveServer) -> None:
    owner, channel_id, stream_id = await _room(live)
    viewer_account = await live.account()
    viewer = await _joined(live, viewer_account, stream_id)
    mod = await _joined(live, owner, stream_id)

    assert (await mod.call("chat:mode", {"slow_mode_seconds": 30}))["ok"]
    mode = await viewer.wait_for("chat:mode")
    assert mode["payload"]["slow_mode_seconds"] == 30
    assert (await viewer.call("chat:send", {"message": "one"}))["ok"]
    slow = await viewer.call("chat:send", {"message": "two"})
    assert slow["error"]["code"] == "SLOW_MODE"
    assert 0 < slow["error"]["retry_after"] <= 30
    assert (await mod.call("chat:send", {"message": "owners are exempt"}))["ok"]
    assert (await mod.call("chat:send", {"message": "twice"}))["ok"]
    await mod.call("chat:mode", {"slow_mode_seconds": 0})

    assert (await mod.call("chat:mode", {"followers_only_minutes": 0}))["ok"]
    restricted = await viewer.call("chat:send", {"message": "not a follower"})
    assert restricted["error"]["code"] == "CHAT_RESTRICTED"
    await live.http.post(f"/api/v1/channels/{channel_id}/follow", headers=viewer_account.headers)
    assert (await viewer.call("chat:send", {"message": "now I follow"}))["ok"]
    await mod.call("chat:mode", {"followers_only_minutes": 10})
    too_new = await viewer.call("chat:send", {"message": "followed a minute ago"})
    assert "10 minutes" in too_new["error"]["detail"]
    await mod.call("chat:mode", {"followers_only_off": True})

    # A fresh viewer: the first has used its 5 messages per 10 s (refusals count too).
    viewer = await _joined(live, await live.account(), stream_id)
    await mod.call("chat:mode", {"emote_only": True})
    assert (await viewer.call("chat:send", {"message": "words"}))["error"]["code"] == (
        "CHAT_RESTRICTED"
    )
    assert (await viewer.call("chat:send", {"message": "scHype scLove"}))["ok"]
    await mod.call("chat:mode", {"emote_only": False})

    await live.http.patch(
        f"/api/v1/channels/{channel_id}/settings",
        headers=owner.headers,
        json={"chat": {"blocked_terms": ["BadWord"]}},
    )
    blocked = await viewer.call("chat:send", {"message": "this has a badword in it"})
    assert blocked["error"]["code"] == "BLOCKED_TERM"
    forged = await viewer.call("chat:mode", {"slow_mode_seconds": 1})
    assert forged["error"]["code"] == "MODERATOR_REQUIRED"
    malformed = await mod.call("chat:mode", {"slow_mode_seconds": "fast"})
    assert malformed["error"]["code"] == "VALIDATION_ERROR"


async def test_viewer_counts_are_unique_viewers(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    alice = await live.account()
    watcher = await _joined(live, alice, stream_id)
    await _joined(live, alice, stream_id)  # a second tab of the same viewer
    await _joined(live, await live.account(), stream_id)
    update = await watcher.wait_for(
        "viewers:updated", lambda e: e["payload"]["viewer_count"] == 2, within=5
    )
    assert update["type"] == "viewers:updated"
    await asyncio.sleep(1.5)
    counts = [e["payload"]["viewer_count"] for e in watcher.received("viewers:updated")]
    assert 3 not in counts
    # At most one update a second per room, not one per join.
    assert len(counts) <= 3
    stream = (await live.http.get(f"/api/v1/streams/{stream_id}/viewers")).json()
    assert stream["viewer_count"] == 2
    assert stream["peak_viewer_count"] == 2


async def test_stream_events_and_live_notifications(live: LiveServer) -> None:
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    fan = await live.account()
    await live.http.post(f"/api/v1/channels/{channel['id']}/follow", headers=fan.headers)
    fan_socket = await live.connect(fan)
    room = await live.connect()
    assert (await room.call("stream:join", {"channelId": channel["id"]}))["is_live"] is False

    stream_id = await go_live(live.app, channel["slug"])
    started = await room.wait_for("stream:started")
    assert started["payload"]["stream_id"] == stream_id
    note = await fan_socket.wait_for("notification:new")
    assert note["payload"]["payload"]["stream_id"] == stream_id

    await live.http.patch(
        f"/api/v1/streams/{stream_id}", headers=owner.headers, json={"title": "New title"}
    )
    updated = await room.wait_for("stream:updated")
    assert updated["payload"]["title"] == "New title"
    await end_live(live.app, stream_id)
    ended = await room.wait_for("stream:ended")
    assert ended["payload"]["status"] == "ended"


async def test_follow_events_and_milestones(live: LiveServer) -> None:
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    room = await live.connect()
    await room.call("stream:join", {"channelId": channel["id"]})
    for _ in range(10):
        fan = await live.account()
        await live.http.post(f"/api/v1/channels/{channel['id']}/follow", headers=fan.headers)
    milestone = await room.wait_for("milestone:reached")
    assert milestone["payload"] == {"channel_id": channel["id"], "kind": "followers", "value": 10}
    await room.wait_for("follow:new", lambda e: e["payload"]["follower_count"] == 10)
    assert len(room.received("follow:new")) == 10
