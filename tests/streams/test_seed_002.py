"""Seed 002's stream calls with its own payloads: start, join, viewers, tips of an unknown
stream, its example category and tags; seed 003's stream list with the stream key."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from pathlib import Path

import httpx
from fastapi import FastAPI

from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from tests.conftest import make_settings
from tests.factories import Account, end_live, go_live, make_channel, make_stream, register
from tests.media.conftest import eventually
from tests.realtime.conftest import serving

# Seed 002's example stream.
SEED_STREAM = {
    "title": "My Amazing Stream",
    "description": "Stream description",
    "category": "entertainment",
    "tags": ["music", "dance"],
}


async def _is(value: Awaitable[object], wanted: object) -> bool:
    return await value == wanted


async def _api_key(client: httpx.AsyncClient, account: Account) -> str:
    made = await client.post(
        "/api/v1/developer/api-keys",
        headers=account.headers,
        json={"name": "bot", "scopes": ["read", "write"]},
    )
    key: str = made.json()["key"]
    return key


async def test_the_seed_example_stream_is_accepted_as_it_is(client: httpx.AsyncClient) -> None:
    account = await register(client)
    created = await client.post("/api/v1/streams", headers=account.headers, json=SEED_STREAM)
    assert created.status_code == 201, created.text
    stream = created.json()
    assert stream["category"] == "entertainment"
    assert stream["tags"] == ["dance", "music"]
    categories = (await client.get("/api/v1/categories")).json()
    assert "entertainment" in {c["slug"] for c in categories["data"]}


async def test_start_gives_the_broadcaster_everything_and_readies_this_stream(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    await make_channel(client, owner)
    older = await make_stream(client, owner, **SEED_STREAM)
    await make_stream(client, owner, title="Created later")

    started = await client.post(f"/api/v1/streams/{older['id']}/start", headers=owner.headers)
    assert started.status_code == 200, started.text
    assert started.headers["cache-control"] == "no-store"
    body = started.json()
    key = (await client.get("/api/v1/live/streams/me/key", headers=owner.headers)).json()
    assert body["stream_key"] == key["stream_key"]
    assert body["rtmp_server"] == "rtmp://testserver:1935/live"
    assert body["rtmp_url"] == f"rtmp://testserver:1935/live/{key['stream_key']}"
    assert body["browser_ingest"] == {
        "socket_path": "/socket.io",
        "start_event": "start-stream",
        "data_event": "stream-data",
        "end_event": "end-stream",
    }
    assert body["webrtc"]["available"] is False
    assert body["webrtc"]["protocol"] == "whip"
    assert body["webrtc"]["url"] is None
    assert (body["stream_id"], body["status"], body["already_live"]) == (
        older["id"],
        "scheduled",
        False,
    )
    assert body["playback_url"] == f"http://testserver/hls/{older['id']}/master.m3u8"

    # The next publish goes live as the stream that was started, not the newest scheduled one.
    live_id = await go_live(app, older["channel"]["slug"])
    assert live_id == older["id"]
    again = await client.post(f"/api/v1/streams/{older['id']}/start", headers=owner.headers)
    assert again.json()["already_live"] is True
    assert again.json()["status"] == "live"
    await end_live(app, live_id)
    ended = await client.post(f"/api/v1/streams/{older['id']}/start", headers=owner.headers)
    assert ended.status_code == 409
    assert ended.json()["code"] == "STREAM_ENDED"


async def test_start_is_for_the_owners_session_only(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, stranger = await register(client), await register(client)
    channel = await make_channel(client, owner)
    stream = await make_stream(client, owner)
    path = f"/api/v1/streams/{stream['id']}/start"

    anonymous = await client.post(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    foreign = await client.post(path, headers=stranger.headers)
    assert foreign.status_code == 403
    assert "stream_key" not in foreign.text
    by_key = await client.post(path, headers={"X-API-Key": await _api_key(client, owner)})
    assert by_key.status_code == 403
    unknown = await client.post(f"/api/v1/streams/{uuid.uuid4()}/start", headers=owner.headers)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "STREAM_NOT_FOUND"

    # Another stream of the channel on air: this one cannot be readied (and stays scheduled).
    other = await make_stream(client, owner)
    assert await go_live(app, channel["slug"]) == other["id"]
    busy = await client.post(path, headers=owner.headers)
    assert busy.status_code == 409
    assert busy.json()["code"] == "CHANNEL_ALREADY_LIVE"
    assert (await client.get(f"/api/v1/streams/{stream['id']}")).json()["status"] == "scheduled"


async def test_join_answers_playback_and_a_socket_token_to_anyone(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, viewer = await register(client), await register(client)
    channel = await make_channel(client, owner)
    stream_id = await go_live(app, channel["slug"])
    path = f"/api/v1/streams/{stream_id}/join"

    anonymous = await client.post(path)
    assert anonymous.status_code == 200, anonymous.text
    body = anonymous.json()
    assert (body["stream_id"], body["channel_id"], body["status"], body["is_live"]) == (
        stream_id,
        channel["id"],
        "live",
        True,
    )
    assert body["playback"] == {
        "master_playlist": f"http://testserver/hls/{stream_id}/master.m3u8",
        "low_latency": True,
        "livestream_playlist": f"http://testserver/livestream/{stream_id}/stream.m3u8",
        "thumbnail": f"http://testserver/hls/{stream_id}/thumbnail.jpg",
    }
    assert body["ice_servers"] == []
    assert body["webrtc"]["available"] is False
    assert body["webrtc"]["protocol"] == "whep"
    assert body["viewer_token"] is None
    assert body["socket"] == {
        "path": "/socket.io",
        "join_event": "stream:join",
        "join_payload": {"streamId": stream_id},
    }

    signed_in = await client.post(path, headers=viewer.headers)
    token = signed_in.json()["viewer_token"]
    assert signed_in.json()["viewer_token_expires_in"] == 300
    assert signed_in.headers["cache-control"] == "no-store"
    runtime: Runtime = app.state.runtime
    claims = runtime.tokens.decode_access(token, token_type="chat")  # the chat token, reused
    assert str(claims.user_id) == viewer.id
    # A chat token is not an access token: it opens a socket, not the API.
    refused = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401

    by_key = await client.post(path, headers={"X-API-Key": await _api_key(client, viewer)})
    assert by_key.status_code == 200
    assert by_key.json()["viewer_token"] is None


async def test_join_of_an_unknown_or_ended_stream_is_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    channel = await make_channel(client, owner)
    unknown = await client.post(f"/api/v1/streams/{uuid.uuid4()}/join")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "STREAM_NOT_FOUND"
    stream_id = await go_live(app, channel["slug"])
    await end_live(app, stream_id)
    ended = await client.post(f"/api/v1/streams/{stream_id}/join", headers=owner.headers)
    assert ended.status_code == 409
    assert ended.json()["code"] == "STREAM_ENDED"
    bad_token = await client.post(
        f"/api/v1/streams/{stream_id}/join", headers={"Authorization": "Bearer nope"}
    )
    assert bad_token.status_code == 401


async def test_tips_of_an_unknown_stream_are_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/streams/{uuid.uuid4()}/tips")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "STREAM_NOT_FOUND"


async def test_my_streams_carry_the_stream_key_for_the_owner_only(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    await make_channel(client, owner)
    first, second = await make_stream(client, owner), await make_stream(client, owner)
    mine = await client.get("/api/v1/live/streams/me", headers=owner.headers)
    assert mine.status_code == 200
    assert mine.headers["cache-control"] == "no-store"
    key = (await client.get("/api/v1/live/streams/me/key", headers=owner.headers)).json()
    listed = mine.json()["data"]
    assert [s["id"] for s in listed] == [second["id"], first["id"]]
    assert {s["stream_key"] for s in listed} == {key["stream_key"]}
    # As /me/key refuses API keys, the list shows them no key.
    by_key = await client.get(
        "/api/v1/live/streams/me", headers={"X-API-Key": await _api_key(client, owner)}
    )
    assert by_key.status_code == 200
    assert [s["stream_key"] for s in by_key.json()["data"]] == [None, None]
    assert key["stream_key"] not in by_key.text
    # The public stream pages never show it.
    public = await client.get(f"/api/v1/streams/{first['id']}")
    assert "stream_key" not in public.json()


async def test_viewers_lists_signed_in_viewers_for_the_owner_and_moderators(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with serving(make_settings(tmp_path, committed_database_url)) as live:
        owner, moderator, fan, lurker, stranger = [await live.account() for _ in range(5)]
        channel = await make_channel(live.http, owner)
        stream_id = await go_live(live.app, channel["slug"])
        appointed = await live.http.post(
            f"/api/v1/channels/{channel['id']}/moderators",
            headers=owner.headers,
            json={"user_id": moderator.id},
        )
        assert appointed.status_code in {200, 201}, appointed.text

        # `fan` follows seed 002's flow: join over HTTP, then the socket with the viewer token.
        joined = await live.http.post(f"/api/v1/streams/{stream_id}/join", headers=fan.headers)
        fan_socket = await live.connect(token=joined.json()["viewer_token"])
        assert (await fan_socket.call("stream:join", {"streamId": stream_id}))["ok"]
        # `lurker` joins by socket only; an anonymous socket is counted but never listed.
        lurker_socket = await live.connect(lurker)
        assert (await lurker_socket.call("stream:join", {"streamId": stream_id}))["ok"]
        anonymous = await live.connect()
        assert (await anonymous.call("stream:join", {"streamId": stream_id}))["ok"]

        path = f"/api/v1/streams/{stream_id}/viewers"
        for who in (owner, moderator):
            answer = await live.http.get(path, headers=who.headers)
            assert answer.status_code == 200
            listed = answer.json()["viewers"]
            assert [v["user_id"] for v in listed] == [fan.id, lurker.id]
            assert listed[0]["username"] == fan.username
            assert listed[0]["display_name"]
            assert listed[0]["joined_at"] is not None
            assert listed[1]["joined_at"] is None  # never called POST .../join
            assert answer.json()["has_more"] is False
        limited = (await live.http.get(f"{path}?limit=1", headers=owner.headers)).json()
        assert [v["user_id"] for v in limited["viewers"]] == [fan.id]
        assert limited["has_more"] is True

        for headers in ({}, stranger.headers, fan.headers):
            public = await live.http.get(path, headers=headers)
            assert public.status_code == 200
            assert set(public.json()) == {
                "stream_id",
                "status",
                "viewer_count",
                "peak_viewer_count",
            }
        assert (await live.http.get(f"{path}?limit=0", headers=owner.headers)).status_code == 422
        unknown = await live.http.get(f"/api/v1/streams/{uuid.uuid4()}/viewers")
        assert unknown.json()["code"] == "STREAM_NOT_FOUND"

        # A viewer who leaves is no longer listed (across nodes, by the next presence tick).
        await lurker_socket.call("stream:leave", {"streamId": stream_id})

        async def listed_ids() -> list[str]:
            after = (await live.http.get(path, headers=owner.headers)).json()
            return [v["user_id"] for v in after["viewers"]]

        assert await eventually(lambda: _is(listed_ids(), [fan.id]), within=10)


async def test_joining_twice_keeps_one_record(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner, viewer = await register(client), await register(client)
    channel = await make_channel(client, owner)
    stream_id = await go_live(app, channel["slug"])
    for _ in range(2):
        joined = await client.post(f"/api/v1/streams/{stream_id}/join", headers=viewer.headers)
        assert joined.status_code == 200
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stream = await streams.get_stream(session, uuid.UUID(stream_id))
        listed, more = await streams.list_viewers(
            session, stream=stream, user_ids=[uuid.UUID(viewer.id)], limit=10
        )
    assert [str(v.user_id) for v in listed] == [viewer.id]
    assert more is False
