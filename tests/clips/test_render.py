"""The clip MP4 render against real recordings: the edge-GOP splice for passthrough and
transcoded sources, to the frame, decoding cleanly, with its audio; and the whole-clip
re-encode where the splice cannot hold."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from stagecast.clips import splice
from stagecast.clips.ranges import read_media_playlist
from stagecast.clips.render import Rendered, SourceGroup, render_clip_media, source_groups
from stagecast.media.ladder import Rendition, video_encode_args
from tests.media.conftest import FFMPEG, run_ffmpeg
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS

FPS = 30
SECONDS = 8
# What an OBS-like publisher sends and passes through: x264, a keyframe a second, no B-frames.
PASSTHROUGH = [
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
    "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
]  # fmt: skip
# What the ladder's transcode writes (High profile, keyframes forced on the segment grid).
LADDER = video_encode_args(
    Rendition("source", 320, 240, FPS, 400_000, 96_000, copy_video=False), segment_duration=1
)
# B-frames: reordered frames the edges would have to match; the splice refuses them.
B_FRAMES = [
    "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
    "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
]  # fmt: skip


async def recording(directory: Path, video: list[str], *, audio: bool = True) -> SourceGroup:
    """A recording cut into 1 s fMP4 segments with their playlist, as the packager stores."""
    await asyncio.to_thread(directory.mkdir)
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={FPS}"]
    maps = ["-map", "0:v:0"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
        maps += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "96k"]
    code, report = await run_ffmpeg(
        "-loglevel", "error", *inputs, "-t", str(SECONDS), *maps, *video,
        "-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4",
        "-hls_playlist_type", "vod", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(directory / "seg_%d.m4s"), str(directory / "index.m3u8"),
    )  # fmt: skip
    assert code == 0, report
    segments = read_media_playlist((directory / "index.m3u8").read_text())
    assert len(segments) == SECONDS
    init = (directory / "init.mp4").read_bytes()
    data = tuple((directory / s.uri).read_bytes() for s in segments)
    return SourceGroup(init, tuple(segments), data)


def expected_range(start: float, end: float) -> range:
    """Indices i of the source's frames (at i/FPS) with start - h <= t < end - h (h: half a
    frame): the frames nearest the range's edges."""
    half = 0.5 / FPS
    return range(
        next(i for i in range(SECONDS * FPS) if i / FPS >= start - half),
        next(i for i in range(SECONDS * FPS + 1) if i / FPS >= end - half),
    )


def expected_frames(start: float, end: float) -> int:
    return len(expected_range(start, end))


