"""Dialects: every socket gets each room event once, in the shape its seed's client expects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import socketio

from stagecast.realtime.bus import envelope as envelope_of
from stagecast.realtime.fanout import FanoutManager
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import Account, go_live, make_channel
from tests.money.test_wallet import buy
from tests.realtime.conftest import Listener, LiveServer, seed004_viewer, serving


async def _room(live: LiveServer) -> tuple[Account, dict[str, Any], str]:
    """A live channel: (owner, channel, stream id)."""
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    return owner, channel, await go_live(live.app, channel["slug"])


def _manager(live: LiveServer) -> FanoutManager:
    runtime: Runtime = live.app.state.runtime
    assert runtime.realtime is not None
    return runtime.realtime.manager


def _names(listener: Listener) -> list[str]:
    return [name for name, _ in listener.events]


async def _anonymous(live: LiveServer, browser: str, **options: Any) -> Listener:
    # Anonymous viewers count once per address and browser: each of these is another browser.
    return await live.connect(headers={"User-Agent": browser}, **options)


# --- seed 000 ----------------------------------------------------------------------------------


async def test_seed_000_joiners_get_the_old_names_instead(live: LiveServer) -> None:
    owner, _, stream_id = await _room(live)
    old_client = await live.connect(await live.account())
    current = await live.connect()
    speaker = await live.account()
    talker = await live.connect(speaker)
    assert (await old_client.call("join-stream", {"streamId": stream_id}))["ok"]
    assert (await current.call("stream:join", {"streamId": stream_id}))["ok"]
    assert (await talker.call("join-stream", {"streamId": stream_id}))["ok"]
    joined = await old_client.wait_for(
        "user-joined", lambda e: e["payload"]["user_id"] == speaker.id
    )
    assert joined["type"] == "viewers:joined"

    sent = await talker.call("send-message", {"message": "for old clients"})
    assert sent["ok"], sent
    message = await old_client.wait_for("new-message")
    assert message["type"] == "chat:message"  # the envelope, under seed 000's name
    assert message["payload"]["body"] == "for old clients"
    assert (await current.wait_for("chat:message"))["payload"]["body"] == "for old clients"
    # Events seed 000 has no other name for arrive under ours.
    moderator = await live.connect(owner)
    assert (await moderator.call("stream:join", {"streamId": stream_id}))["ok"]
    assert (await moderator.call("chat:clear", {}))["ok"]
    await old_client.wait_for("chat:cleared")

    await talker.client.disconnect()
    await old_client.wait_for("user-left")
    assert "chat:message" not in _names(old_client)  # once, under one name
    assert "viewers:joined" not in _names(old_client)
    assert "new-message" not in _names(current)
    assert len(old_client.received("new-message")) == 1


async def test_a_socket_s_events_are_handled_in_the_order_it_sent_them(live: LiveServer) -> None:
    """Seed 000's client sends right behind its join, without waiting for an answer."""
    _, _, stream_id = await _room(live)
    talker = await live.connect(await live.account())
    answers: list[dict[str, Any]] = []
    all_answered = asyncio.Event()

    def answered(answer: dict[str, Any]) -> None:
        answers.append(answer)
        if len(answers) == 6:
            all_answered.set()

    await talker.client.emit("join-stream", {"streamId": stream_id}, callback=answered)
    for n in range(5):  # seed 000's chat limit: 5 messages per 10 s
        await talker.client.emit("send-message", {"message": f"right away {n}"}, callback=answered)
    await asyncio.wait_for(all_answered.wait(), 10)
    assert [a["ok"] for a in answers] == [True] * 6, answers
    await talker.wait_for("new-message", lambda e: e["payload"]["body"] == "right away 4")
    bodies = [e["payload"]["body"] for e in talker.received("new-message")]
    assert bodies == [f"right away {n}" for n in range(5)]
    history = await live.http.get(f"/api/v1/streams/{stream_id}/chat?limit=10")
    assert [m["body"] for m in history.json()["data"]] == bodies[::-1]  # newest first


# --- seed 004 viewers --------------------------------------------------------------------------


