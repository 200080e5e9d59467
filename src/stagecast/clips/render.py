"""A clip's MP4 and thumbnail, cut to the exact frames by ffmpeg.

First choice, the splice (splice.py): the whole segments inside the range are stream-copied,
only the partial segments at its edges are re-encoded (with the source's profile, level and
their own parameter set ids, all in one `avcC`), and the audio is re-encoded across the whole
clip (AAC is cheap, and one encode has one priming delay instead of a gap at every join).
30 s of 720p costs about a second of CPU instead of the whole clip's encode (bench/clips.py).

Fallback, when the splice cannot hold (a discontinuity or another init inside the clip, a
codec or profile x264 cannot match, B-frames, a range inside one segment): the whole clip
re-encoded with x264 `ultrafast`; the reason is logged. Seeking is ffmpeg's accurate input
seek: it decodes from the keyframe before and drops the frames before the start.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from stagecast.clips import splice
from stagecast.clips.ranges import Segment
from stagecast.clips.splice import SpliceImpossible
from stagecast.media.fmp4 import Fragment, FragmentedMP4Parser, MediaFormatError, iter_boxes

log = structlog.get_logger(__name__)

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
    method: str = "reencoded"  # or "spliced"
    seconds: float = 0.0  # wall time of the render
    cpu_seconds: float = 0.0  # ffmpeg's user + system time

    @property
    def duration(self) -> float:
        return self.frames / self.frame_rate if self.frame_rate else 0.0


@dataclass(frozen=True, slots=True)
class SourceGroup:
    """Segments of one init with no discontinuity between them, and their bytes."""

    init: bytes
    segments: tuple[Segment, ...]
    data: tuple[bytes, ...]

    def file_bytes(self, segments: Sequence[Segment] | None = None) -> bytes:
        """The init and the given segments (all by default) as one fragmented MP4."""
        wanted = set(segments or self.segments)
        chosen = [d for s, d in zip(self.segments, self.data, strict=True) if s in wanted]
        return b"".join([self.init, *chosen])


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
    skip: int,
    frames: int,
    frame: float,
    audio_seek: float,
    mp4: Path,
    thumbnail: Path,
) -> list[str]:
    """ffmpeg's arguments for the whole clip re-encoded: `frames` video frames after the
    first `skip` of `source` (picked by number: a file's timestamps need not start where the
    playlist puts it), the audio from `audio_seek` for as long, and a JPEG of the middle frame.
    The source starts at a keyframe, so decoding from its top costs at most a segment."""
    demuxer = ["-f", "concat", "-safe", "0"] if concat else []
    scale = f"scale=-2:'min({THUMBNAIL_HEIGHT},ih)'"
    middle = skip + frames // 2
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "info",
        *demuxer, "-i", str(source),
        *demuxer, "-ss", f"{audio_seek:.6f}", "-i", str(source),
        "-map", "0:v:0", "-map", "1:a:0?",
        "-vf", f"trim=start_frame={skip},setpts=PTS-STARTPTS", "-frames:v", str(frames),
        "-t", f"{frames * frame:.6f}",
        *VIDEO_CODEC, *AUDIO_CODEC, "-movflags", "+faststart", str(mp4),
        "-map", "0:v:0", "-vf", f"select=eq(n\\,{middle}),{scale}", "-frames:v", "1",
        "-q:v", "4", "-update", "1", str(thumbnail),
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


async def run_ffmpeg(args: list[str]) -> str:
    """Run one ffmpeg below the live pipelines' priority; its report (stderr)."""
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
    if process.returncode != 0:
        raise RenderFailed(f"ffmpeg exited {process.returncode}: {report[-500:]!r}")
    return report


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def render_clip_media(
    ffmpeg: str, *, work_dir: Path, groups: Sequence[SourceGroup], start: float, end: float
) -> Rendered:
    """The clip's MP4 and thumbnail: spliced when it can be, re-encoded whole otherwise."""
    began, cpu = time.perf_counter(), _children_cpu()
    try:
        rendered = await render_spliced(
            ffmpeg, work_dir=work_dir, groups=groups, start=start, end=end
        )
    except (SpliceImpossible, RenderFailed) as why:
        # RenderFailed too: an x264 that refuses the source's level must not fail the clip.
        log.info("clip_render_reencoded", reason=str(why)[:300])
        rendered = await render_reencoded(
            ffmpeg, work_dir=work_dir, groups=groups, start=start, end=end
        )
    # Children reaped meanwhile count too (a live pipeline's short ffmpegs): an upper bound.
    return _timed(rendered, time.perf_counter() - began, _children_cpu() - cpu)


