"""Clips over a served app with RTMP on (tests/media's), and how to read a clip's MP4."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.media.conftest import (
    MediaServer,
    eventually,
    media_settings,
    run_ffmpeg,
    serve_media,
)


@pytest.fixture
async def media_server(tmp_path: Path, committed_database_url: str) -> AsyncIterator[MediaServer]:
    async with serve_media(media_settings(tmp_path, committed_database_url)) as server:
        yield server


async def published(server: MediaServer, stream_id: str, *, seconds: float) -> None:
    """Wait until the stream's top rendition has `seconds` of segments stored."""

    async def enough() -> bool:
        packager = server.media.packager(uuid.UUID(stream_id), "source")
        return packager is not None and packager.duration >= seconds

    await eventually(enough, within=60)


async def wait_for_mp4(http: httpx.AsyncClient, clip_id: str) -> dict[str, Any]:
    """The clip once its MP4 render is done (ready or failed)."""

    async def rendered() -> dict[str, Any] | None:
        clip: dict[str, Any] = (await http.get(f"/api/v1/clips/{clip_id}")).json()
        return clip if clip["mp4_state"] != "pending" else None

    clip: dict[str, Any] = await eventually(rendered, within=120)
    assert clip["mp4_state"] == "ready", clip
    return clip


async def mp4_frames(path: Path) -> int:
    """How many video frames an MP4 holds (ffmpeg reads them without decoding)."""
    code, report = await run_ffmpeg(
        "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"
    )
    assert code == 0, report[-2000:]
    frames = re.findall(r"frame=\s*(\d+)", report)
    assert frames, report[-2000:]
    return int(frames[-1])