async def test_seed_004_viewers_join_by_public_names_and_hear_each_other(
    live: LiveServer,
) -> None:
    owner, channel, stream_id = await _room(live)
    # As the seed's client: emit, no ack; the answer is an event.
    first, joined = await seed004_viewer(live, stream_id, browser="seed004-first")
    assert joined == {"streamKey": stream_id, "viewerCount": 1, "isLive": True}
    await first.wait_for("viewer-joined")

    by_slug, joined = await seed004_viewer(live, channel["slug"], browser="seed004-second")
    assert joined == {"streamKey": channel["slug"], "viewerCount": 2, "isLive": True}
    # Each viewer hears about the others under the name it used itself.
    assert await first.wait_for("viewer-joined", lambda e: e["viewerCount"] == 2) == {
        "streamKey": stream_id,
        "viewerCount": 2,
    }
    by_id = await _anonymous(live, "seed004-third")
    await by_id.client.emit("join-stream", {"streamKey": channel["id"]})
    assert (await by_id.wait_for("stream-joined"))["viewerCount"] == 3
    await by_slug.wait_for(
        "viewer-joined", lambda e: e == {"streamKey": channel["slug"], "viewerCount": 3}
    )

    await by_slug.client.emit("leave-stream", {"streamKey": channel["slug"]})
    left = await first.wait_for("viewer-left")
    assert left == {"streamKey": stream_id, "viewerCount": 2}
    await by_id.wait_for(
        "viewer-left", lambda e: e == {"streamKey": channel["id"], "viewerCount": 2}
    )

    # Room events seed 004 has no form for come as our envelope, once.
    talker = await live.connect(owner)
    assert (await talker.call("stream:join", {"streamId": stream_id}))["ok"]
    assert (await talker.call("chat:send", {"message": "hello 004"}))["ok"]
    assert (await first.wait_for("chat:message"))["payload"]["body"] == "hello 004"

    # The end of the stream, flat as the seed shows it; the envelope to everyone else.
    ended = await live.http.delete(f"/api/v1/streams/{stream_id}", headers=owner.headers)
    assert ended.status_code < 300, ended.text
    assert await first.wait_for("stream-ended") == {
        "streamKey": stream_id,
        "reason": "ended by the owner",  # why it ended, as the end path says
    }
    assert (await by_id.wait_for("stream-ended"))["streamKey"] == channel["id"]
    assert (await talker.wait_for("stream:ended"))["payload"]["stream_id"] == stream_id
    for listener in (first, by_id):
        assert "viewers:updated" not in _names(listener)
        assert "stream:ended" not in _names(listener)
    assert "stream-ended" not in _names(talker)
    assert "viewer-joined" not in _names(talker)
    assert len(first.received("stream-ended")) == 1


async def test_seed_004_segments_are_flat(live: LiveServer) -> None:
    _, channel, stream_id = await _room(live)
    viewer, _ = await seed004_viewer(live, stream_id, browser="seed004-segments")
    envelope = await live.connect()
    assert (await envelope.call("stream:join", {"streamId": stream_id}))["ok"]
    runtime: Runtime = live.app.state.runtime
    assert runtime.realtime is not None
    # What the media pipeline sends as segments land (tests/media drive it with real ffmpeg).
    await runtime.realtime.bus.emit(
        "stream:segments",
        {"channel_id": channel["id"], "stream_id": stream_id, "segment_count": 3},
        rooms=(f"channel:{channel['id']}",),
    )
    assert await viewer.wait_for("stream-segments-updated") == {
        "streamKey": stream_id,
        "segmentCount": 3,
    }
    assert (await envelope.wait_for("stream:segments"))["payload"]["segment_count"] == 3
    assert "stream:segments" not in _names(viewer)