def _timed(rendered: Rendered, seconds: float, cpu_seconds: float) -> Rendered:
    return Rendered(
        rendered.mp4, rendered.thumbnail, rendered.frames, rendered.frame_rate,
        rendered.method, round(seconds, 3), round(cpu_seconds, 3),
    )  # fmt: skip


def frame_seconds(group: SourceGroup) -> float:
    """One video frame's duration, from the first segment's fragments (0 if unknown)."""
    parser = FragmentedMP4Parser()
    try:
        items = parser.feed(group.init + group.data[0])
    except MediaFormatError:
        return 0.0
    fragments = [item for item in items if isinstance(item, Fragment)]
    samples = sum(f.sample_count for f in fragments)
    if not samples:
        return 0.0
    return sum(f.duration_seconds for f in fragments) / samples


async def render_reencoded(
    ffmpeg: str, *, work_dir: Path, groups: Sequence[SourceGroup], start: float, end: float
) -> Rendered:
    """Re-encode the whole clip from the joined segment files (the fallback)."""
    sources = []
    for index, group in enumerate(groups):
        path = work_dir / f"source_{index}.mp4"
        await asyncio.to_thread(path.write_bytes, group.file_bytes())
        sources.append(path)
    # The same frames as the splice takes: the nearest to the range's edges.
    frame = frame_seconds(groups[0])
    if frame <= 0:
        raise RenderFailed("the source's frame duration is unknown")
    first = groups[0].segments[0].start
    video_start = splice.first_frame_at_or_after(first, start - frame / 2, frame)
    video_end = splice.first_frame_at_or_after(first, end - frame / 2, frame)
    skip = round((video_start - first) / frame)
    frames = round((video_end - video_start) / frame)
    concat = len(sources) > 1
    source = sources[0]
    if concat:
        source = work_dir / "sources.txt"
        # Each run placed right after the previous one's last segment, whatever its timestamps.
        listing = "".join(
            f"file '{path.name}'\nduration {sum(s.duration for s in group.segments):.6f}\n"
            for path, group in zip(sources, groups, strict=True)
        )
        await asyncio.to_thread(source.write_text, listing)
    mp4, thumbnail = work_dir / "clip.mp4", work_dir / "thumbnail.jpg"
    args = build_render_args(
        ffmpeg, source=source, concat=concat, skip=skip, frames=frames, frame=frame,
        audio_seek=video_start - first, mp4=mp4, thumbnail=thumbnail,
    )  # fmt: skip
    report = await run_ffmpeg(args)
    if not mp4.is_file():
        raise RenderFailed(f"ffmpeg wrote no MP4: {report[-500:]!r}")
    frames, frame_rate = read_render_report(report)
    return Rendered(mp4, thumbnail, frames, frame_rate)


def _has_reordered_frames(group: SourceGroup) -> bool:
    """Whether the first segment's video carries composition offsets (B-frames)."""
    for box_type, offset, size in splice.top_level_boxes(group.data[0]):
        if box_type != "moof":
            continue
        moof = group.data[0][offset + 8 : offset + size]
        for traf in iter_boxes(moof):
            if traf.type != "traf":
                continue
            for run in iter_boxes(traf.payload):
                if run.type == "trun" and splice.trun_has_composition_offsets(run.payload):
                    return True
    return False