async def lowest_psnr(clip: Path, source: Path, frames: range) -> float:
    """The worst PSNR (dB) of the clip's frames against the source's frames `frames`: a frame
    off by one scores about 25 dB on the test pattern, a copied frame infinity, a re-encoded
    one about 40."""
    stats = clip.with_suffix(".psnr")
    graph = (
        f"[1:v]trim=start_frame={frames.start}:end_frame={frames.stop},setpts=PTS-STARTPTS[ref];"
        f"[0:v]setpts=PTS-STARTPTS[clip];[clip][ref]psnr=stats_file={stats}"
    )
    code, report = await run_ffmpeg(
        "-i", str(clip), "-i", str(source), "-lavfi", graph, "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, report
    values = re.findall(r"psnr_avg:(\S+)", stats.read_text())
    assert len(values) == len(frames)
    return min(float(value) for value in values)


async def decode_errors(path: Path) -> str:
    """What ffmpeg complains of while decoding every frame and sample of a file."""
    code, report = await run_ffmpeg("-v", "error", "-i", str(path), "-f", "null", "-")
    assert code == 0, report
    return report.strip()


async def stream_facts(path: Path) -> dict[str, float]:
    """Frames and duration of the video and the audio duration, as ffmpeg reads them."""
    code, report = await run_ffmpeg(
        "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"
    )
    assert code == 0, report
    frames = int(re.findall(r"frame=\s*(\d+)", report)[-1])
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", report)
    assert duration is not None, report
    hours, minutes, seconds = duration.groups()
    code, audio = await run_ffmpeg("-i", str(path), "-map", "0:a:0", "-f", "null", "-")
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", audio) if code == 0 else []
    audio_seconds = float(times[-1][2]) + 60 * int(times[-1][1]) if times else 0.0
    return {
        "frames": frames,
        "duration": int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        "audio": audio_seconds,
    }


async def render(tmp_path: Path, group: SourceGroup, start: float, end: float) -> Rendered:
    work = tmp_path / f"work-{start}-{end}"
    work.mkdir()
    groups = [
        SourceGroup(group.init, tuple(g), tuple(group.data[group.segments.index(s)] for s in g))
        for g in source_groups(group.segments)
    ]
    return await render_clip_media(FFMPEG, work_dir=work, groups=groups, start=start, end=end)


# (start, end, edges re-encoded): mid-GOP at both ends, exactly on keyframes, one of each,
# a head and one whole segment, and a range from the recording's first frame.
RANGES = [(1.5, 5.5, 2), (1.0, 5.0, 0), (1.0, 5.4, 1), (0.3, 6.0, 1), (2.1, 4.0, 1), (0, 7.2, 1)]


@pytest.mark.parametrize("source", [pytest.param(PASSTHROUGH, id="passthrough"),
                                    pytest.param(LADDER, id="ladder")])  # fmt: skip
async def test_spliced_mp4_is_frame_exact_and_decodes_cleanly(
    tmp_path: Path, source: list[str]
) -> None:
    group = await recording(tmp_path / "recording", source)
    source_avcc = splice.parse_avcc(splice.avcc_of_file(group.init) or b"")
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(group.file_bytes())
    for start, end, edges in RANGES:
        rendered = await render(tmp_path, group, start, end)
        assert rendered.method == "spliced", (start, end)
        frames = expected_frames(start, end)
        assert rendered.frames == frames
        assert await decode_errors(rendered.mp4) == ""
        facts = await stream_facts(rendered.mp4)
        assert facts["frames"] == frames, (start, end, facts)
        assert abs(facts["duration"] - frames / FPS) <= 1 / FPS, (start, end, facts)
        # The audio covers the clip: AAC frames are 21 ms, ffmpeg prints centiseconds.
        assert abs(facts["audio"] - frames / FPS) <= 0.05, (start, end, facts)
        # The very frames asked for, in order: none shifted at a join.
        assert await lowest_psnr(rendered.mp4, whole, expected_range(start, end)) > 35
        data = rendered.mp4.read_bytes()
        top = [box for box, _, _ in splice.top_level_boxes(data)]
        assert top.index("moov") < top.index("mdat")  # fast start
        config = splice.parse_avcc(splice.avcc_of_file(data) or b"")
        # The source's parameter sets first, then one SPS/PPS pair per re-encoded edge.
        assert config.sps[: len(source_avcc.sps)] == source_avcc.sps
        assert len(config.sps) == len(source_avcc.sps) + edges
        assert len(config.pps) == len(source_avcc.pps) + edges
        assert rendered.thumbnail.read_bytes()[:2] == b"\xff\xd8"


async def test_a_range_inside_one_segment_is_reencoded_whole(tmp_path: Path) -> None:
    group = await recording(tmp_path / "recording", PASSTHROUGH)
    rendered = await render(tmp_path, group, 2.2, 2.8)
    assert rendered.method == "reencoded"
    assert rendered.frames == expected_frames(2.2, 2.8) == 18
    assert await decode_errors(rendered.mp4) == ""
    assert (await stream_facts(rendered.mp4))["frames"] == 18


async def test_b_frames_fall_back_to_the_whole_clip_reencoded(tmp_path: Path) -> None:
    group = await recording(tmp_path / "recording", B_FRAMES)
    rendered = await render(tmp_path, group, 1.5, 6.5)
    assert rendered.method == "reencoded"
    assert rendered.frames == expected_frames(1.5, 6.5) == 150
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(group.file_bytes())
    assert await lowest_psnr(rendered.mp4, whole, expected_range(1.5, 6.5)) > 30
    assert await decode_errors(rendered.mp4) == ""
    facts = await stream_facts(rendered.mp4)
    assert facts["frames"] == 150
    assert abs(facts["audio"] - 5) <= 0.05


async def test_a_discontinuity_inside_the_clip_falls_back(tmp_path: Path) -> None:
    group = await recording(tmp_path / "recording", PASSTHROUGH)
    work = tmp_path / "work"
    work.mkdir()
    # The same media under two inits (as after a publisher's reconnect): two groups.
    first = SourceGroup(group.init, group.segments[:4], group.data[:4])
    second = SourceGroup(group.init, group.segments[4:], group.data[4:])
    rendered = await render_clip_media(
        FFMPEG, work_dir=work, groups=[first, second], start=2.5, end=5.5
    )
    assert rendered.method == "reencoded"
    assert rendered.frames == 90
    assert await decode_errors(rendered.mp4) == ""


async def test_a_clip_without_audio_is_spliced(tmp_path: Path) -> None:
    group = await recording(tmp_path / "recording", PASSTHROUGH, audio=False)
    rendered = await render(tmp_path, group, 0.5, 4.5)
    assert rendered.method == "spliced"
    assert rendered.frames == 120
    assert await decode_errors(rendered.mp4) == ""


_PLAY_TO_THE_END = """() => new Promise((done) => {
  const video = document.getElementById("clip");
  const quality = () => video.getVideoPlaybackQuality();
  video.onerror = () => done({ error: video.error && video.error.message });
  video.onended = () => done({
    ended: true, duration: video.duration, frames: quality().totalVideoFrames,
  });
  video.play().catch((error) => done({ error: String(error) }));
  setTimeout(() => done({ error: "timeout", at: video.currentTime }), 20000);
})"""


async def play_in_chromium(path: Path) -> dict[str, Any]:
    """Play a file to its end in Debian's Chromium: what happened (`ended` or `error`)."""
    page_file = path.with_suffix(".html")
    page_file.write_text(f'<video id="clip" muted src="{path.name}"></video>')
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = await browser.new_page()
            await page.goto(page_file.as_uri())
            outcome: dict[str, Any] = await page.evaluate(_PLAY_TO_THE_END)
        finally:
            await browser.close()
    return outcome


async def test_a_spliced_mp4_plays_to_its_end_in_chromium(tmp_path: Path) -> None:
    group = await recording(tmp_path / "recording", LADDER)
    rendered = await render(tmp_path, group, 1.5, 5.5)
    assert rendered.method == "spliced"
    played = await play_in_chromium(rendered.mp4)
    assert played.get("ended"), played
    assert abs(played["duration"] - 4) <= 1 / FPS
    assert played["frames"] == 120  # every frame went to the decoder
    # The same parts joined without the merged avcC stop at the first edge's frames: the
    # browser's decoder reads only the sample entry.
    unmerged = await play_in_chromium(rendered.mp4.with_name("joined.mp4"))
    assert "error" in unmerged, unmerged
