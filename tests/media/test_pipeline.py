"""The pure parts of the pipeline: what a publisher sends, and the ladder it gets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stagecast.media.ingest import IngestMeter
from stagecast.media.pipeline import (
    SourceInfo,
    parse_probe,
    plan_ladder,
    replan_ladder,
    source_from_metadata,
)
from stagecast.media.service import MediaRejected

OBS_METADATA = {
    "width": 1920.0,
    "height": 1080.0,
    "videocodecid": 7.0,
    "videodatarate": 6000.0,
    "framerate": 60.0,
    "audiocodecid": 10.0,
    "encoder": "obs-output module (libobs version 30.0.0)",
}
# What ffmpeg prints for a Chrome MediaRecorder recording (one line each).
PROBE_REPORT = "\n".join(
    [
        "Input #0, matroska,webm, from 'pipe:0':",
        "  Duration: N/A, start: 0.000000, bitrate: N/A",
        "  Stream #0:0(eng): Audio: opus, 48000 Hz, mono, fltp (default)",
        "  Stream #0:1(eng): Video: vp8, yuv420p(progressive), 1280x720, SAR 1:1 DAR 16:9, "
        "30 fps, 30 tbr, 1k tbn (default)",
        "At least one output file must be specified",
    ]
)


def test_obs_metadata_describes_the_source() -> None:
    assert source_from_metadata(OBS_METADATA) == SourceInfo(
        video_codec="h264",
        audio_codec="aac",
        width=1920,
        height=1080,
        frame_rate=60.0,
        video_bitrate=6_000_000,
    )


def test_enhanced_rtmp_fourccs_and_missing_fields() -> None:
    source = source_from_metadata({"videocodecid": "hvc1", "audiocodecid": "Opus"})
    assert source == SourceInfo(video_codec="hevc", audio_codec="opus")
    assert source_from_metadata({"width": 640}) is None  # no codec: probe instead
    assert source_from_metadata({"videocodecid": True}) is None


def test_a_probe_report_describes_the_browser_source() -> None:
    assert parse_probe(PROBE_REPORT) == SourceInfo(
        video_codec="vp8", audio_codec="opus", width=1280, height=720, frame_rate=30.0
    )
    assert parse_probe("Stream #0:0: Audio: opus, 48000 Hz\n") is None


def test_the_ladder_never_upscales_and_passes_h264_through() -> None:
    h264 = plan_ladder(SourceInfo("h264", "aac", 1280, 720, 30.0), [720, 480, 360])
    assert [(r.name, r.height, r.copy_video) for r in h264] == [
        ("source", 720, True),
        ("480p", 480, False),
        ("360p", 360, False),
    ]
    vp8 = plan_ladder(SourceInfo("vp8", "opus", 641, 361, 30.0), [720, 480, 360])
    assert [(r.name, r.width, r.height, r.copy_video) for r in vp8] == [
        ("source", 640, 360, False),  # transcoded, even dimensions; no 360p copy of it
    ]
    unknown = plan_ladder(SourceInfo("h264", None), [720, 480])
    assert [r.name for r in unknown] == ["source"]


def test_a_reconnect_keeps_the_playlists_there_are() -> None:
    first = plan_ladder(SourceInfo("h264", "aac", 1280, 720, 30.0), [480])
    same = replan_ladder(first, SourceInfo("vp8", "opus", 1280, 720, 30.0), [480])
    assert [(r.name, r.copy_video) for r in same] == [("source", False), ("480p", False)]
    smaller = replan_ladder(first, SourceInfo("h264", "aac", 640, 360, 25.0), [480])
    # 480p no longer fits under the source: both keep their sizes, transcoded.
    assert [(r.name, r.height, r.copy_video, r.frame_rate) for r in smaller] == [
        ("source", 720, False, 25.0),
        ("480p", 480, False, 25.0),
    ]


def test_keyframes_too_far_apart_reencode_the_source_when_asked() -> None:
    obs = SourceInfo("h264", "aac", 1281, 720, 30.0, 6_000_000, keyframes_too_far=True)
    reencoded = plan_ladder(obs, [480], reencode_long_gops=True)
    assert [(r.name, r.width, r.height, r.copy_video) for r in reencoded] == [
        ("source", 1280, 720, False),  # even, for x264, at the source's bitrate
        ("480p", 854, 480, False),
    ]
    assert reencoded[0].video_bitrate == 6_000_000
    # Off, or keyframes close enough: passed through as before.
    assert plan_ladder(obs, [480])[0].copy_video
    close = SourceInfo("h264", "aac", 1280, 720, 30.0, keyframes_too_far=False)
    assert plan_ladder(close, [480], reencode_long_gops=True)[0].copy_video
    # A source that is transcoded anyway is not affected.
    vp8 = SourceInfo("vp8", "opus", 1280, 720, 30.0, keyframes_too_far=True)
    assert plan_ladder(vp8, [480], reencode_long_gops=True) == plan_ladder(vp8, [480])


def test_a_reconnect_with_better_keyframes_passes_through_again() -> None:
    long_gop = SourceInfo("h264", "aac", 1280, 720, 30.0, keyframes_too_far=True)
    first = plan_ladder(long_gop, [480], reencode_long_gops=True)
    fixed = replan_ladder(first, replace(long_gop, keyframes_too_far=False), [480])
    assert [(r.name, r.copy_video) for r in fixed] == [("source", True), ("480p", False)]
    again = replan_ladder(fixed, long_gop, [480], reencode_long_gops=True)
    assert again == first


def test_the_meter_refuses_a_sustained_overshoot() -> None:
    meter = IngestMeter(max_bitrate=800_000)  # 100 kB/s; 1.5x over 10 s is 1.5 MB
    meter.add(1_400_000)
    with pytest.raises(MediaRejected):
        meter.add(200_000)
