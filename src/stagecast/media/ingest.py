"""Ingest: what RTMP publishers and browser tabs send, handed to their broadcast's pipeline.

Both ingests do the same three things: claim the channel (stream key, or the signed-in owner
for the browser), learn what the source is before ffmpeg starts (RTMP's onMetaData, else a
probe of the first bytes), then feed bytes with backpressure, dropping a publisher that sends
faster than real time or over the bitrate limit.

RTMP also learns how far apart the source's keyframes are before ffmpeg starts: it waits for
the second keyframe, or until the first is `MEDIA_MAX_KEYFRAME_SECONDS` old (then they are too
far apart, whenever the next comes). That delays going live by one keyframe interval of at
most that, and lets the ladder re-encode a long-GOP source from its first frame instead of
restarting ffmpeg later; only a source whose first keyframes were close and later ones are not
gets that restart, at the keyframe that shows it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from stagecast.db.base import utcnow
from stagecast.errors import AppError
from stagecast.media.keyframes import KeyframeCadence, StreamHealth
from stagecast.media.ladder import can_pass_through
from stagecast.media.pipeline import LivePipeline, probe_source, source_from_metadata
from stagecast.media.rtmp import (
    FlvTag,
    PublishRefused,
    PublishRequest,
    RtmpLimits,
    RtmpServer,
    TagType,
)
from stagecast.media.rtmp import flv_header as make_flv_header
from stagecast.media.service import Broadcast, LiveMedia, MediaRejected

log = structlog.get_logger(__name__)

# Tags buffered while the source is learnt (up to its second keyframe, or the first one's
# age reaching the keyframe limit: a few seconds at any frame rate).
MAX_PENDING_TAGS = 600
# How far media time may run ahead of the wall clock before the publisher is dropped.
MAX_AHEAD_MS = 15_000
BITRATE_WINDOW = 10.0
BITRATE_SLACK = 1.5  # encoders overshoot; a sustained 1.5x the limit is refused
WEBM_MAGIC = b"\x1a\x45\xdf\xa3"
# Browser chunks arrive about once a second; this many in BITRATE_WINDOW is faster than live.
MAX_CHUNKS_PER_WINDOW = 30
# The first chunks of a browser stream held while they are too short to probe.
MAX_HEAD_CHUNKS = 5


class IngestMeter:
    """Refuses a publisher that sends over the bitrate limit for a whole window."""

    def __init__(self, max_bitrate: int) -> None:
        self.max_bytes = max_bitrate / 8 * BITRATE_WINDOW * BITRATE_SLACK
        self.window_start = time.monotonic()
        self.bytes = 0
        self.chunks = 0

    def add(self, size: int) -> None:
        now = time.monotonic()
        if now - self.window_start >= BITRATE_WINDOW:
            self.window_start, self.bytes, self.chunks = now, 0, 0
        self.bytes += size
        self.chunks += 1
        if self.bytes > self.max_bytes:
            raise MediaRejected(
                f"More than {int(self.max_bytes * 8 / BITRATE_WINDOW / 1000)} kb/s sent; "
                "lower the bitrate"
            )


class RtmpPublish:
    """The sink of one RTMP publish: buffers until the source's keyframes are known, then
    feeds ffmpeg."""

    def __init__(self, media: LiveMedia, broadcast: Broadcast) -> None:
        self.media = media
        self.broadcast = broadcast
        self.metadata: dict[str, Any] = {}
        self.pending: list[FlvTag] = []
        self.pipeline: LivePipeline | None = None
        self.meter = IngestMeter(media.settings.max_input_bitrate)
        self.keyframes = KeyframeCadence(media.settings.max_keyframe_seconds)
        self._clock: tuple[int, float] | None = None  # (first media ms, its wall time)
        self._first_keyframe: FlvTag | None = None
        self._first_keyframe_at: datetime | None = None  # the stream's start, on the wall

    async def on_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata

    async def on_tag(self, tag: FlvTag) -> None:
        try:
            self._check_pace(tag)
            self.meter.add(len(tag.payload))
            learnt = self.keyframes.observe(tag)
            if self.pipeline is not None:
                await self._follow_keyframes(self.pipeline, tag, learnt=learnt)
                await self.pipeline.feed(tag.to_bytes())
                return
            self.pending.append(tag)
            if self._ready_to_start(tag):
                await self._start()
        except AppError as error:
            raise PublishRefused(error.detail) from error

    def _ready_to_start(self, tag: FlvTag) -> bool:
        if len(self.pending) >= MAX_PENDING_TAGS:
            return True
        if tag.tag_type != TagType.VIDEO or tag.is_sequence_header:
            return False
        if self._first_keyframe is None and tag.is_keyframe:
            self._first_keyframe, self._first_keyframe_at = tag, utcnow()
        first = self._first_keyframe
        if first is None:
            return False
        # Only a source passed through keeps its keyframes: no need to wait for the rest.
        return self.keyframes.known or not can_pass_through(first.video_codec or "")

    async def _follow_keyframes(self, pipeline: LivePipeline, tag: FlvTag, *, learnt: bool) -> None:
        """Tell the creator what was learnt; re-encode at the keyframe that shows they are too
        far apart (this tag, fed next, starts the new ffmpeg's input)."""
        keyframe = tag.is_keyframe and not tag.is_sequence_header
        if keyframe and self.keyframes.too_long and not pipeline.source.keyframes_too_far:
            learnt = await pipeline.keyframes_too_far() or learnt
        if learnt:
            await self._report_health(pipeline)

    async def _report_health(self, pipeline: LivePipeline) -> None:
        await self.media.report_health(
            self.broadcast,
            StreamHealth(
                keyframe_interval=self.keyframes.interval,
                max_keyframe_interval=self.keyframes.limit,
                keyframes_too_far=self.keyframes.too_long
                and can_pass_through(pipeline.source.video_codec),
                reencoding=pipeline.reencodes_source,
            ),
        )

    async def on_close(self, reason: str) -> None:
        await self.media.release(self.broadcast, clean=reason == "unpublished")

    def _check_pace(self, tag: FlvTag) -> None:
        now = time.monotonic()
        if self._clock is None:
            self._clock = (tag.timestamp, now)
            return
        first_ms, first_wall = self._clock
        ahead = (tag.timestamp - first_ms) - (now - first_wall) * 1000
        if ahead > MAX_AHEAD_MS:
            raise MediaRejected("Media is arriving faster than real time; publish live media")

    async def _start(self) -> None:
        has_audio = any(t.tag_type == TagType.AUDIO for t in self.pending)
        header = make_flv_header(audio=has_audio, video=True)
        setup = b"".join(
            t.to_bytes()
            for t in self.pending
            if t.tag_type == TagType.SCRIPT or t.is_sequence_header
        )
        everything = header + b"".join(t.to_bytes() for t in self.pending)
        source = source_from_metadata(self.metadata) or await probe_source(
            self.media.ffmpeg, everything, "flv"
        )
        if source is None:
            raise MediaRejected("No video found in the published stream")
        if source.audio_codec is None and has_audio:
            audio = next(t.audio_codec for t in self.pending if t.tag_type == TagType.AUDIO)
            source = replace(source, audio_codec=audio)
        source = replace(source, keyframes_too_far=self.keyframes.too_long)
        # The media waited for is fed to ffmpeg with the rest: the stream (its recording,
        # its program date-times) started when the first keyframe came, not now.
        pipeline = await self.media.go_live(
            self.broadcast, input_format="flv", source=source, began_at=self._first_keyframe_at
        )
        pipeline.remember_header(header + setup)
        self.pipeline = pipeline
        self.pending = []
        await self._report_health(pipeline)
        await pipeline.feed(everything)


def rtmp_server(media: LiveMedia) -> RtmpServer:
    """The RTMP listener of `stagecast serve`, publishing into `media`."""
    settings = media.runtime.settings

    async def authorize(request: PublishRequest) -> RtmpPublish:
        async def disconnect(reason: str) -> None:
            await server.disconnect(request.stream_key, reason)

        try:
            broadcast = await media.claim(
                kind="rtmp", stream_key=request.stream_key, disconnect=disconnect
            )
        except AppError as error:
            log.info("rtmp_publish_refused", peer=request.peer, code=error.code)
            raise PublishRefused(error.detail) from error
        return RtmpPublish(media, broadcast)

    limits = RtmpLimits(
        max_connections=settings.rtmp_max_connections,
        max_connections_per_ip=settings.rtmp_max_connections_per_ip,
        max_message_size=settings.resolved_rtmp_max_message_bytes,
        unauthenticated_max_bytes=settings.rtmp_unauthenticated_max_bytes,
        handshake_timeout=settings.rtmp_handshake_timeout_seconds,
        idle_timeout=settings.rtmp_idle_timeout_seconds,
        auth_timeout=settings.rtmp_auth_timeout_seconds,
        read_timeout=settings.media.publisher_timeout_seconds,
    )
    server = RtmpServer(authorize, host=settings.rtmp_host, port=settings.rtmp_port, limits=limits)
    return server


class BrowserPublish:
    """One browser tab's broadcast: WebM chunks from MediaRecorder, seed 004's protocol."""

    def __init__(self, media: LiveMedia, broadcast: Broadcast, stream_key: str | None) -> None:
        self.media = media
        self.broadcast = broadcast
        self.stream_key = stream_key
        self.pipeline: LivePipeline | None = None
        self.meter = IngestMeter(media.settings.max_input_bitrate)
        self.last_chunk_at = time.monotonic()
        self.head = b""  # the stream's first chunks, until ffmpeg knows the source
        self.head_chunks = 0

    async def feed(self, chunk: bytes) -> None:
        """Take the next chunk; the first must start a WebM stream (EBML header)."""
        self.last_chunk_at = time.monotonic()
        if len(chunk) > self.media.settings.max_chunk_bytes:
            raise MediaRejected(
                f"Chunks may be at most {self.media.settings.max_chunk_bytes} bytes"
            )
        self.meter.add(len(chunk))
        if self.meter.chunks > MAX_CHUNKS_PER_WINDOW:
            raise MediaRejected("Chunks are arriving faster than real time")
        if self.pipeline is not None:
            await self.pipeline.feed(chunk)
            return
        # MediaRecorder may hand out the stream's start in pieces (Chromium's first slice can
        # be a single byte of the header): hold them until ffmpeg can tell what they are.
        self.head += chunk
        self.head_chunks += 1
        if not self.head.startswith(WEBM_MAGIC[: len(self.head)]):
            raise MediaRejected("The first chunk must start a WebM stream (MediaRecorder's)")
        if len(self.head) < len(WEBM_MAGIC):
            return
        source = await probe_source(self.media.ffmpeg, self.head, "webm")
        if source is None:
            if self.head_chunks < MAX_HEAD_CHUNKS:
                return
            raise MediaRejected("No video found in the first WebM chunks")
        head, self.head = self.head, b""
        pipeline = await self.media.go_live(self.broadcast, input_format="webm", source=source)
        pipeline.remember_header(head)
        self.pipeline = pipeline
        await pipeline.feed(head)
