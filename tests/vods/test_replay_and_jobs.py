"""Chat replay with offsets into the recording, retention by channel setting and platform
default (clips' hook first), and seek previews drawn by real ffmpeg."""

from __future__ import annotations

import struct
import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from stagecast.accounts.models import User
from stagecast.channels.models import Channel
from stagecast.chat import service as chat
from stagecast.db.base import utcnow
from stagecast.media.pipeline import media_prefix
from stagecast.media.playlists import RecordedSpan
from stagecast.runtime import Runtime
from stagecast.streams.models import Stream
from stagecast.vods import jobs
from stagecast.vods import service as vods
from stagecast.vods.models import Vod
from tests.factories import register
from tests.vods.conftest import make_recording, say_in_chat, store_of


async def test_chat_replay_gives_offsets_and_leaves_removed_messages_out(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=6)
    fan, troll = await register(client), await register(client)
    runtime: Runtime = app.state.runtime
    await say_in_chat(app, recording, fan.id, "before the clear", 0.2)
    async with runtime.db.session() as session, session.begin():
        owner = await session.get_one(User, uuid.UUID(recording.owner.id))
        channel = await session.get_one(Channel, uuid.UUID(recording.channel["id"]))
        await chat.clear_chat(session, actor=owner, channel=channel)
    hello = await say_in_chat(app, recording, fan.id, "hello", 1.0)
    deleted = await say_in_chat(app, recording, fan.id, "oops", 1.5)
    await say_in_chat(app, recording, troll.id, "spam spam", 2.0)
    middle = await say_in_chat(app, recording, fan.id, "nice play", 3.25)
    late = await say_in_chat(app, recording, fan.id, "gg", 5.5)
    async with runtime.db.session() as session, session.begin():
        owner = await session.get_one(User, uuid.UUID(recording.owner.id))
        await chat.delete_message(session, actor=owner, message_id=uuid.UUID(deleted))
    banned = await client.post(
        f"/api/v1/channels/{recording.channel['id']}/bans",
        json={"user_id": troll.id},
        headers=recording.owner.headers,
    )
    assert banned.status_code == 201, banned.text

    url = f"/api/v1/vods/{recording.id}/chat"
    everything = await client.get(url)
    assert everything.status_code == 200, everything.text
    rows = everything.json()["data"]
    assert [(m["id"], m["body"], m["offset_seconds"]) for m in rows] == [
        (hello, "hello", 1.0),
        (middle, "nice play", 3.25),
        (late, "gg", 5.5),
    ]
    assert rows[0]["author"]["username"] == fan.username

    window = await client.get(url, params={"from": 3, "to": 5})
    assert [m["id"] for m in window.json()["data"]] == [middle]
    page = await client.get(url, params={"limit": 2})
    assert [m["id"] for m in page.json()["data"]] == [hello, middle]
    assert page.json()["has_more"] is True
    rest = await client.get(url, params={"limit": 2, "cursor": page.json()["next_cursor"]})
    assert [m["id"] for m in rest.json()["data"]] == [late]
    assert rest.json()["has_more"] is False

    for params in ({"from": -1}, {"to": "soon"}, {"from": 4, "to": 2}, {"cursor": "nonsense"}):
        bad = await client.get(url, params=params)
        assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR"), params
    assert (await client.get(f"/api/v1/vods/{uuid.uuid4()}/chat")).status_code == 404


async def _vod_ids(app: FastAPI) -> set[str]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        return {str(v) for v in (await session.scalars(select(Vod.id))).all()}