@dataclass(frozen=True, slots=True)
class SpliceSource:
    """What the splice needs to know of a source before it starts any ffmpeg."""

    group: SourceGroup
    config: splice.AvcConfig
    tracks: list[str]
    frame: float
    timescale: int
    plan: splice.SplicePlan


def check_splice(groups: Sequence[SourceGroup], *, start: float, end: float) -> SpliceSource:
    """The source and plan of a splice, or SpliceImpossible saying why there is none."""
    if len(groups) != 1:
        raise SpliceImpossible("the clip spans a discontinuity or a new init segment")
    group = groups[0]
    source_avcc = splice.avcc_of_file(group.init)
    if source_avcc is None:
        raise SpliceImpossible("the source video is not H.264 with an avcC (avc1)")
    tracks = splice.track_handlers(group.init)
    if not tracks or tracks[0] != "vide":
        raise SpliceImpossible("the video is not the source's first track")
    frame = frame_seconds(group)
    if frame <= 0:
        raise SpliceImpossible("the source's frame duration is unknown")
    if _has_reordered_frames(group):
        raise SpliceImpossible("the source has B-frames (reordered frames)")
    plan = splice.plan_splice(group.segments, start=start, end=end, frame=frame)
    return SpliceSource(
        group, splice.parse_avcc(source_avcc), tracks, frame,
        splice.video_timescale(group.init), plan,
    )  # fmt: skip


async def _write(path: Path, data: bytes) -> Path:
    await asyncio.to_thread(path.write_bytes, data)
    return path


async def render_spliced(
    ffmpeg: str, *, work_dir: Path, groups: Sequence[SourceGroup], start: float, end: float
) -> Rendered:
    """Copy the whole segments, re-encode the edges, re-encode the audio, join them."""
    source = check_splice(groups, start=start, end=end)
    group, plan, frame = source.group, source.plan, source.frame
    parts: list[tuple[Path, int]] = []  # each part and its frames, in order
    jobs = []
    ids = dict(zip(("head", "tail"), splice.free_parameter_set_ids(source.config, 2), strict=True))
    for name, edge in (("head", plan.head), ("middle", None), ("tail", plan.tail)):
        target = work_dir / f"{name}.mp4"
        if edge is not None:
            codec = splice.edge_encode_args(
                source.config, parameter_set_id=ids[name], timescale=source.timescale
            )
            edge_source = await _write(
                work_dir / f"{name}_source.mp4", group.file_bytes(edge.segments)
            )
            jobs.append(build_edge_args(ffmpeg, source=edge_source, edge=edge, target=target,
                                        codec=codec))  # fmt: skip
            parts.append((target, edge.frames))
        elif name == "middle" and plan.middle:
            copied = await _write(work_dir / "middle_source.mp4", group.file_bytes(plan.middle))
            jobs.append(build_video_copy_args(ffmpeg, source=copied, target=target))
            parts.append((target, round(sum(s.duration for s in plan.middle) / frame)))
    audio = work_dir / "audio.m4a" if "soun" in source.tracks else None
    thumbnail = work_dir / "thumbnail.jpg"
    whole = await _write(work_dir / "source.mp4", group.file_bytes())
    offset = plan.video_start - group.segments[0].start
    duration = plan.video_end - plan.video_start
    jobs.append(build_audio_and_thumbnail_args(
        ffmpeg, source=whole, seek=offset, duration=duration, audio=audio,
        thumbnail_at=offset + duration / 2, thumbnail=thumbnail,
    ))  # fmt: skip
    # Side by side: on two cores the edges, the middle's copy and the audio overlap.
    await asyncio.gather(*(run_ffmpeg(args) for args in jobs))
    edges = []
    for path, _ in parts:
        if path.stem in ids:
            found = splice.avcc_of_file(await asyncio.to_thread(path.read_bytes))
            if found is None:
                raise SpliceImpossible(f"the {path.stem} encode has no avcC")
            edges.append(splice.parse_avcc(found))
    merged = splice.build_avcc(splice.merge_avcc(source.config, edges))
    return await _join(ffmpeg, work_dir, parts, audio=audio, frame=frame, avcc=merged,
                       expected=round(duration / frame), thumbnail=thumbnail)  # fmt: skip


