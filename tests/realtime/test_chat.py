"""Chat over real sockets: join, send, delete, clear, history, and every kind of bad input."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from tests.factories import Account, go_live, make_channel
from tests.realtime.conftest import LiveServer


async def _room(live: LiveServer) -> tuple[Account, str, str]:
    """A live channel: (owner's account, channel id, stream id)."""
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    stream_id = await go_live(live.app, channel["slug"])
    return owner, channel["id"], stream_id


async def test_join_send_and_receive(live: LiveServer) -> None:
    _, channel_id, stream_id = await _room(live)
    viewer = await live.account()
    watcher = await live.connect()  # anonymous: may watch and read
    talker = await live.connect(viewer)

    joined = await watcher.call("stream:join", {"streamId": stream_id})
    assert joined["ok"] is True
    assert (joined["channel_id"], joined["stream_id"], joined["is_live"]) == (
        channel_id,
        stream_id,
        True,
    )
    assert (await talker.call("stream:join", {"stream_id": stream_id}))["ok"]

    sent = await talker.call(
        "chat:send",
        {"streamId": stream_id, "message": "  hello @someone see https://x.example/a scHype  "},
    )
    assert sent["ok"] is True, sent
    message = sent["message"]
    assert message["body"] == "hello @someone see https://x.example/a scHype"
    assert [f["type"] for f in message["fragments"]] == [
        "text",
        "mention",
        "text",
        "link",
        "text",
        "emote",
    ]
    assert message["author"]["username"] == viewer.username

    event = await watcher.wait_for("chat:message")
    assert event["type"] == "chat:message"
    assert event["payload"]["id"] == message["id"]
    assert "timestamp" in event

    history = (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()
    assert [m["id"] for m in history["data"]] == [message["id"]]


async def test_owner_and_moderator_badges(live: LiveServer) -> None:
    owner, channel_id, stream_id = await _room(live)
    mod = await live.account()
    response = await live.http.post(
        f"/api/v1/channels/{channel_id}/moderators",
        headers=owner.headers,
        json={"username": mod.username},
    )
    assert response.status_code == 200
    for account, badge in [(owner, "broadcaster"), (mod, "moderator")]:
        client = await live.connect(account)
        await client.call("stream:join", {"streamId": stream_id})
        sent = await client.call("chat:send", {"message": "hi"})
        assert sent["message"]["author"]["badges"] == [badge]


async def test_anonymous_cannot_send(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    anonymous = await live.connect()
    await anonymous.call("stream:join", {"streamId": stream_id})
    answer = await anonymous.call("chat:send", {"message": "hi"})
    assert answer["ok"] is False
    assert answer["error"]["code"] == "AUTHENTICATION_REQUIRED"
    assert (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"] == []


async def test_bad_tokens_are_refused_at_the_handshake(live: LiveServer) -> None:
    for token in ["nonsense", "x" * 5000]:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await live.connect(token=token)


async def test_chat_token_authenticates_the_socket(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    viewer = await live.account()
    issued = await live.http.get("/api/v1/chat/token", headers=viewer.headers)
    assert issued.status_code == 200
    assert issued.json()["expires_in"] == 300
    client = await live.connect(token=issued.json()["token"])
    await client.call("stream:join", {"streamId": stream_id})
    sent = await client.call("chat:send", {"message": "via chat token"})
    assert sent["ok"]
    assert sent["message"]["author"]["id"] == viewer.id
    # A chat token is not an access token for the HTTP API.
    me = await live.http.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {issued.json()['token']}"}
    )
    assert me.status_code == 401


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("just a string", "VALIDATION_ERROR"),
        (["a", "list"], "VALIDATION_ERROR"),
        ({}, "VALIDATION_ERROR"),
        ({"message": 42}, "VALIDATION_ERROR"),
        ({"message": b"\x00\x01binary"}, "VALIDATION_ERROR"),
        ({"message": "   "}, "VALIDATION_ERROR"),
        ({"message": "x" * 501}, "MESSAGE_TOO_LONG"),
        ({"message": "hi", "unexpected": True}, "VALIDATION_ERROR"),
        ({"message": "hi", "streamId": "not-a-uuid"}, "VALIDATION_ERROR"),
    ],
)
async def test_malformed_messages_get_error_acks(
    live: LiveServer, payload: object, code: str
) -> None:
    _, _, stream_id = await _room(live)
    viewer = await live.account()
    other = await live.connect(await live.account())
    client = await live.connect(viewer)
    await client.call("stream:join", {"streamId": stream_id})
    await other.call("stream:join", {"streamId": stream_id})
    answer = await client.call("chat:send", payload)
    assert answer["ok"] is False
    assert answer["error"]["code"] == code
    assert answer["error"]["status"] in (400, 422)
    # Nothing stored or broadcast, and the connection and the room still work.
    assert (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"] == []
    assert (await client.call("chat:send", {"message": "still here"}))["ok"]
    await other.wait_for("chat:message")
    assert len(other.received("chat:message")) == 1


async def test_html_is_stored_raw_and_sent_as_text(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    client = await live.connect(await live.account())
    await client.call("stream:join", {"streamId": stream_id})
    raw = "<script>alert('x')</script> <img src=x onerror=alert(1)>"
    sent = await client.call("chat:send", {"message": raw})
    assert sent["message"]["body"] == raw
    assert all(f["type"] == "text" for f in sent["message"]["fragments"])
    direction_trick = "abc\u202edcba\u0000"
    cleaned = await client.call("chat:send", {"message": direction_trick})
    assert cleaned["message"]["body"] == "abcdcba"


async def test_sending_to_a_room_not_joined(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    _, _, other_stream = await _room(live)
    client = await live.connect(await live.account())
    assert (await client.call("chat:send", {"message": "hi"}))["error"]["code"] == (
        "VALIDATION_ERROR"
    )
    await client.call("stream:join", {"streamId": stream_id})
    elsewhere = await client.call("chat:send", {"streamId": other_stream, "message": "hi"})
    assert elsewhere["ok"] is False
    assert "Join" in elsewhere["error"]["detail"]
    assert (await live.http.get(f"/api/v1/streams/{other_stream}/chat")).json()["data"] == []
    missing = await client.call("stream:join", {"streamId": "00000000-0000-7000-8000-000000000000"})
    assert missing["error"]["code"] == "STREAM_NOT_FOUND"


async def test_flooding_is_rate_limited(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    client = await live.connect(await live.account())
    await client.call("stream:join", {"streamId": stream_id})
    answers = [await client.call("chat:send", {"message": f"m{i}"}) for i in range(7)]
    assert [a["ok"] for a in answers] == [True] * 5 + [False, False]
    assert answers[5]["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    stored = (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"]
    assert len(stored) == 5


async def test_delete_own_or_as_moderator(live: LiveServer) -> None:
    owner, _, stream_id = await _room(live)
    alice_account = await live.account()
    alice = await live.connect(alice_account)
    bob = await live.connect(await live.account())
    mod = await live.connect(owner)
    for client in (alice, bob, mod):
        await client.call("stream:join", {"streamId": stream_id})
    first = (await alice.call("chat:send", {"message": "first"}))["message"]["id"]
    second = (await alice.call("chat:send", {"message": "second"}))["message"]["id"]

    forged = await bob.call("chat:delete", {"messageId": first})
    assert forged["error"]["code"] == "PERMISSION_DENIED"
    assert (await alice.call("delete-message", {"messageId": first}))["ok"]
    assert (await mod.call("chat:delete", {"message_id": second}))["ok"]
    deleted = await bob.wait_for("chat:deleted", lambda e: e["payload"]["message_id"] == second)
    assert deleted["payload"]["deleted_by"] == owner.id
    again = await alice.call("chat:delete", {"messageId": first})
    assert again["error"]["code"] == "MESSAGE_NOT_FOUND"
    assert (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"] == []


async def test_clear_is_for_moderators(live: LiveServer) -> None:
    owner, _, stream_id = await _room(live)
    viewer = await live.connect(await live.account())
    mod = await live.connect(owner)
    for client in (viewer, mod):
        await client.call("stream:join", {"streamId": stream_id})
    await viewer.call("chat:send", {"message": "one"})
    refused = await viewer.call("chat:clear", {})
    assert refused["error"]["code"] == "MODERATOR_REQUIRED"
    cleared = await mod.call("chat:clear", {"streamId": stream_id})
    assert cleared == {"ok": True, "cleared": 1}
    await viewer.wait_for("chat:cleared")
    assert (await live.http.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"] == []


async def test_replies_and_history_pages(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    client = await live.connect(await live.account())
    await client.call("stream:join", {"streamId": stream_id})
    first = (await client.call("chat:send", {"message": "question?"}))["message"]["id"]
    reply = await client.call("chat:send", {"message": "answer", "replyTo": first})
    assert reply["message"]["reply_to"] == first
    bad_reply = await client.call(
        "chat:send", {"message": "x", "replyTo": "00000000-0000-7000-8000-000000000000"}
    )
    assert bad_reply["error"]["code"] == "MESSAGE_NOT_FOUND"
    page = (await live.http.get(f"/api/v1/streams/{stream_id}/chat?limit=1")).json()
    assert page["data"][0]["body"] == "answer"
    assert page["has_more"] is True
    rest = (
        await live.http.get(
            f"/api/v1/streams/{stream_id}/chat?limit=1&cursor={page['next_cursor']}"
        )
    ).json()
    assert rest["data"][0]["body"] == "question?"


async def test_emotes_of_a_message_are_counted_for_overlays(live: LiveServer) -> None:
    _, channel_id, stream_id = await _room(live)
    overlay = await live.connect()
    old_client = await live.connect()
    talker_account = await live.account()
    talker = await live.connect(talker_account)
    assert (await overlay.call("stream:join", {"streamId": stream_id}))["ok"]
    assert (await old_client.call("join-stream", {"streamId": stream_id}))["ok"]
    assert (await talker.call("stream:join", {"streamId": stream_id}))["ok"]

    plain = await talker.call("chat:send", {"message": "no emotes here, schype"})
    sent = await talker.call("chat:send", {"message": "scHype gg scGG scHype scHype!"})
    assert plain["ok"]
    assert sent["ok"]
    emote = await overlay.wait_for("chat:emote")
    assert emote["type"] == "chat:emote"
    assert emote["payload"] == {
        "message_id": sent["message"]["id"],
        "channel_id": channel_id,
        "stream_id": stream_id,
        "user_id": talker_account.id,
        # `scHype!` is text, not an emote: emotes are whole words, as in `fragments`.
        "emotes": [
            {"code": "scHype", "fallback": "🎉", "count": 2},
            {"code": "scGG", "fallback": "🏆", "count": 1},
        ],
    }
    # Seed 000 names it chat:emote too; a message without emotes sends none.
    assert (await old_client.wait_for("chat:emote"))["payload"]["message_id"] == sent["message"][
        "id"
    ]
    await asyncio.sleep(0.2)
    assert len(overlay.received("chat:emote")) == 1


async def test_disconnects_keep_the_room_working(live: LiveServer) -> None:
    _, _, stream_id = await _room(live)
    leaver = await live.connect(await live.account())
    stayer = await live.connect(await live.account())
    talker = await live.connect(await live.account())
    for client in (leaver, stayer, talker):
        await client.call("stream:join", {"streamId": stream_id})
    await leaver.client.disconnect()
    await asyncio.sleep(0.1)
    assert (await talker.call("chat:send", {"message": "after a disconnect"}))["ok"]
    await stayer.wait_for("chat:message")


async def test_foreign_origins_are_refused(live: LiveServer) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            live.url,
            headers={"Origin": "https://evil.example"},
            transports=["websocket"],
            wait_timeout=5,
        )
    same = socketio.AsyncClient(reconnection=False)
    await same.connect(live.url, headers={"Origin": live.url}, transports=["websocket"])
    live.clients.append(same)
    assert same.connected
