"""The ABR ladder, the master playlist and the ffmpeg command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import imageio_ffmpeg
import pytest

from stagecast.media.fmp4 import Fragment, FragmentedMP4Parser, InitSegment
from stagecast.media.ladder import (
    MOVFLAGS,
    Rendition,
    RenditionOutput,
    Rung,
    ThumbnailOutput,
    Variant,
    build_ffmpeg_args,
    build_ladder,
    even_floor,
    even_round,
    render_master_playlist,
    scaled_size,
    variant_for,
    video_encode_args,
)


def sizes(ladder: tuple[Rendition, ...]) -> list[tuple[str, int, int]]:
    return [(r.name, r.width, r.height) for r in ladder]


# --- ladder ----------------------------------------------------------------------------------


def test_1080p_h264_source_gets_the_full_ladder_and_passes_through() -> None:
    ladder = build_ladder(
        width=1920, height=1080, frame_rate=30, video_codec="h264", video_bitrate=6_000_000
    )
    assert sizes(ladder) == [
        ("source", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
    ]
    assert [r.copy_video for r in ladder] == [True, False, False, False]
    assert [r.video_bitrate for r in ladder] == [6_000_000, 2_500_000, 1_200_000, 700_000]
    assert all(r.frame_rate == 30 for r in ladder)


def test_an_h264_source_may_be_reencoded_instead() -> None:
    ladder = build_ladder(
        width=1281, height=719, frame_rate=30, video_codec="h264", passthrough=False
    )
    assert sizes(ladder)[0] == ("source", 1280, 718)  # even, for x264
    assert [r.copy_video for r in ladder] == [False, False, False]
    # Re-encoded, the source gets keyframes on the segment grid like every rung.
    args = video_encode_args(ladder[0], segment_duration=1.0)
    assert args[args.index("-c:v") + 1] == "libx264"
    assert args[args.index("-g") + 1] == "30"
    assert "expr:gte(t,n_forced*1)" in args


def test_480p_source_gets_only_360p_below_it() -> None:
    ladder = build_ladder(width=854, height=480, frame_rate=30, video_codec="h264")
    assert sizes(ladder) == [("source", 854, 480), ("360p", 640, 360)]


def test_small_source_is_never_upscaled() -> None:
    ladder = build_ladder(width=320, height=240, frame_rate=25, video_codec="h264")
    assert sizes(ladder) == [("source", 320, 240)]


def test_odd_source_dimensions_become_even_when_transcoded() -> None:
    ladder = build_ladder(width=1279, height=719, frame_rate=30, video_codec="vp8")
    assert sizes(ladder) == [("source", 1278, 718), ("480p", 854, 480), ("360p", 640, 360)]
    assert not ladder[0].copy_video
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in ladder)


def test_odd_h264_source_passes_through_unchanged() -> None:
    ladder = build_ladder(width=641, height=361, frame_rate=30, video_codec="H264")
    assert sizes(ladder) == [("source", 641, 361), ("360p", 640, 360)]
    assert ladder[0].copy_video


def test_portrait_source_scales_the_short_side() -> None:
    ladder = build_ladder(width=720, height=1280, frame_rate=30, video_codec="h264")
    assert sizes(ladder) == [("source", 720, 1280), ("480p", 480, 854), ("360p", 360, 640)]


def test_rung_bitrates_never_exceed_the_source() -> None:
    ladder = build_ladder(
        width=1920, height=1080, frame_rate=30, video_codec="h264", video_bitrate=1_000_000
    )
    assert [r.video_bitrate for r in ladder] == [1_000_000, 1_000_000, 1_000_000, 700_000]


def test_unknown_source_bitrate_is_estimated() -> None:
    (source, *_) = build_ladder(width=1280, height=720, frame_rate=30, video_codec="vp9")
    assert source.video_bitrate == 2_764_800  # 0.1 bit per pixel per frame
    (tiny,) = build_ladder(width=160, height=120, frame_rate=15, video_codec="vp8")
    assert tiny.video_bitrate == 300_000  # the floor


def test_configurable_rungs_in_any_order() -> None:
    rungs = [Rung(240, 400_000), Rung(540, 1_800_000)]
    ladder = build_ladder(width=1920, height=1080, frame_rate=60, video_codec="h264", rungs=rungs)
    assert sizes(ladder) == [("source", 1920, 1080), ("540p", 960, 540), ("240p", 426, 240)]


@pytest.mark.parametrize(
    ("width", "height", "rate"), [(0, 720, 30), (1280, -1, 30), (1280, 720, 0)]
)
def test_invalid_source_is_refused(width: int, height: int, rate: float) -> None:
    with pytest.raises(ValueError, match="invalid source"):
        build_ladder(width=width, height=height, frame_rate=rate, video_codec="h264")


def test_even_helpers() -> None:
    assert [even_floor(v) for v in (0, 1, 2, 3, 719.9)] == [2, 2, 2, 2, 718]
    assert [even_round(v) for v in (853.33, 426.67, 1.0)] == [854, 426, 2]
    assert scaled_size(1920, 1080, 720) == (1280, 720)
    assert scaled_size(1080, 1920, 720) == (720, 1280)


def test_bandwidth_estimates() -> None:
    rendition = Rendition("720p", 1280, 720, 30, 2_500_000, 128_000, copy_video=False)
    assert rendition.average_bandwidth == 2_759_400  # (2.5M + 128k) * 1.05
    assert rendition.peak_bandwidth == 3_415_650  # (2.5M * 1.25 + 128k) * 1.05


# --- master playlist -------------------------------------------------------------------------


def test_master_playlist_text() -> None:
    source = Rendition("source", 1920, 1080, 30, 6_000_000, 128_000, copy_video=True)
    low = Rendition("360p", 640, 360, 29.97, 700_000, 128_000, copy_video=False)
    variants = [
        variant_for(source, uri="source/index.m3u8", codecs="avc1.640028,mp4a.40.2"),
        variant_for(low, uri="360p/index.m3u8", codecs="avc1.64001e,mp4a.40.2"),
        Variant(uri="audio/index.m3u8", bandwidth=140_000, codecs="mp4a.40.2"),
    ]
    assert render_master_playlist(variants) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=8009400,AVERAGE-BANDWIDTH=6434400,RESOLUTION=1920x1080,"
        'FRAME-RATE=30.000,CODECS="avc1.640028,mp4a.40.2"\n'
        "source/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1053150,AVERAGE-BANDWIDTH=869400,RESOLUTION=640x360,"
        'FRAME-RATE=29.970,CODECS="avc1.64001e,mp4a.40.2"\n'
        "360p/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=140000,CODECS="mp4a.40.2"\n'
        "audio/index.m3u8\n"
    )


# --- ffmpeg arguments ------------------------------------------------------------------------


def rtmp_ladder() -> tuple[Rendition, ...]:
    return build_ladder(
        width=640, height=480, frame_rate=30, video_codec="h264", video_bitrate=1_500_000
    )


def test_ffmpeg_args_for_rtmp_passthrough_plus_a_transcode() -> None:
    source, low = rtmp_ladder()
    args = build_ffmpeg_args(
        "ffmpeg",
        input_format="flv",
        outputs=[RenditionOutput(source, "pipe:5"), RenditionOutput(low, "pipe:7")],
        audio_codec="aac",
        thumbnail=ThumbnailOutput("/var/thumb.jpg", interval=5, width=1280),
    )
    fmp4 = ["-f", "mp4", "-movflags", MOVFLAGS, "-flush_packets", "1"]
    assert args == [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
        "-f", "flv", "-i", "pipe:0",
        "-map", "0:v:0", "-map", "0:a:0", "-c:v", "copy", "-c:a", "copy", *fmp4, "pipe:5",
        "-map", "0:v:0", "-map", "0:a:0",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-vf", "scale=480:360", "-b:v", "700000", "-maxrate", "700000", "-bufsize", "700000",
        "-force_key_frames", "expr:gte(t,n_forced*1)", "-g", "30", "-keyint_min", "30",
        "-sc_threshold", "0",
        "-c:a", "copy", *fmp4, "pipe:7",
        "-map", "0:v:0", "-vf", "fps=1/5,scale=640:-2", "-c:v", "mjpeg", "-q:v", "5",
        "-f", "image2", "-update", "1", "-atomic_writing", "1", "/var/thumb.jpg",
    ]  # fmt: skip


def test_ffmpeg_args_for_browser_webm_transcode_everything() -> None:
    ladder = build_ladder(width=1280, height=720, frame_rate=30, video_codec="vp8")
    outputs = [RenditionOutput(r, f"pipe:{3 + i}") for i, r in enumerate(ladder)]
    args = build_ffmpeg_args(
        "/usr/bin/ffmpeg",
        input_format="webm",
        outputs=outputs,
        audio_codec="opus",
        segment_duration=2,
        fragment_duration=0.25,
    )
    assert args[6:10] == ["-f", "matroska", "-i", "pipe:0"]
    assert args.count("copy") == 0
    assert args.count("libx264") == 3
    assert args.count("aac") == 3
    assert "expr:gte(t,n_forced*2)" in args
    assert args[args.index("-g") + 1] == "60"
    assert args[args.index("-frag_duration") + 1] == "250000"
    assert [args[i + 1] for i, a in enumerate(args) if a == "-vf"] == [
        "scale=1280:720",
        "scale=854:480",
        "scale=640:360",
    ]


def test_ffmpeg_args_without_audio() -> None:
    (source,) = build_ladder(width=320, height=240, frame_rate=30, video_codec="h264")
    args = build_ffmpeg_args(
        "ffmpeg", input_format="flv", outputs=[RenditionOutput(source, "pipe:3")], audio_codec=None
    )
    assert "0:a:0" not in args
    assert "-an" in args


def test_thumbnail_to_a_pipe() -> None:
    (source,) = build_ladder(width=320, height=240, frame_rate=30, video_codec="h264")
    args = build_ffmpeg_args(
        "ffmpeg",
        input_format="flv",
        outputs=[RenditionOutput(source, "pipe:3")],
        audio_codec="aac",
        thumbnail=ThumbnailOutput("pipe:4", interval=2.5),
    )
    assert args[-11:] == [
        "-map", "0:v:0", "-vf", "fps=1/2.5,scale=320:-2", "-c:v", "mjpeg", "-q:v", "5",
        "-f", "image2pipe", "pipe:4",
    ]  # fmt: skip


def test_no_outputs_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_ffmpeg_args("ffmpeg", input_format="flv", outputs=[], audio_codec="aac")


# --- real ffmpeg -----------------------------------------------------------------------------


async def test_ffmpeg_accepts_the_browser_args(tmp_path: Path) -> None:
    """A WebM (VP8 + Opus) ingest on stdin becomes two H.264/AAC renditions and a thumbnail."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    webm = tmp_path / "in.webm"
    make_webm = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "2", "-c:v", "libvpx", "-deadline", "realtime", "-b:v", "300k",
        "-c:a", "libopus", str(webm),
    )  # fmt: skip
    assert await asyncio.wait_for(make_webm.wait(), 60) == 0

    ladder = build_ladder(
        width=320, height=240, frame_rate=15, video_codec="vp8", rungs=[Rung(120, 200_000)]
    )
    outputs = [RenditionOutput(r, str(tmp_path / f"{r.name}.mp4")) for r in ladder]
    thumb = tmp_path / "thumb.jpg"
    args = build_ffmpeg_args(
        ffmpeg,
        input_format="webm",
        outputs=outputs,
        audio_codec="opus",
        thumbnail=ThumbnailOutput(str(thumb), interval=1),
    )
    with webm.open("rb") as stdin:
        process = await asyncio.create_subprocess_exec(
            *args, stdin=stdin, stderr=asyncio.subprocess.PIPE
        )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()

    for rendition in ladder:
        parser = FragmentedMP4Parser()
        items = parser.feed((tmp_path / f"{rendition.name}.mp4").read_bytes())
        parser.close()
        init = items[0]
        assert isinstance(init, InitSegment)
        assert init.video is not None
        assert (init.video.width, init.video.height) == (rendition.width, rendition.height)
        assert init.codecs.startswith("avc1.")
        assert init.codecs.endswith(",mp4a.40.2")
        fragments = [item for item in items if isinstance(item, Fragment)]
        assert fragments[0].keyframe
        assert sum(f.duration_seconds for f in fragments) == pytest.approx(2, abs=0.1)
    assert thumb.read_bytes().startswith(b"\xff\xd8")
