"""Seek previews of a recording: one JPEG sprite of small thumbnails, and a WebVTT track whose
cues point into it (`sprite.jpg#xywh=x,y,w,h`), the form players' seek bars read.

ffmpeg reads the recording's lowest rendition as one fragmented MP4 (its init segment, then
its media segments, in playlist order) on stdin, so the store can be a local directory or S3;
the `select` and `tile` filters draw the whole sprite in one pass (from keyframes alone when
they are dense enough: several times faster).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass

from stagecast.media.store import MediaStore

SPRITE = "sprite.jpg"
TRACK = "previews.vtt"
COLUMNS = 10
_MAP = '#EXT-X-MAP:URI="'


class PreviewsFailed(Exception):
    """ffmpeg could not draw the sprite (or the recording has no media)."""


@dataclass(frozen=True)
class PreviewLayout:
    interval: float  # seconds of the recording between thumbnails
    count: int
    columns: int
    rows: int
    width: int
    height: int


def preview_layout(
    duration: float, *, every: float, max_count: int, width: int, aspect: float = 16 / 9
) -> PreviewLayout:
    """One thumbnail every `every` seconds, spaced wider when that would pass `max_count`."""
    interval = max(every, duration / max_count) if duration > 0 else every
    count = max(1, math.ceil(duration / interval)) if duration > 0 else 1
    count = min(count, max_count)
    columns = min(COLUMNS, count)
    height = max(2, round(width / aspect / 2) * 2)
    return PreviewLayout(interval, count, columns, math.ceil(count / columns), width, height)


def sprite_args(ffmpeg: str, layout: PreviewLayout, *, keyframes_only: bool = False) -> list[str]:
    """ffmpeg reading fragmented MP4 on stdin, writing the sprite JPEG to stdout.

    Thumbnail n is the first frame at or after n intervals (so that a thumbnail a little late
    never shifts the ones after it). `keyframes_only` decodes keyframes alone, several times
    faster, when they are close enough together that the first one past each mark is near it.
    """
    w, h = layout.width, layout.height
    filters = ",".join(
        [
            "setpts=PTS-STARTPTS",
            f"select='gte(t\\,selected_n*{layout.interval:.3f}-0.01)'",
            f"scale={w}:{h}:force_original_aspect_ratio=decrease",
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2",
            f"tile={layout.columns}x{layout.rows}",
        ]
    )
    skip = ["-skip_frame", "nokey"] if keyframes_only else []
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        *skip, "-f", "mp4", "-i", "pipe:0",
        "-an", "-vf", filters, "-fps_mode", "passthrough", "-frames:v", "1", "-q:v", "5",
        "-f", "image2", "-c:v", "mjpeg", "pipe:1",
    ]  # fmt: skip


def longest_segment(playlist: str) -> float:
    """The longest `EXTINF` of a playlist: segments start at keyframes, so keyframes are never
    farther apart than this."""
    durations = [
        float(line.strip()[len("#EXTINF:") :].split(",", 1)[0])
        for line in playlist.splitlines()
        if line.strip().startswith("#EXTINF:")
    ]
    return max(durations, default=0.0)


def webvtt(layout: PreviewLayout, duration: float, sprite_url: str = SPRITE) -> str:
    """The WebVTT track: a cue per thumbnail, its region of the sprite as a media fragment."""
    lines = ["WEBVTT", ""]
    for index in range(layout.count):
        start = index * layout.interval
        if start >= duration and index:
            break
        end = duration if index == layout.count - 1 else min(start + layout.interval, duration)
        x = (index % layout.columns) * layout.width
        y = (index // layout.columns) * layout.height
        lines += [
            f"{_timestamp(start)} --> {_timestamp(max(end, start + 0.001))}",
            f"{sprite_url}#xywh={x},{y},{layout.width},{layout.height}",
            "",
        ]
    return "\n".join(lines)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def recording_files(playlist: str) -> list[str]:
    """The files of a media playlist in play order: each init segment where it begins, then
    the media segments (relative names, as the playlist gives them)."""
    files: list[str] = []
    for raw in playlist.splitlines():
        line = raw.strip()
        if line.startswith(_MAP):
            uri = line[len(_MAP) :].split('"', 1)[0]
            if uri not in files:
                files.append(uri)
        elif line and not line.startswith("#"):
            files.append(line)
    return files


async def render_sprite(
    ffmpeg: str, store: MediaStore, playlist_key: str, layout: PreviewLayout
) -> bytes:
    """Feed a rendition's recording to ffmpeg and return the sprite it draws."""
    directory = playlist_key.rpartition("/")[0]
    playlist = (await store.read(playlist_key)).decode()
    files = recording_files(playlist)
    if not files:
        raise PreviewsFailed("the recording lists no media")
    # Keyframes at most half an interval apart: decoding them alone is close enough.
    keyframes_only = longest_segment(playlist) <= layout.interval / 2
    process = await asyncio.create_subprocess_exec(
        *sprite_args(ffmpeg, layout, keyframes_only=keyframes_only),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
    if stdin is None or stdout is None or stderr is None:  # PIPE gives all three
        raise PreviewsFailed("ffmpeg's pipes were not opened")

    async def feed() -> None:
        try:
            for name in files:
                stdin.write(await store.read(f"{directory}/{name}"))
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # ffmpeg had its frame (-frames:v 1) and left
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.close()

    feeding = asyncio.create_task(feed())
    try:
        sprite, errors = await asyncio.gather(stdout.read(), stderr.read())
        await process.wait()
        await feeding
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        feeding.cancel()
    if process.returncode or not sprite:
        raise PreviewsFailed(f"ffmpeg exited {process.returncode}: {errors[-300:]!r}")
    return sprite