async def test_retention_removes_old_recordings_by_channel_setting_and_default(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    short = await make_recording(app, client, seconds=2)
    default = await make_recording(app, client, seconds=2)
    forever = await make_recording(app, client, seconds=2)
    for recording, days in ((short, 3), (forever, 0)):
        patched = await client.patch(
            f"/api/v1/channels/{recording.channel['id']}/settings",
            json={"vod_retention_days": days},
            headers=recording.owner.headers,
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["vod_retention_days"] == days
    bad = await client.patch(
        f"/api/v1/channels/{short.channel['id']}/settings",
        json={"vod_retention_days": -1},
        headers=short.owner.headers,
    )
    assert bad.status_code == 422
    runtime: Runtime = app.state.runtime
    store = store_of(app)
    hooked: list[str] = []

    async def keep_clips(session: object, hook_store: object, stream_id: uuid.UUID) -> None:
        hooked.append(str(stream_id))

    runtime.before_vod_media_withdrawn.append(keep_clips)
    everyone = {short.id, default.id, forever.id}
    try:
        # The platform default (0: keep) leaves the default channel's recording.
        await jobs.run_once(runtime, now=utcnow() + timedelta(days=2))
        assert everyone <= await _vod_ids(app)
        await jobs.run_once(runtime, now=utcnow() + timedelta(days=4))
        left = await _vod_ids(app)
        assert short.id not in left
        assert {default.id, forever.id} <= left
        assert hooked == [short.stream_id]
        assert await store.list_keys(f"{media_prefix(short.stream_id)}/") == []
        assert await store.list_keys(f"{media_prefix(default.stream_id)}/")

        runtime.settings.vods.retention_days = 30
        await jobs.run_once(runtime, now=utcnow() + timedelta(days=31))
        left = await _vod_ids(app)
        assert default.id not in left
        assert forever.id in left
        assert hooked == [short.stream_id, default.stream_id]
    finally:
        runtime.before_vod_media_withdrawn.remove(keep_clips)
        runtime.settings.vods.retention_days = 0


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame marker."""
    assert data[:2] == b"\xff\xd8"
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("no start-of-frame marker")


async def test_seek_previews_are_a_sprite_and_a_webvtt_track(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=12)
    assert recording.vod["previews_url"] is None
    runtime: Runtime = app.state.runtime
    await jobs.run_once(runtime)
    shown = (await client.get(f"/api/v1/vods/{recording.id}")).json()
    assert shown["previews_url"] == f"/hls/{recording.stream_id}/previews/previews.vtt"
    track = await client.get(shown["previews_url"])
    assert track.status_code == 200
    assert track.headers["content-type"].startswith("text/vtt")
    lines = track.text.splitlines()
    assert lines[0] == "WEBVTT"
    cues = [(line, lines[i + 1]) for i, line in enumerate(lines) if "-->" in line]
    # One thumbnail every 5 s of a 12 s recording: at 0, 5 and 10 s.
    assert [c[0] for c in cues] == [
        "00:00:00.000 --> 00:00:05.000",
        "00:00:05.000 --> 00:00:10.000",
        "00:00:10.000 --> 00:00:12.000",
    ]
    assert [c[1] for c in cues] == [
        "sprite.jpg#xywh=0,0,160,90",
        "sprite.jpg#xywh=160,0,160,90",
        "sprite.jpg#xywh=320,0,160,90",
    ]
    sprite = await client.get(shown["preview_sprite_url"])
    assert sprite.status_code == 200
    assert sprite.headers["content-type"] == "image/jpeg"
    assert _jpeg_size(sprite.content) == (480, 90)

    # The sprite hides with its recording.
    await client.patch(
        f"/api/v1/vods/{recording.id}",
        json={"visibility": "private"},
        headers=recording.owner.headers,
    )
    assert (await client.get(shown["preview_sprite_url"])).status_code == 404


async def test_previews_on_demand_for_recordings_the_job_skips(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=4)
    runtime: Runtime = app.state.runtime
    # A recording from before previews existed: the job only takes new ones.
    async with runtime.db.session() as session, session.begin():
        vod = await session.get_one(Vod, uuid.UUID(recording.id))
        vod.created_at = utcnow() - timedelta(days=30)
    await jobs.run_once(runtime)
    assert (await client.get(f"/api/v1/vods/{recording.id}")).json()["previews_url"] is None

    asked = await client.post(f"/api/v1/vods/{recording.id}/previews")
    assert asked.status_code == 202, asked.text
    made = (await client.get(f"/api/v1/vods/{recording.id}")).json()
    assert made["previews_url"] is not None
    again = await client.post(f"/api/v1/vods/{recording.id}/previews")
    assert again.status_code == 200
    assert (await client.get(made["previews_url"])).status_code == 200
    assert (await client.post(f"/api/v1/vods/{uuid.uuid4()}/previews")).status_code == 404


async def test_a_recording_without_media_fails_its_previews_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=2)
    store = store_of(app)
    for key in await store.list_keys(f"{media_prefix(recording.stream_id)}/240p/"):
        if key.endswith(".m4s"):
            await store.delete(key)
    runtime: Runtime = app.state.runtime
    assert await jobs.make_previews(runtime, uuid.UUID(recording.id)) is False
    async with runtime.db.read_session() as session, session.begin():
        vod = await session.get_one(Vod, uuid.UUID(recording.id))
        assert vod.previews_failed_at is not None
        assert vod.previews_key is None


async def test_chat_replay_skips_the_gap_a_reconnect_left(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=8)
    fan = await register(client)
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stream = await session.get_one(Stream, uuid.UUID(recording.stream_id))
        assert stream.started_at is not None
        began = stream.started_at
        # 4 s recorded, the publisher away for 10 s, then 4 s more.
        await vods.record_vod(
            session, stream=stream, duration_seconds=8, size_bytes=1,
            playlist_key=f"{media_prefix(recording.stream_id)}/master.m3u8",
            thumbnail_key=None, renditions=["240p"],
            timeline=[
                RecordedSpan(0.0, began, 4.0),
                RecordedSpan(4.0, began + timedelta(seconds=14), 4.0),
            ],
        )  # fmt: skip
    before = await say_in_chat(app, recording, fan.id, "before the drop", 2.0)
    away = await say_in_chat(app, recording, fan.id, "are you there?", 9.0)
    back = await say_in_chat(app, recording, fan.id, "welcome back", 16.0)

    url = f"/api/v1/vods/{recording.id}/chat"
    rows = (await client.get(url)).json()["data"]
    # Said during the gap: shown where the recording resumes.
    assert [(m["id"], m["offset_seconds"]) for m in rows] == [
        (before, 2.0),
        (away, 4.0),
        (back, 6.0),
    ]
    after_gap = (await client.get(url, params={"from": 5, "to": 8})).json()["data"]
    assert [m["id"] for m in after_gap] == [back]
    at_the_seam = (await client.get(url, params={"from": 3, "to": 4})).json()["data"]
    assert [m["id"] for m in at_the_seam] == [away]
    from_the_seam = (await client.get(url, params={"from": 4})).json()["data"]
    assert [m["id"] for m in from_the_seam] == [away, back]


async def test_previews_closer_than_the_keyframes_decode_every_frame(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=4)
    runtime: Runtime = app.state.runtime
    runtime.settings.vods.preview_seconds = 1  # keyframes every second: too sparse to skip to
    try:
        assert await jobs.make_previews(runtime, uuid.UUID(recording.id))
    finally:
        runtime.settings.vods.preview_seconds = 5
    shown = (await client.get(f"/api/v1/vods/{recording.id}")).json()
    track = (await client.get(shown["previews_url"])).text
    assert track.count("-->") == 4
    sprite = await client.get(shown["preview_sprite_url"])
    assert _jpeg_size(sprite.content) == (640, 90)
