"""The queue on a real server: concurrent reports, a rejected message leaving viewers' chat, a
ban closing sockets, and chat's automatic flags (blocked terms, link spam, floods)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stagecast.accounts.models import Role
from stagecast.config import ModerationSettings
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import Account, go_live, make_admin, make_channel, set_role
from tests.moderation.conftest import notifications_of, queue_item, report
from tests.realtime.conftest import Listener, LiveServer, serving

FLAGS = "/api/v1/moderation/flags"


@pytest.fixture
async def watched(tmp_path: Path, committed_database_url: str) -> AsyncIterator[LiveServer]:
    """A server whose chat flags trip early, so that a test stays under the chat rate limit
    (5 messages per 10 s)."""
    settings = make_settings(
        tmp_path,
        committed_database_url,
        moderation=ModerationSettings(
            flood_messages=3, flood_window_seconds=30,
            repeat_messages=3, repeat_window_seconds=30,
            link_messages=1, link_window_seconds=30,
        ),
    )  # fmt: skip
    async with serving(settings) as live_server:
        yield live_server


async def _room(live: LiveServer) -> tuple[Account, dict[str, Any], str]:
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    return owner, channel, await go_live(live.app, channel["slug"])


async def _joined(live: LiveServer, account: Account | None, stream_id: str) -> Listener:
    client = await live.connect(account)
    answer = await client.call("stream:join", {"streamId": stream_id})
    assert answer["ok"], answer
    return client


async def test_many_reporters_at_once_make_one_case(live: LiveServer) -> None:
    owner, _, _ = await _room(live)
    reporters = [await live.account() for _ in range(8)]
    answers = await asyncio.gather(
        *(report(live.http, r, "user", owner.id, reason="spam") for r in reporters)
    )
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    admin = await make_admin(live.http, live.app)
    assert len({a.json()["id"] for a in answers}) == 8  # eight reports…
    item = await queue_item(live.http, admin, owner.id)
    assert (item["report_count"], item["reporter_count"]) == (8, 8)  # …in one case
    listed = await live.http.get(
        "/api/v1/admin/reports", params={"status": "pending", "limit": 100}, headers=admin.headers
    )
    mine = [r for r in listed.json()["items"] if r["content_id"] == owner.id]
    assert {r["case_id"] for r in mine} == {item["id"]}


async def test_a_rejected_message_leaves_every_viewers_chat(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    author = await live.account()
    speaker = await _joined(live, author, stream_id)
    viewer = await _joined(live, None, stream_id)
    sent = await speaker.call("chat:send", {"message": "something awful"})
    assert sent["ok"], sent
    message_id = sent["message"]["id"]
    await viewer.wait_for("chat:message", lambda e: e["payload"]["id"] == message_id)
    moderator = await live.account()
    await set_role(live.app, moderator, Role.MODERATOR)
    console = await live.connect(moderator)  # staff sockets hear of the queue's changes
    reporter = await live.account()
    assert (await report(live.http, reporter, "chat_message", message_id)).status_code == 201
    update = await console.wait_for(
        "moderation:case_updated", lambda e: e["payload"]["content_id"] == message_id
    )
    assert (update["payload"]["change"], update["payload"]["status"]) == ("reported", "open")
    item = await queue_item(live.http, moderator, message_id)
    assert update["payload"]["case_id"] == item["id"]
    rejected = await live.http.post(
        f"/api/v1/moderation/queue/{item['id']}/reject", json={}, headers=moderator.headers
    )
    assert rejected.status_code == 200, rejected.text
    deleted = await viewer.wait_for(
        "chat:deleted", lambda e: e["payload"]["message_id"] == message_id
    )
    assert deleted["payload"]["deleted_by"] == moderator.id
    decided = await console.wait_for(
        "moderation:case_updated", lambda e: e["payload"]["change"] == "decided"
    )
    assert decided["payload"]["status"] == "rejected"
    assert not viewer.received("moderation:case_updated")  # staff only
    history = (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"]
    assert message_id not in [m["id"] for m in history]
    told = await notifications_of(live.http, reporter)
    assert [n["payload"]["outcome"] for n in told if n["kind"] == "report_outcome"] == ["removed"]


async def test_a_ban_closes_the_owners_sockets(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    author = await live.account()
    socket = await _joined(live, author, stream_id)
    gone = asyncio.Event()
    socket.client.on("disconnect", lambda *_: gone.set())
    bystander = await _joined(live, await live.account(), stream_id)
    sent = await socket.call("chat:send", {"message": "threats"})
    message_id = sent["message"]["id"]
    assert (
        await report(live.http, await live.account(), "chat_message", message_id)
    ).status_code == 201
    admin = await make_admin(live.http, live.app)
    pending = await live.http.get(
        "/api/v1/admin/reports", params={"limit": 100}, headers=admin.headers
    )
    report_id = next(r["id"] for r in pending.json()["items"] if r["content_id"] == message_id)
    banned = await live.http.post(
        f"/api/v1/admin/reports/{report_id}/resolve", json={"action": "ban"}, headers=admin.headers
    )
    assert banned.status_code == 200, banned.text
    await asyncio.wait_for(gone.wait(), 5)
    assert (await live.http.get("/api/v1/auth/me", headers=author.headers)).status_code == 401
    assert bystander.client.connected
    await bystander.wait_for("chat:deleted", lambda e: e["payload"]["message_id"] == message_id)


async def _flags(live: LiveServer, admin: Account, **query: str) -> list[dict[str, Any]]:
    runtime: Runtime = live.app.state.runtime
    assert runtime.chat_watch is not None
    await runtime.chat_watch.drain()
    answer = await live.http.get(FLAGS, params=query, headers=admin.headers)
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def test_a_blocked_term_raises_a_flag(watched: LiveServer) -> None:
    live = watched
    owner, channel, stream_id = await _room(live)
    changed = await live.http.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        headers=owner.headers,
        json={"chat": {"blocked_terms": ["BadWord"]}},
    )
    assert changed.status_code == 200, changed.text
    author = await live.account()
    socket = await _joined(live, author, stream_id)
    refused = await socket.call("chat:send", {"message": "you are a badword"})
    assert refused["error"]["code"] == "BLOCKED_TERM"
    admin = await make_admin(live.http, live.app)
    flags = await _flags(live, admin, channel_id=channel["id"])
    assert len(flags) == 1
    flag = flags[0]
    assert (flag["kind"], flag["content_type"]) == ("blocked_term", "chat_message")
    assert flag["user"] == {"id": author.id, "username": author.username}
    assert flag["evidence"]["text"] == "you are a badword"
    assert flag["evidence"]["matched"] == "badword"
    # It is in the queue, as a message that never reached the chat.
    item = await queue_item(live.http, admin, flag["content_id"], source="flags")
    assert (item["id"], item["flag_kinds"], item["report_count"]) == (
        flag["case_id"], ["blocked_term"], 0
    )  # fmt: skip
    assert item["content"]["removed"] is True
    assert item["content"]["text"] == "you are a badword"
    history = (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"]
    assert flag["content_id"] not in [m["id"] for m in history]
    by_kind = await _flags(live, admin, kind="flood", channel_id=channel["id"])
    assert by_kind == []


async def test_links_raise_link_spam_flags(watched: LiveServer) -> None:
    live = watched
    owner, channel, stream_id = await _room(live)
    author = await live.account()
    socket = await _joined(live, author, stream_id)
    # More than one link in 30 s (the test's threshold) is link spam; the message goes out.
    for n in range(2):
        sent = await socket.call("chat:send", {"message": f"visit https://spam.example/{n}"})
        assert sent["ok"], sent
    admin = await make_admin(live.http, live.app)
    flags = await _flags(live, admin, channel_id=channel["id"], kind="link_spam")
    assert len(flags) == 1
    assert flags[0]["content_id"] == sent["message"]["id"]
    assert flags[0]["evidence"]["matched"] == ["https://spam.example/1"]
    assert flags[0]["evidence"]["count"] == 2
    assert flags[0]["evidence"]["window_seconds"] == 30
    # A channel that forbids links refuses them from viewers, and flags that too.
    await live.http.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        headers=owner.headers,
        json={"chat": {"allow_links": False}},
    )
    other = await _joined(live, await live.account(), stream_id)
    refused = await other.call("chat:send", {"message": "https://elsewhere.example"})
    assert refused["error"]["code"] == "LINKS_NOT_ALLOWED"
    owner_socket = await _joined(live, owner, stream_id)
    assert (await owner_socket.call("chat:send", {"message": "https://mine.example"}))["ok"]
    flags = await _flags(live, admin, channel_id=channel["id"], kind="link_spam")
    assert len(flags) == 2
    assert flags[0]["evidence"]["reason"] == "refused"
    assert flags[0]["evidence"]["matched"] == ["https://elsewhere.example"]


async def test_floods_raise_flags(watched: LiveServer) -> None:
    live = watched
    _, channel, stream_id = await _room(live)
    repeater = await live.account()
    socket = await _joined(live, repeater, stream_id)
    for _ in range(3):
        assert (await socket.call("chat:send", {"message": "FOLLOW ME"}))["ok"]
    admin = await make_admin(live.http, live.app)
    flags = await _flags(live, admin, channel_id=channel["id"], kind="flood")
    assert [(f["evidence"]["reason"], f["evidence"]["count"]) for f in flags] == [("repeated", 3)]
    assert flags[0]["user"]["id"] == repeater.id
    flooder = await live.account()
    fast = await _joined(live, flooder, stream_id)
    for n in range(4):
        assert (await fast.call("chat:send", {"message": f"line {n}"}))["ok"]
    flags = await _flags(live, admin, channel_id=channel["id"], kind="flood")
    assert len(flags) == 2
    newest = flags[0]
    assert newest["user"]["id"] == flooder.id
    assert newest["evidence"]["reason"] == "rate"
    assert (newest["evidence"]["count"], newest["evidence"]["threshold"]) == (4, 3)
    assert newest["evidence"]["text"] == "line 3"
    # Once flagged, the flood does not make a case per message.
    assert (await fast.call("chat:send", {"message": "line 4"}))["ok"]
    assert len(await _flags(live, admin, channel_id=channel["id"], kind="flood")) == 2
    # Rejecting the flagged message from the queue bans the flooder with it.
    item = await queue_item(live.http, admin, newest["content_id"], source="flags")
    rejected = await live.http.post(
        f"/api/v1/moderation/queue/{item['id']}/reject",
        json={"action": "suspend", "note": "flood"},
        headers=admin.headers,
    )
    assert rejected.status_code == 200, rejected.text
    assert (await live.http.get("/api/v1/auth/me", headers=flooder.headers)).status_code == 401
