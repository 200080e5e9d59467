"""One live stream's media: ffmpeg does the codec work, our packagers do the rest.

ffmpeg reads the ingest (FLV from RTMP, WebM from the browser) on stdin and writes each
rendition of the ABR ladder as fragmented MP4 to its own pipe; one `Packager` per rendition
cuts segments and writes playlists to the media store. ffmpeg dying mid-stream is restarted
(the packagers mark a discontinuity); a publisher reconnecting continues the same pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from stagecast.db.base import utcnow
from stagecast.media.fmp4 import InitSegment, MediaFormatError, pipe_stream, read_fragments
from stagecast.media.ladder import (
    InputFormat,
    Rendition,
    RenditionOutput,
    Rung,
    ThumbnailOutput,
    build_ffmpeg_args,
    build_ladder,
    can_pass_through,
    render_master_playlist,
    variant_for,
)
from stagecast.media.packager import Packager, PackagerSettings, RecordingSummary
from stagecast.media.store import MediaStore

log = structlog.get_logger(__name__)

MASTER_PLAYLIST = "master.m3u8"
THUMBNAIL = "thumbnail.jpg"
# ffmpeg restarts allowed within RESTART_WINDOW seconds before the pipeline gives up.
MAX_RESTARTS = 3
RESTART_WINDOW = 60.0
STOP_TIMEOUT = 10.0
# Bits per second of each rung below the source, by short side (others are interpolated).
RUNG_BITRATES = {1080: 4_500_000, 720: 2_500_000, 480: 1_200_000, 360: 700_000, 240: 400_000}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the publisher sends, as far as the ladder needs to know."""

    video_codec: str
    audio_codec: str | None
    width: int | None = None
    height: int | None = None
    frame_rate: float = 30.0
    video_bitrate: int | None = None  # bits per second, when the encoder says
    # Its keyframes are farther apart than the server's limit (`MEDIA_MAX_KEYFRAME_SECONDS`,
    # measured by the RTMP ingest): passed through, it would make segments that long.
    keyframes_too_far: bool = False


# --- what the publisher sends ----------------------------------------------------------------

_FLV_VIDEO = {7: "h264", 12: "hevc", 2: "flv1", 4: "vp6"}
_FLV_AUDIO = {10: "aac", 2: "mp3", 11: "speex"}
_FOURCC = {"avc1": "h264", "hvc1": "hevc", "av01": "av1", "vp09": "vp9", "mp4a": "aac"}


def _codec_name(value: Any, numbered: dict[int, str]) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return numbered.get(int(value), f"flv-{int(value)}")
    if isinstance(value, str) and value:
        return _FOURCC.get(value, value.lower())
    return None


def _positive(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def source_from_metadata(metadata: dict[str, Any]) -> SourceInfo | None:
    """The source an RTMP publisher describes in onMetaData; None when it leaves codecs out."""
    video = _codec_name(metadata.get("videocodecid"), _FLV_VIDEO)
    if video is None:
        return None
    width, height = _positive(metadata.get("width")), _positive(metadata.get("height"))
    rate = _positive(metadata.get("videodatarate"))  # kilobits per second
    return SourceInfo(
        video_codec=video,
        audio_codec=_codec_name(metadata.get("audiocodecid"), _FLV_AUDIO),
        width=int(width) if width else None,
        height=int(height) if height else None,
        frame_rate=_positive(metadata.get("framerate")) or 30.0,
        video_bitrate=int(rate * 1000) if rate else None,
    )


_PROBED_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+)[^\n]*?, (\d{2,5})x(\d{2,5})")
_PROBED_FPS = re.compile(r"Stream #\d+:\d+.*?: Video: [^\n]*?([\d.]+) fps")
_PROBED_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+)")


def parse_probe(report: str) -> SourceInfo | None:
    """The source ffmpeg describes in its `-i` report; None when it found no video."""
    video = _PROBED_VIDEO.search(report)
    if video is None:
        return None
    audio = _PROBED_AUDIO.search(report)
    fps = _PROBED_FPS.search(report)
    return SourceInfo(
        video_codec=video.group(1),
        audio_codec=audio.group(1) if audio else None,
        width=int(video.group(2)),
        height=int(video.group(3)),
        frame_rate=float(fps.group(1)) if fps and float(fps.group(1)) > 0 else 30.0,
    )


async def probe_source(ffmpeg: str, data: bytes, input_format: InputFormat) -> SourceInfo | None:
    """Ask ffmpeg what the first bytes of an ingest hold (the browser sends no metadata)."""
    demuxer = "flv" if input_format == "flv" else "matroska"
    process = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-nostdin", "-f", demuxer, "-i", "pipe:0",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(data), 20)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    return parse_probe(stderr.decode(errors="replace"))