@pytest.mark.parametrize(
    ("payload", "code", "problem"),
    [
        ({"streamKey": "stream123", "userId": "user123"}, "STREAM_NOT_FOUND", "STREAM_NOT_FOUND"),
        (
            {"streamKey": "00000000-0000-7000-8000-000000000000"},
            "STREAM_NOT_FOUND",
            "STREAM_NOT_FOUND",
        ),
        ({"streamKey": 42, "userId": "user123"}, "STREAM_NOT_FOUND", "VALIDATION_ERROR"),
        ({"streamKey": None}, "STREAM_NOT_FOUND", "VALIDATION_ERROR"),
        ({"streamKey": ""}, "STREAM_NOT_FOUND", "VALIDATION_ERROR"),
        ({"streamKey": "x" * 300}, "STREAM_NOT_FOUND", "VALIDATION_ERROR"),
        ({"streamKey": "stream123", "userId": ["u"]}, "STREAM_NOT_FOUND", "VALIDATION_ERROR"),
        ({"streamKey": "stream123", "admin": True}, "STREAM_NOT_FOUND", "VALIDATION_ERROR"),
    ],
)
async def test_seed_004_joins_that_fail_answer_stream_error(
    live: LiveServer, payload: dict[str, Any], code: str, problem: str
) -> None:
    _, _, stream_id = await _room(live)
    viewer = await _anonymous(live, "seed004-refused")
    await viewer.client.emit("join-stream", payload)
    error = await viewer.wait_for("stream-error")
    key = payload["streamKey"]
    assert error["streamKey"] == (key if isinstance(key, str) and len(key) <= 256 else None)
    assert (error["code"], error["problem"]["code"]) == (code, problem)
    assert error["error"]
    # Nothing changed: the socket is in no room, and an ack says the same.
    answer = await viewer.call("join-stream", payload)
    assert answer["error"]["code"] == problem
    assert "stream-joined" not in _names(viewer)
    assert (await viewer.call("stream:join", {"streamId": stream_id}))["viewer_count"] == 1


async def test_the_secret_stream_key_is_not_a_viewer_name(live: LiveServer) -> None:
    owner, _, _ = await _room(live)
    key = (await live.http.get("/api/v1/live/streams/me/key", headers=owner.headers)).json()
    viewer = await _anonymous(live, "seed004-key")
    await viewer.client.emit("join-stream", {"streamKey": key["stream_key"], "userId": "u"})
    error = await viewer.wait_for("stream-error")
    assert error["code"] == "STREAM_NOT_FOUND"
    assert key["stream_key"] not in error["error"]  # never repeated back in a message


async def test_seed_004_leaving_a_stream_not_joined_answers_stream_error(
    live: LiveServer,
) -> None:
    _, channel, _ = await _room(live)
    viewer = await _anonymous(live, "seed004-leave")
    await viewer.client.emit("leave-stream", {"streamKey": channel["slug"]})
    error = await viewer.wait_for("stream-error")
    assert (error["streamKey"], error["problem"]["code"]) == (channel["slug"], "VALIDATION_ERROR")


# --- seed 002 ----------------------------------------------------------------------------------


