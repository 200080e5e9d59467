"""A served app with RTMP on, publishers made of real ffmpeg, and HLS read back by ffmpeg."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest

from stagecast.config import MediaSettings, S3Settings, Settings
from stagecast.media.s3 import S3MediaStore
from stagecast.media.service import LiveMedia
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import Account, make_channel
from tests.realtime.conftest import LiveServer, free_port, serving

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# A 320x240 test pattern with a tone: keyframes every second, like OBS's default profile.
TEST_PATTERN = [
    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
]  # fmt: skip
H264_AAC = [
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
]  # fmt: skip


def x264_keyframes(*keyframes: str) -> list[str]:
    """H.264 and AAC with these keyframe options, and no scene-cut keyframes between them."""
    return [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        *keyframes, "-sc_threshold", "0", "-c:a", "aac", "-b:a", "96k",
    ]  # fmt: skip


# OBS's default Keyframe Interval ("0 = auto"): 250 frames, 8.3 s at 30 fps.
OBS_DEFAULT_KEYFRAMES = x264_keyframes("-g", "250", "-keyint_min", "250")


@dataclass
class MediaServer:
    live: LiveServer
    owner: Account
    channel: dict[str, Any]
    stream_key: str

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.live.app.state.runtime
        return runtime

    @property
    def media(self) -> LiveMedia:
        assert self.runtime.media is not None
        return self.runtime.media

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.runtime.rtmp_port}/live/{self.stream_key}"

    async def channel_streams(self) -> list[dict[str, Any]]:
        answer = await self.live.http.get(f"/api/v1/channels/{self.channel['id']}/streams")
        assert answer.status_code == 200, answer.text
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    async def live_stream(self) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            live = [s for s in await self.channel_streams() if s["status"] == "live"]
            return live[0] if live else None

        return await eventually(found)


def media_settings(
    tmp_path: Path, database_url: str, *, rung: int = 120, **overrides: object
) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        rtmp_enabled=True,
        rtmp_host="127.0.0.1",
        rtmp_port=0,
        # The source plus one small rung: the ladder is exercised, the machine spared.
        media=MediaSettings(ladder=[rung], thumbnail_seconds=1, dvr_window_seconds=30),
        **overrides,
    )


@asynccontextmanager
async def serve_media(settings: Settings) -> AsyncIterator[MediaServer]:
    """The app of `settings` served, with a channel owner and the channel's stream key."""
    async with serving(settings) as live:
        owner = await live.account()
        channel = await make_channel(live.http, owner)
        key = await live.http.get("/api/v1/live/streams/me/key", headers=owner.headers)
        assert key.status_code == 200, key.text
        server = MediaServer(live, owner, channel, key.json()["stream_key"])
        # The API tells the port the RTMP server bound, not the 0 the settings asked for.
        assert key.json()["rtmp_url"] == server.rtmp_url
        yield server


@pytest.fixture
async def media_server(tmp_path: Path, committed_database_url: str) -> AsyncIterator[MediaServer]:
    async with serve_media(media_settings(tmp_path, committed_database_url)) as server:
        yield server


BUCKET = "stagecast-media"
CREDENTIALS = {"access_key_id": "test-key", "secret_access_key": "test-secret"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in its own process, on a free port, for this test run."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise RuntimeError("moto_server exited") from None
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(10)


async def open_s3_store(endpoint: str, prefix: str) -> S3MediaStore:
    store = S3MediaStore(
        bucket=BUCKET, prefix=prefix, endpoint_url=endpoint, region="us-east-1", **CREDENTIALS
    )
    await store.open()
    """An S3 store on moto's bucket (made if missing), opened; the caller closes it."""
    with contextlib.suppress(store.client.exceptions.BucketAlreadyOwnedByYou):
        await store.client.create_bucket(Bucket=BUCKET)
    return store


@pytest.fixture(params=["local", "s3"])
async def any_store_media_server(
    request: pytest.FixtureRequest, tmp_path: Path, committed_database_url: str, s3_endpoint: str
) -> AsyncIterator[MediaServer]:
    """A media server on the local store, then on S3 (moto's bucket, this test's prefix)."""
    overrides: dict[str, object] = {}
    if request.param == "s3":
        await (await open_s3_store(s3_endpoint, "")).close()  # the bucket exists
        overrides["s3"] = S3Settings(
            bucket=BUCKET, prefix=f"tests/{tmp_path.name}", endpoint_url=s3_endpoint,
            region="us-east-1", **CREDENTIALS,
        )  # fmt: skip
    settings = media_settings(tmp_path, committed_database_url, **overrides)
    settings.media.store = request.param
    async with serve_media(settings) as server:
        yield server


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, within: float = 30, every: float = 0.2
) -> Any:
    """The first truthy answer of `probe`, polling up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        answer = await probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {within} s")
        await asyncio.sleep(every)


async def run_ffmpeg(*args: str, within: float = 60) -> tuple[int, str]:
    """Run ffmpeg to the end: (exit code, what it printed)."""
    process = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


async def start_publisher(
    url: str, seconds: float, codecs: list[str] = H264_AAC
) -> asyncio.subprocess.Process:
    """ffmpeg publishing the test pattern over RTMP in real time."""
    return await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        *TEST_PATTERN, "-t", str(seconds), *codecs, "-f", "flv", url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def media_duration(report: str) -> float:
    """The duration ffmpeg reports having read (its last `time=`)."""
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", report)
    assert times, report[-2000:]
    hours, minutes, seconds = times[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def publish_briefly(url: str) -> tuple[int, str]:
    """One second of the test pattern as fast as it goes: for publishes meant to be refused."""
    return await run_ffmpeg(
        "-loglevel", "error", *TEST_PATTERN, "-t", "1", *H264_AAC, "-f", "flv", url, within=30
    )  # fmt: skip


async def webm_chunks(tmp_path: Path, seconds: int) -> list[bytes]:
    """A WebM recording cut into one slice per second, the way MediaRecorder hands them out."""
    path = tmp_path / "tab.webm"
    code, report = await run_ffmpeg(
        "-loglevel", "error", *TEST_PATTERN, "-t", str(seconds),
        "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
        "-c:a", "libopus", "-f", "webm", str(path),
    )  # fmt: skip
    assert code == 0, report
    data = path.read_bytes()
    size = -(-len(data) // seconds)
    return [data[i : i + size] for i in range(0, len(data), size)]