def ladder_rungs(heights: list[int]) -> list[Rung]:
    """The configured ladder heights with their bitrates."""
    return [Rung(height, _rung_bitrate(height)) for height in heights]


def _rung_bitrate(height: int) -> int:
    if height in RUNG_BITRATES:
        return RUNG_BITRATES[height]
    # Roughly proportional to the pixel count: 720p's rate scaled by (height/720)^2.
    return max(200_000, int(RUNG_BITRATES[720] * (height / 720) ** 2))


def plan_ladder(
    source: SourceInfo, heights: list[int], *, reencode_long_gops: bool = False
) -> tuple[Rendition, ...]:
    """The renditions for a source: the source itself plus every smaller configured rung.

    Without the source's size the ladder cannot be planned below it: only the source is kept.
    With `reencode_long_gops`, a source whose keyframes are too far apart is re-encoded with a
    keyframe every segment instead of passed through.
    """
    passthrough = not (reencode_long_gops and source.keyframes_too_far)
    if not source.width or not source.height:
        return build_ladder(
            width=2, height=2, frame_rate=source.frame_rate, video_codec=source.video_codec,
            video_bitrate=source.video_bitrate, rungs=[], passthrough=passthrough,
        )[:1]  # fmt: skip
    return build_ladder(
        width=source.width,
        height=source.height,
        frame_rate=source.frame_rate,
        video_codec=source.video_codec,
        video_bitrate=source.video_bitrate,
        rungs=ladder_rungs(heights),
        passthrough=passthrough,
    )


def replan_ladder(
    current: tuple[Rendition, ...],
    source: SourceInfo,
    heights: list[int],
    *,
    reencode_long_gops: bool = False,
) -> tuple[Rendition, ...]:
    """The ladder for a reconnecting source, keeping the renditions (and playlists) there are.

    When the new source gives the same renditions they are used as planned; otherwise every
    rendition is transcoded to its old size, so that each playlist goes on."""
    planned = plan_ladder(source, heights, reencode_long_gops=reencode_long_gops)
    if [r.name for r in planned] == [r.name for r in current]:
        return planned
    return tuple(replace(r, copy_video=False, frame_rate=source.frame_rate) for r in current)


# --- the pipeline ----------------------------------------------------------------------------


def media_prefix(stream_id: uuid.UUID | str) -> str:
    """Return where a stream's files live in the media store (live, then its recording)."""
    return f"live/{stream_id}"


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    ffmpeg: str
    work_dir: Path  # local scratch (the thumbnail ffmpeg writes)
    segment_seconds: float
    part_seconds: float | None  # None: plain HLS, no partial segments
    dvr_window_seconds: float
    ladder: list[int]
    thumbnail_seconds: float
    recording: bool
    reencode_long_gops: bool  # see `plan_ladder`


SegmentsChanged = Callable[[int], Awaitable[None]]