async def _join(
    ffmpeg: str, work_dir: Path, parts: list[tuple[Path, int]], *, audio: Path | None,
    frame: float, avcc: bytes, expected: int, thumbnail: Path,
) -> Rendered:  # fmt: skip
    listing = work_dir / "parts.txt"
    await asyncio.to_thread(listing.write_text, concat_listing(parts, frame))
    joined = work_dir / "joined.mp4"
    report = await run_ffmpeg(build_join_args(ffmpeg, listing=listing, audio=audio, target=joined))
    frames, _ = read_render_report(report)
    if frames != expected:
        raise SpliceImpossible(f"the join holds {frames} frames, not {expected}")
    data = await asyncio.to_thread(joined.read_bytes)
    mp4 = await _write(work_dir / "clip.mp4", splice.with_avcc_and_fast_start(data, avcc))
    return Rendered(mp4, thumbnail, frames, 1 / frame, method="spliced")


def build_edge_args(
    ffmpeg: str, *, source: Path, edge: splice.Edge, target: Path, codec: list[str]
) -> list[str]:
    """ffmpeg's arguments for one edge: video only, its frames picked by number (the file
    starts with a keyframe, so decoding from the top costs at most a segment)."""
    picked = f"trim=start_frame={edge.skip},setpts=PTS-STARTPTS"
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "info",
        "-i", str(source), "-map", "0:v:0", "-an", "-vf", picked,
        "-frames:v", str(edge.frames), *codec, str(target),
    ]  # fmt: skip


def build_video_copy_args(ffmpeg: str, *, source: Path, target: Path) -> list[str]:
    """ffmpeg's arguments copying a file's video alone: the concat demuxer places a part by
    its start time, which is the earliest of all its streams (an audio track's priming can
    start before the first frame)."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        "-i", str(source), "-map", "0:v:0", "-c", "copy", "-f", "mp4", str(target),
    ]  # fmt: skip


def build_audio_and_thumbnail_args(
    ffmpeg: str, *, source: Path, seek: float, duration: float, audio: Path | None,
    thumbnail_at: float, thumbnail: Path,
) -> list[str]:  # fmt: skip
    """ffmpeg's arguments for the clip's whole audio, re-encoded, and its middle frame."""
    scale = f"scale=-2:'min({THUMBNAIL_HEIGHT},ih)'"
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if audio is not None:
        args += ["-ss", f"{seek:.6f}", "-i", str(source)]
    args += ["-ss", f"{thumbnail_at:.6f}", "-i", str(source)]
    if audio is not None:
        args += ["-map", "0:a:0", "-t", f"{duration:.6f}", *AUDIO_CODEC, str(audio)]
    picture = "1:v:0" if audio is not None else "0:v:0"
    args += [
        "-map", picture, "-vf", scale, "-frames:v", "1", "-q:v", "4", "-update", "1",
        str(thumbnail),
    ]  # fmt: skip
    return args


def concat_listing(parts: Sequence[tuple[Path, int]], frame: float) -> str:
    """The concat demuxer's list: each part with its duration in whole frames, so that the
    next one starts right after its last frame (not where a container's duration says)."""
    return "ffconcat version 1.0\n" + "".join(
        f"file '{path.name}'\nduration {frames * frame:.6f}\n" for path, frames in parts
    )


def build_join_args(ffmpeg: str, *, listing: Path, audio: Path | None, target: Path) -> list[str]:
    """ffmpeg's arguments joining the video parts (packets untouched: no Annex B conversion,
    the parameter sets stay out of band) and adding the audio."""
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "info",
        "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(listing),
    ]  # fmt: skip
    if audio is not None:
        args += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"]
    else:
        args += ["-map", "0:v:0"]
    return [*args, "-c", "copy", "-f", "mp4", str(target)]
