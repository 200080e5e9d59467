"""Streams and stream keys: scheduling, the live lifecycle, tags, keys that stop working."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from stagecast.channels import service as channels
from stagecast.crypto import SecretBox
from stagecast.db.base import utcnow
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import Stream, StreamKey
from tests.factories import end_live, go_live, make_channel, make_stream, register


async def test_stream_key_is_stable_and_shows_ingest_urls(client: httpx.AsyncClient) -> None:
    account = await register(client)
    first = await client.get("/api/v1/live/streams/me/key", headers=account.headers)
    assert first.status_code == 200
    key = first.json()
    assert key["stream_key"].startswith("live_")
    assert key["rtmp_server"] == "rtmp://testserver:1935/live"
    assert key["rtmp_url"] == f"rtmp://testserver:1935/live/{key['stream_key']}"
    assert key["browser_ingest"]["start_event"] == "start-stream"
    assert first.headers["cache-control"] == "no-store"
    second = await client.get("/api/v1/live/streams/me/key", headers=account.headers)
    assert second.json()["stream_key"] == key["stream_key"]
    # The channel was made for the account on first use (seed 003: "creates if none").
    channel = await client.get(f"/api/v1/channels/{key['channel_id']}")
    assert channel.json()["owner"]["id"] == account.id


async def test_regenerated_keys_stop_working_at_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    old = (await client.get("/api/v1/live/streams/me/key", headers=account.headers)).json()
    regenerated = await client.post(
        "/api/v1/live/streams/me/key/regenerate", headers=account.headers
    )
    assert regenerated.status_code == 200
    new = regenerated.json()
    assert new["stream_key"] != old["stream_key"]
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        channel = await streams.verify_stream_key(session, runtime.secrets, new["stream_key"])
        assert str(channel.id) == new["channel_id"]
        with pytest.raises(streams.StreamKeyRejected):
            await streams.verify_stream_key(session, runtime.secrets, old["stream_key"])
    after = await client.get("/api/v1/live/streams/me/key", headers=account.headers)
    assert after.json()["stream_key"] == new["stream_key"]


@pytest.mark.parametrize(
    "raw", ["", "live_", "live_unknown-key", "nolive_prefix", "live_" + "x" * 200, "\x00\xff"]
)
async def test_unknown_keys_are_rejected(app: FastAPI, raw: str) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        with pytest.raises(streams.StreamKeyRejected) as caught:
            await streams.verify_stream_key(session, runtime.secrets, raw)
    assert caught.value.code == "STREAM_KEY_REJECTED"
    assert caught.value.status == 403


async def test_database_alone_does_not_reveal_the_key(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    raw = (await client.get("/api/v1/live/streams/me/key", headers=account.headers)).json()[
        "stream_key"
    ]
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stored = (await session.scalars(select(StreamKey))).all()
        dump = " ".join(f"{k.key_hash} {k.key_ciphertext}" for k in stored)
        rows = await session.execute(text("SELECT * FROM stream_keys"))
        dump += " ".join(str(v) for row in rows for v in row)
    assert raw not in dump
    secret_part = raw.removeprefix("live_")
    assert secret_part not in dump
    # Another install's secret cannot read or match it.
    stranger = SecretBox(b"another-server-secret")
    assert all(stranger.decrypt("stream-key", k.key_ciphertext) is None for k in stored)
    assert all(stranger.lookup_hash("stream-key", raw) != k.key_hash for k in stored)


async def test_api_keys_cannot_read_stream_keys(client: httpx.AsyncClient) -> None:
    account = await register(client)
    raw = (
        await client.post(
            "/api/v1/developer/api-keys",
            headers=account.headers,
            json={"name": "bot", "scopes": ["read", "write"]},
        )
    ).json()["key"]
    response = await client.get("/api/v1/live/streams/me/key", headers={"X-API-Key": raw})
    assert response.status_code == 403


async def test_create_update_and_cancel_a_scheduled_stream(client: httpx.AsyncClient) -> None:
    account = await register(client)
    await make_channel(client, account, category="music", language="fr")
    when = (utcnow() + timedelta(days=1)).isoformat()
    stream = await make_stream(
        client,
        account,
        title="Late night jazz",
        tags=["Jazz", "lo fi", "jazz"],
        scheduled_for=when,
    )
    assert stream["status"] == "scheduled"
    assert stream["tags"] == ["jazz", "lo-fi"]
    assert stream["category"] == "music"  # from the channel's defaults
    assert stream["language"] == "fr"
    assert stream["host_id"] == account.id
    updated = await client.patch(
        f"/api/v1/streams/{stream['id']}",
        headers=account.headers,
        json={"title": "Jazz til dawn", "tags": ["jazz"]},
    )
    assert updated.status_code == 200
    assert updated.json()["tags"] == ["jazz"]
    assert updated.json()["title"] == "Jazz til dawn"
    cancelled = await client.delete(f"/api/v1/streams/{stream['id']}", headers=account.headers)
    assert cancelled.status_code == 204
    assert (await client.get(f"/api/v1/streams/{stream['id']}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 141},
        {"title": "ok", "tags": ["bad tag!"]},
        {"title": "ok", "tags": [f"t{i}" for i in range(11)]},
        {"title": "ok", "category": "nope"},
        {"title": "ok", "language": "english"},
        {"title": "ok", "viewer_count": 1000},
        {"title": "ok", "scheduled_for": "tomorrow"},
    ],
)
async def test_bad_stream_input_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    account = await register(client)
    response = await client.post("/api/v1/streams", headers=account.headers, json=body)
    assert response.status_code == 422, response.text
    mine = await client.get("/api/v1/live/streams/me", headers=account.headers)
    assert mine.json()["data"] == []


async def test_live_lifecycle_driven_by_the_pipeline(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    channel = await make_channel(client, account)
    await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        headers=account.headers,
        json={"title_template": "{channel} is on air"},
    )
    stream_id = await go_live(app, channel["slug"], viewers=12)
    live = (await client.get(f"/api/v1/streams/{stream_id}")).json()
    assert live["status"] == "live"
    assert live["title"] == f"{channel['name']} is on air"
    assert live["started_at"] is not None
    assert (await client.get(f"/api/v1/channels/{channel['id']}")).json()["live_stream_id"] == (
        stream_id
    )
    # A reconnect while live continues the same stream.
    assert await go_live(app, channel["slug"]) == stream_id
    viewers = (await client.get(f"/api/v1/streams/{stream_id}/viewers")).json()
    assert viewers == {
        "stream_id": stream_id,
        "status": "live",
        "viewer_count": 12,
        "peak_viewer_count": 12,
    }
    ended = await client.delete(f"/api/v1/streams/{stream_id}", headers=account.headers)
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert ended.json()["viewer_count"] == 0
    assert ended.json()["peak_viewer_count"] == 12
    editing = await client.patch(
        f"/api/v1/streams/{stream_id}", headers=account.headers, json={"title": "late edit"}
    )
    assert editing.status_code == 409
    assert editing.json()["code"] == "STREAM_ENDED"
    # The next time the channel goes live it is a new stream.
    assert await go_live(app, channel["slug"]) != stream_id


async def test_going_live_uses_the_scheduled_stream(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    channel = await make_channel(client, account)
    scheduled = await make_stream(client, account, title="Announced show", tags=["chess"])
    assert await go_live(app, channel["slug"]) == scheduled["id"]


async def test_viewer_time_gives_average_viewers(app: FastAPI, client: httpx.AsyncClient) -> None:
    account = await register(client)
    channel = await make_channel(client, account)
    runtime: Runtime = app.state.runtime
    start = utcnow() - timedelta(hours=1)
    async with runtime.db.session() as session, session.begin():
        record = await channels.get_channel(session, channel["id"])
        stream, fresh = await streams.mark_stream_live(session, channel=record, now=start)
        assert fresh
        await streams.record_viewer_count(session, stream=stream, count=10, now=start)
        await streams.record_viewer_count(
            session, stream=stream, count=30, now=start + timedelta(minutes=30)
        )
        await streams.mark_stream_ended(session, stream=stream, now=start + timedelta(hours=1))
        stream_id = stream.id
    analytics = (
        await client.get(f"/api/v1/channels/{channel['id']}/analytics", headers=account.headers)
    ).json()
    [row] = analytics["recent_streams"]
    assert row["stream_id"] == str(stream_id)
    assert row["duration_seconds"] == 3600
    assert row["peak_viewers"] == 30
    assert row["average_viewers"] == 20.0  # 10 for 30 min, 30 for 30 min
    assert analytics["hours_streamed"] == 1.0
    async with runtime.db.session() as session, session.begin():
        assert (await session.get_one(Stream, stream_id)).viewer_count == 0


async def test_seed_003_live_stream_routes(client: httpx.AsyncClient, app: FastAPI) -> None:
    account = await register(client)
    channel = await make_channel(client, account)
    created = await client.post(
        "/api/v1/live/streams", headers=account.headers, json={"title": "Via live routes"}
    )
    assert created.status_code == 201
    stream_id = created.json()["id"]
    put = await client.put(
        f"/api/v1/live/streams/{stream_id}", headers=account.headers, json={"title": "Renamed"}
    )
    assert put.json()["title"] == "Renamed"
    assert (await client.get(f"/api/v1/live/streams/{stream_id}")).json()["title"] == "Renamed"
    listed = (await client.get("/api/v1/live/streams")).json()["data"]
    assert stream_id in {s["id"] for s in listed}
    assert (await client.get("/api/v1/live/streams?is_live=true")).json()["data"] == []
    await go_live(app, channel["slug"])
    live = (await client.get("/api/v1/live/streams?is_live=true")).json()["data"]
    assert [s["id"] for s in live] == [stream_id]
    mine = (await client.get("/api/v1/live/streams/me", headers=account.headers)).json()["data"]
    assert [s["id"] for s in mine] == [stream_id]
    assert (await client.get("/api/v1/streams")).json()["data"][0]["id"] == stream_id
    await end_live(app, stream_id)
    assert (await client.get("/api/v1/live/streams?is_live=true")).json()["data"] == []


async def test_unknown_stream_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/streams/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "STREAM_NOT_FOUND"
    malformed = await client.get("/api/v1/streams/not-a-uuid")
    assert malformed.status_code == 422