async def test_seed_002_clients_choose_their_dialect_in_the_handshake(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    by_auth = await live.connect(await live.account(), dialect="seed002")
    by_query = await live.connect(query="dialect=seed002")
    envelope = await live.connect()
    for listener in (by_auth, by_query, envelope):
        assert (await listener.call("stream:join", {"streamId": stream_id}))["ok"]

    fan = await live.account(display_name="John Doe")
    arriving = await live.connect(fan)
    assert (await arriving.call("stream:join", {"streamId": stream_id}))["ok"]
    for listener in (by_auth, by_query):
        viewer = await listener.wait_for(
            "viewer_joined", lambda e: e["viewer"]["user_id"] == fan.id
        )
        assert set(viewer) == {"type", "stream_id", "viewer", "timestamp"}
        assert (viewer["type"], viewer["stream_id"]) == ("viewer_joined", stream_id)
        assert viewer["viewer"] == {"user_id": fan.id, "display_name": "John Doe"}
    arrived = await envelope.wait_for("viewers:joined", lambda e: e["payload"]["user_id"] == fan.id)
    assert arrived["payload"]["stream_id"] == stream_id

    await buy(live.http, fan, 1000)
    tipped = await live.http.post(
        f"/api/v1/streams/{stream_id}/tips",
        json={"tokens": 100, "message": "Great show!"},
        headers=fan.headers,
    )
    assert tipped.status_code == 201, tipped.text
    for listener in (by_auth, by_query):
        tip = await listener.wait_for("tip_received")
        assert set(tip) == {"type", "stream_id", "tip", "timestamp"}
        assert (tip["type"], tip["stream_id"]) == ("tip_received", stream_id)
        assert tip["tip"] == {
            "id": tipped.json()["id"],
            "from_user": "John Doe",  # the seed's example: the display name
            "tokens": 100,
            "message": "Great show!",
        }
    assert (await envelope.wait_for("tip:received"))["payload"]["tokens"] == 100
    for listener in (by_auth, by_query):
        assert "tip:received" not in _names(listener)
        assert "viewers:joined" not in _names(listener)


@pytest.mark.parametrize("dialect", ["seed003", "", 7])
async def test_an_unknown_dialect_refuses_the_handshake(live: LiveServer, dialect: Any) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await live.connect(dialect=dialect)


async def test_an_unknown_dialect_in_the_query_refuses_the_handshake(live: LiveServer) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await live.connect(query="dialect=klingon")


# --- all of them at once -----------------------------------------------------------------------


async def test_each_socket_gets_each_event_once_in_its_dialect(live: LiveServer) -> None:
    _, channel, stream_id = await _room(live)
    envelope = await live.connect()
    seed000 = await _anonymous(live, "seed000")
    seed002 = await _anonymous(live, "seed002", query="dialect=seed002")
    seed004 = await _anonymous(live, "seed004")
    assert (await envelope.call("stream:join", {"streamId": stream_id}))["ok"]
    assert (await seed000.call("join-stream", {"streamId": stream_id}))["ok"]
    assert (await seed002.call("stream:join", {"channelId": channel["id"]}))["ok"]
    assert (await seed004.call("join-stream", {"streamKey": stream_id}))["ok"]
    talker = await live.connect(await live.account())
    assert (await talker.call("stream:join", {"streamId": stream_id}))["ok"]

    assert (await talker.call("chat:send", {"message": "one each"}))["ok"]
    for listener, name in (
        (envelope, "chat:message"),
        (seed000, "new-message"),
        (seed002, "chat:message"),
        (seed004, "chat:message"),
        (talker, "chat:message"),
    ):
        assert (await listener.wait_for(name))["payload"]["body"] == "one each"
    await asyncio.sleep(0.2)
    for listener in (envelope, seed000, seed002, seed004, talker):
        chat = [n for n in _names(listener) if n in {"chat:message", "new-message"}]
        assert len(chat) == 1, (listener, chat)

    # Still the shared-frame path: one frame written per websocket, whatever the dialects
    # (nothing else can interleave: the fast path does not suspend).
    manager = _manager(live)
    room = f"channel:{channel['id']}"
    before = manager.frames_written
    event = envelope_of("viewers:updated", {"viewer_count": 5, "previous_count": 4})
    await manager.emit("viewers:updated", event, namespace="/", room=room)
    assert manager.frames_written - before == 5
    assert (await seed004.wait_for("viewer-joined", lambda e: e["viewerCount"] == 5)) == {
        "streamKey": stream_id,
        "viewerCount": 5,
    }
    await seed000.wait_for("viewers:updated", lambda e: e["payload"]["viewer_count"] == 5)

    # Leaving (or dropping) forgets the socket's dialect with its room.
    await seed000.client.disconnect()
    await seed004.call("leave-stream", {"streamKey": stream_id})
    await asyncio.sleep(0.1)
    variants = manager.dialects.get(("/", room), {})
    assert len(variants) == 1  # only seed 002's socket is left on another dialect


async def test_a_big_room_hears_its_count_move_but_not_each_arrival(
    tmp_path: Path, committed_database_url: str
) -> None:
    """Past `presence_events_max_viewers` nobody is told who arrives or leaves (each arrival
    would go to every viewer: N² deliveries while a big room fills); the count still moves."""
    settings = make_settings(tmp_path, committed_database_url, presence_events_max_viewers=2)
    async with serving(settings) as live:
        _, _, stream_id = await _room(live)
        first = await live.connect(await live.account())
        assert (await first.call("stream:join", {"streamId": stream_id}))["ok"]
        second_account = await live.account()
        second = await live.connect(second_account)
        assert (await second.call("stream:join", {"streamId": stream_id}))["ok"]
        # Two viewers: still a small room, the arrival is told.
        await first.wait_for(
            "viewers:joined", lambda e: e["payload"]["user_id"] == second_account.id
        )
        third_account = await live.account()
        third = await live.connect(third_account)
        joined = await third.call("stream:join", {"streamId": stream_id})
        assert joined["ok"]
        assert joined["viewer_count"] == 3
        # Left with an ack, so the room is back to two before the second viewer goes (two
        # disconnects in flight could be handled in either order).
        assert (await third.call("stream:leave", {"streamId": stream_id}))["ok"]
        await third.client.disconnect()
        # A marker after the third viewer came and went: everything before it has arrived.
        await second.client.disconnect()
        await first.wait_for("viewers:left", lambda e: e["payload"]["user_id"] == second_account.id)
        who = [e["payload"]["user_id"] for name, e in first.events if name.startswith("viewers:")]
        assert third_account.id not in who
