"""A clip's MP4 and thumbnail: its segments joined, then cut to the exact frames by ffmpeg.

The whole clip is re-encoded (x264 `ultrafast`), not only the GOPs at its edges: at 30 s of
720p it takes a few seconds (bench/clips.py measures it beside a stream copy), and one encode
gives one clean stream. Stream-copying the middle and re-encoding the edges would
splice three encodes with different parameter sets into one track, which players handle
unevenly; its gain is a few seconds of CPU per clip. Seeking is ffmpeg's accurate input seek:
it decodes from the keyframe the segment starts with and drops the frames before the start.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stagecast.clips.ranges import Segment

# ultrafast: 30 s of 720p in about a third of veryfast's time (measured: 7 s against 24 s on a
# loaded 2-core machine), at a larger file; CRF 23 keeps the picture.
VIDEO_CODEC = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p"]
AUDIO_CODEC = ["-c:a", "aac", "-b:a", "128k"]
THUMBNAIL_HEIGHT = 360
RENDER_TIMEOUT = 300.0
RENDER_NICENESS = 10
_FRAMES = re.compile(r"frame=\s*(\d+)")
_OUTPUT_FPS = re.compile(r"Output #0.*?Video: [^\n]*?([\d.]+) fps", re.DOTALL)


class RenderFailed(Exception):
    """ffmpeg could not render the clip."""


@dataclass(frozen=True, slots=True)
class Rendered:
    mp4: Path
    thumbnail: Path
    frames: int
    frame_rate: float

    @property
    def duration(self) -> float:
        return self.frames / self.frame_rate if self.frame_rate else 0.0


def source_groups(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Runs of segments one fragmented MP4 can hold: same init, no discontinuity between."""
    groups: list[list[Segment]] = []
    for segment in segments:
        if groups and segment.map_uri == groups[-1][-1].map_uri and not segment.discontinuity:
            groups[-1].append(segment)
        else:
            groups.append([segment])
    return groups


def build_render_args(
    ffmpeg: str,
    *,
    source: Path,
    concat: bool,
    seek: float,
    duration: float,
    mp4: Path,
    thumbnail: Path,
) -> list[str]:
    """ffmpeg's arguments: `duration` seconds from `seek` into `source` as an MP4 (fast
    start), and a JPEG of the frame in the middle."""
    demuxer = ["-f", "concat", "-safe", "0"] if concat else []
    middle = f"{duration / 2:.3f}"
    scale = f"scale=-2:'min({THUMBNAIL_HEIGHT},ih)'"
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "info",
        *demuxer, "-ss", f"{seek:.3f}", "-i", str(source),
        "-map", "0:v:0", "-map", "0:a:0?", "-t", f"{duration:.3f}",
        *VIDEO_CODEC, *AUDIO_CODEC, "-movflags", "+faststart", str(mp4),
        "-map", "0:v:0", "-t", f"{duration:.3f}",
        "-vf", f"select=gte(t\\,{middle}),{scale}", "-frames:v", "1", "-q:v", "4",
        "-update", "1", str(thumbnail),
    ]  # fmt: skip


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await asyncio.shield(process.wait())


def _lower_priority() -> None:
    os.nice(RENDER_NICENESS)


def read_render_report(report: str) -> tuple[int, float]:
    """(video frames written, their frame rate) from ffmpeg's report."""
    frames = _FRAMES.findall(report)
    fps = _OUTPUT_FPS.search(report)
    if not frames or fps is None:
        raise RenderFailed(f"ffmpeg said nothing of its output: {report[-500:]!r}")
    return int(frames[-1]), float(fps.group(1))


async def render_clip_files(
    ffmpeg: str,
    *,
    work_dir: Path,
    sources: list[Path],
    seek: float,
    duration: float,
) -> Rendered:
    """Run ffmpeg over the joined segment files in `work_dir`."""
    concat = len(sources) > 1
    source = sources[0]
    if concat:
        source = work_dir / "sources.txt"
        listing = "".join(f"file '{path.name}'\n" for path in sources)
        await asyncio.to_thread(source.write_text, listing)
    mp4, thumbnail = work_dir / "clip.mp4", work_dir / "thumbnail.jpg"
    args = build_render_args(
        ffmpeg, source=source, concat=concat, seek=seek, duration=duration,
        mp4=mp4, thumbnail=thumbnail,
    )  # fmt: skip
    # Below the live pipelines: a render may wait, a live stream may not.
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_lower_priority,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), RENDER_TIMEOUT)
    except TimeoutError as error:
        await _kill(process)
        raise RenderFailed("ffmpeg took too long") from error
    except BaseException:
        await _kill(process)  # the server stops: no ffmpeg outlives it
        raise
    report = stderr.decode(errors="replace")
    if process.returncode != 0 or not mp4.is_file():
        raise RenderFailed(f"ffmpeg exited {process.returncode}: {report[-500:]!r}")
    frames, frame_rate = read_render_report(report)
    return Rendered(mp4, thumbnail, frames, frame_rate)