class LivePipeline:
    """ffmpeg plus a packager per rendition for one live stream, until `finish()`."""

    def __init__(
        self,
        *,
        stream_id: str,
        input_format: InputFormat,
        source: SourceInfo,
        store: MediaStore,
        config: PipelineConfig,
        started_at: datetime,
        on_segments: SegmentsChanged | None = None,
        on_failed: Callable[[str], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.input_format = input_format
        self.source = source
        self.store = store
        self.config = config
        self.started_at = started_at
        self.on_segments = on_segments
        self.on_failed = on_failed
        self.renditions = plan_ladder(
            source, config.ladder, reencode_long_gops=config.reencode_long_gops
        )
        target = min(2.0, max(1.0, config.segment_seconds))
        self.part_target = (
            None if config.part_seconds is None else min(config.part_seconds, target / 2)
        )
        settings = PackagerSettings(
            target_duration=target,
            dvr_window=config.dvr_window_seconds,
            keep_recording=config.recording,
            part_target=self.part_target,
            # Without parts ffmpeg cuts one fragment per keyframe (see build_ffmpeg_args).
            fragments_start_at_keyframes=self.part_target is None,
        )
        self.packagers = {
            r.name: Packager(
                store, f"{self.prefix}/{r.name}", started_at=started_at, settings=settings
            )
            for r in self.renditions
        }
        self.restarts = 0
        self.bytes_in = 0
        self._header = bytearray()  # replayed to a restarted ffmpeg: how to read what follows
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._thumbnails: asyncio.Task[None] | None = None
        self._closing = False
        self._planned_restart = False
        self._replay_header = False
        self._ready = asyncio.Event()  # set while an ffmpeg runs and has read the header
        self._thumbnail_mtime = 0.0
        self._failed: str | None = None
        self._failure: asyncio.Task[None] | None = None
        self._restart_times: list[float] = []
        self._master_written = False
        self._segments_seen = 0

    @property
    def prefix(self) -> str:
        return media_prefix(self.stream_id)

    @property
    def failed(self) -> str | None:
        """Why the pipeline stopped on its own (ffmpeg kept dying), or None."""
        return self._failed

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def ffmpeg_pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    @property
    def reencodes_source(self) -> bool:
        """Whether a source that could be passed through is re-encoded (for its keyframes)."""
        return can_pass_through(self.source.video_codec) and not self.renditions[0].copy_video

    @property
    def segment_count(self) -> int:
        return min((len(p.segments) for p in self.packagers.values()), default=0)

    def remember_header(self, data: bytes) -> None:
        """Bytes every ffmpeg must read first (FLV header and sequence headers, WebM header)."""
        self._header += data

    async def start(self) -> None:
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"pipeline-{self.stream_id}")
        self._thumbnails = asyncio.create_task(self._copy_thumbnails(), name="thumbnails")

    async def feed(self, data: bytes) -> None:
        """Hand ingest bytes to ffmpeg, waiting while it is behind (backpressure)."""
        self.bytes_in += len(data)
        if not self._ready.is_set():
            try:  # between two ffmpeg runs
                await asyncio.wait_for(self._ready.wait(), STOP_TIMEOUT)
            except TimeoutError:
                return
        process = self._process
        if self._closing or process is None or process.stdin is None:
            return
        try:
            process.stdin.write(data)
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # ffmpeg died; the supervisor restarts it

    async def reconnected(self, *, input_format: InputFormat, source: SourceInfo) -> None:
        """A publisher came back (maybe with another ingest or size): a new ffmpeg reads its
        stream from the start, on a new timeline (the packagers mark the discontinuity)."""
        self.input_format = input_format
        self.source = source
        self._replan()
        self._ready.clear()
        self._planned_restart = True
        self._header = bytearray()
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()

    async def keyframes_too_far(self) -> bool:
        """The source's keyframes turned out too far apart mid-stream (its first ones were
        close): re-encode its rendition from the next bytes fed on, which must start at a
        keyframe. Return whether ffmpeg restarts for it (not when re-encoding is off, or on).

        The running ffmpeg reads to the end of what it was given, so nothing is lost; the new
        one reads the stream's header first, and the playlists mark a discontinuity."""
        self.source = replace(self.source, keyframes_too_far=True)
        before = self.renditions
        self._replan()
        if self.renditions == before:
            return False
        log.info("pipeline_reencoding_source", stream_id=self.stream_id)
        process = self._process
        if process is None or process.returncode is not None or process.stdin is None:
            return True  # between two runs: the next one reads the new ladder
        self._ready.clear()
        self._planned_restart = True
        self._replay_header = True
        process.stdin.close()
        return True

    def _replan(self) -> None:
        self.renditions = replan_ladder(
            self.renditions,
            self.source,
            self.config.ladder,
            reencode_long_gops=self.config.reencode_long_gops,
        )

    async def finish(self) -> dict[str, RecordingSummary]:
        """Drain ffmpeg, store the last segments, end the playlists, write the VOD master."""
        self._closing = True
        await self._stop_ffmpeg()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._thumbnails is not None:
            self._thumbnails.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._thumbnails
        await self._copy_thumbnail_once()
        summaries = {name: await p.finish() for name, p in self.packagers.items()}
        if self.config.recording and any(s.segment_count for s in summaries.values()):
            await self._write_master(vod=True)
        return summaries

    # --- ffmpeg ---

    def _ffmpeg_args(self, fds: list[int]) -> list[str]:
        outputs = [
            RenditionOutput(rendition, f"pipe:{fd}")
            for rendition, fd in zip(self.renditions, fds, strict=True)
        ]
        thumbnail = ThumbnailOutput(
            str(self.config.work_dir / THUMBNAIL), interval=self.config.thumbnail_seconds
        )
        return build_ffmpeg_args(
            self.config.ffmpeg,
            input_format=self.input_format,
            outputs=outputs,
            audio_codec=self.source.audio_codec,
            segment_duration=self.config.segment_seconds,
            # ffmpeg closes a fragment at the first frame past -frag_duration: aim below the
            # part target so that a part never exceeds it at any common frame rate.
            fragment_duration=None if self.part_target is None else self.part_target * 0.9,
            thumbnail=thumbnail,
            loglevel="error",
        )

    async def _supervise(self) -> None:
        while not self._closing:
            pipes = [os.pipe() for _ in self.renditions]
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._ffmpeg_args([w for _, w in pipes]),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=[w for _, w in pipes],
                )
            finally:
                for _, write_end in pipes:
                    os.close(write_end)  # ffmpeg holds its own; EOF comes when it exits
            self._process = process
            packaging = [
                asyncio.create_task(self._package(name, read_end))
                for name, (read_end, _) in zip(self.packagers, pipes, strict=True)
            ]
            errors = asyncio.create_task(self._read_errors(process))
            # After a crash the publisher goes on mid-stream: the new ffmpeg first reads how.
            replay, self._replay_header = self._replay_header, False
            if replay and self._header and process.stdin is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    process.stdin.write(bytes(self._header))
                    await process.stdin.drain()
            self._ready.set()
            code = await process.wait()
            self._ready.clear()
            await asyncio.gather(*packaging, errors)
            if self._closing:
                break
            if self._planned_restart:
                self._planned_restart = False
                for packager in self.packagers.values():
                    await packager.discontinuity(wall_clock=utcnow())
                continue
            log.warning("ffmpeg_exited", stream_id=self.stream_id, code=code)
            now = time.monotonic()
            self._restart_times = [t for t in self._restart_times if now - t < RESTART_WINDOW]
            if len(self._restart_times) >= MAX_RESTARTS:
                self._failed = f"ffmpeg exited {MAX_RESTARTS + 1} times within a minute"
                log.error("pipeline_failed", stream_id=self.stream_id, reason=self._failed)
                if self.on_failed is not None:
                    # Its own task: ending the broadcast waits for this supervisor to return.
                    self._failure = asyncio.create_task(self.on_failed(self._failed))
                return
            self._restart_times.append(now)
            self.restarts += 1
            self._replay_header = True
            for packager in self.packagers.values():
                await packager.discontinuity(wall_clock=utcnow())

    async def _stop_ffmpeg(self) -> None:
        self._ready.set()  # release feeders waiting for a restart: nothing more is read
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # EOF: ffmpeg writes what it has and exits
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _read_errors(self, process: asyncio.subprocess.Process) -> None:
        if process.stderr is None:
            return
        async for line in process.stderr:
            text = line.decode(errors="replace").strip()
            if text:
                log.info("ffmpeg_said", stream_id=self.stream_id, line=text[:500])

    async def _package(self, name: str, read_end: int) -> None:
        packager = self.packagers[name]
        try:
            async with pipe_stream(read_end) as reader:
                async for item in read_fragments(reader):
                    await packager.push(item)
                    if isinstance(item, InitSegment):
                        await self._maybe_write_master()
                    else:
                        await self._segments_changed()
        except MediaFormatError as error:
            # Everything stored stays valid; the supervisor restarts ffmpeg.
            log.warning("packager_input_invalid", stream_id=self.stream_id, error=str(error))

    async def _segments_changed(self) -> None:
        count = self.segment_count
        if count != self._segments_seen:
            self._segments_seen = count
            if self.on_segments is not None:
                try:
                    await self.on_segments(count)
                except Exception:
                    log.exception("segments_listener_failed", stream_id=self.stream_id)

    # --- playlists and thumbnails ---

    async def _maybe_write_master(self) -> None:
        if self._master_written or any(p.init is None for p in self.packagers.values()):
            return
        self._master_written = True
        await self._write_master(vod=False)

    async def _write_master(self, *, vod: bool) -> None:
        playlist = "vod.m3u8" if vod else "index.m3u8"
        variants = []
        for rendition in self.renditions:
            init = self.packagers[rendition.name].init
            if init is None:
                continue
            variants.append(
                variant_for(rendition, uri=f"{rendition.name}/{playlist}", codecs=init.codecs)
            )
        text = render_master_playlist(variants)
        await self.store.write(f"{self.prefix}/{MASTER_PLAYLIST}", text.encode())

    async def _copy_thumbnails(self) -> None:
        while True:
            await asyncio.sleep(min(self.config.thumbnail_seconds, 2.0))
            try:
                await self._copy_thumbnail_once()
            except Exception:
                log.exception("thumbnail_copy_failed", stream_id=self.stream_id)

    async def _copy_thumbnail_once(self) -> None:
        path = self.config.work_dir / THUMBNAIL
        try:
            mtime = path.stat().st_mtime
            if mtime == self._thumbnail_mtime:
                return
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return
        if data:
            self._thumbnail_mtime = mtime
            await self.store.write(f"{self.prefix}/{THUMBNAIL}", data)
