"""Recordings made of real media: ffmpeg writes a fragmented-MP4 HLS recording into the app's
media store where the packager would, and the VOD row is recorded as the pipeline does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from stagecast.chat.models import ChatMessage
from stagecast.media.pipeline import MASTER_PLAYLIST, THUMBNAIL, media_prefix
from stagecast.media.store import LocalMediaStore
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import Stream
from stagecast.vods import service as vods
from tests.factories import Account, go_live, make_channel, register
from tests.media.conftest import (
    H264_AAC,
    TEST_PATTERN,
    media_server,  # noqa: F401 (the fixture, for these tests)
    run_ffmpeg,
)
from tests.realtime.conftest import live  # noqa: F401 (the fixture, for these tests)

RENDITION = "240p"


@dataclass
class Recording:
    owner: Account
    channel: dict[str, Any]
    stream_id: str
    vod: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.vod["id"])


def store_of(app: FastAPI) -> LocalMediaStore:
    runtime: Runtime = app.state.runtime
    assert runtime.media is not None
    store = runtime.media.store
    assert isinstance(store, LocalMediaStore)
    return store


async def make_recording(
    app: FastAPI, client: httpx.AsyncClient, *, seconds: int = 6, owner: Account | None = None
) -> Recording:
    """A channel that streamed `seconds` of test pattern and kept it as a VOD."""
    owner = owner or await register(client)
    channel = await make_channel(client, owner)
    stream_id = await go_live(app, channel["slug"])
    store = store_of(app)
    prefix = media_prefix(stream_id)
    directory = store.path_for(f"{prefix}/{RENDITION}/vod.m3u8").parent
    directory.mkdir(parents=True, exist_ok=True)
    code, output = await run_ffmpeg(
        *TEST_PATTERN, "-t", str(seconds), *H264_AAC,
        "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(directory / "seg_%d.m4s"),
        str(directory / "vod.m3u8"),
    )  # fmt: skip
    assert code == 0, output
    await store.write(
        f"{prefix}/{MASTER_PLAYLIST}",
        (
            "#EXTM3U\n#EXT-X-VERSION:7\n"
            '#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=320x240,CODECS="avc1.42c00d,mp4a.40.2"\n'
            f"{RENDITION}/vod.m3u8\n"
        ).encode(),
    )
    thumbnail = str(store.path_for(f"{prefix}/{THUMBNAIL}"))
    code, output = await run_ffmpeg(*TEST_PATTERN[:4], "-frames:v", "1", "-f", "image2", thumbnail)
    assert code == 0, output
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stream = await streams.get_stream(session, uuid.UUID(stream_id))
        await streams.mark_stream_ended(session, stream=stream)
        vod = await vods.record_vod(
            session,
            stream=stream,
            duration_seconds=float(seconds),
            size_bytes=sum(p.stat().st_size for p in directory.iterdir()),
            playlist_key=f"{prefix}/{MASTER_PLAYLIST}",
            thumbnail_key=f"{prefix}/{THUMBNAIL}",
            renditions=[RENDITION],
        )
        vod_id = vod.id
    answer = await client.get(f"/api/v1/vods/{vod_id}")
    assert answer.status_code == 200, answer.text
    return Recording(owner, channel, stream_id, answer.json())


async def say_in_chat(
    app: FastAPI, recording: Recording, user_id: str, body: str, at: float
) -> str:
    """A chat message of the recorded stream, sent `at` seconds after it went live."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stream = await session.get_one(Stream, uuid.UUID(recording.stream_id))
        assert stream.started_at is not None
        message = ChatMessage(
            channel_id=stream.channel_id,
            stream_id=stream.id,
            user_id=uuid.UUID(user_id),
            body=body,
            created_at=stream.started_at + timedelta(seconds=at),
        )
        session.add(message)
        await session.flush()
        return str(message.id)
