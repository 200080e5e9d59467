"""Seek previews' pure parts (the layout, the WebVTT track, the recording's file order, ffmpeg's
arguments) and the recording's spans of wall time."""

from __future__ import annotations

from stagecast.media.playlists import recorded_spans
from stagecast.media.previews import (
    longest_segment,
    preview_layout,
    recording_files,
    sprite_args,
    webvtt,
)


def test_the_layout_spaces_thumbnails_wider_past_the_maximum() -> None:
    short = preview_layout(12, every=5, max_count=400, width=160)
    assert (short.interval, short.count, short.columns, short.rows) == (5, 3, 3, 1)
    assert (short.width, short.height) == (160, 90)
    hour = preview_layout(3600, every=5, max_count=400, width=160)
    assert (hour.interval, hour.count, hour.columns, hour.rows) == (9, 400, 10, 40)
    empty = preview_layout(0, every=5, max_count=400, width=160)
    assert (empty.count, empty.columns, empty.rows) == (1, 1, 1)


def test_the_track_names_a_region_of_the_sprite_per_cue() -> None:
    layout = preview_layout(23.5, every=2, max_count=400, width=160)
    lines = webvtt(layout, 23.5).splitlines()
    assert lines[0] == "WEBVTT"
    cues = [(line, lines[i + 1]) for i, line in enumerate(lines) if "-->" in line]
    assert len(cues) == 12
    assert cues[0] == ("00:00:00.000 --> 00:00:02.000", "sprite.jpg#xywh=0,0,160,90")
    assert cues[10] == ("00:00:20.000 --> 00:00:22.000", "sprite.jpg#xywh=0,90,160,90")
    assert cues[11] == ("00:00:22.000 --> 00:00:23.500", "sprite.jpg#xywh=160,90,160,90")
    long = preview_layout(4000, every=5, max_count=400, width=160)
    assert webvtt(long, 4000).splitlines()[-2] == "01:06:30.000 --> 01:06:40.000"


def test_the_recording_files_follow_the_playlist_with_each_init_where_it_starts() -> None:
    playlist = "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            '#EXT-X-MAP:URI="init.mp4"',
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T00:00:00.000Z",
            "#EXTINF:1.000,",
            "seg_0.m4s",
            "#EXTINF:1.000,",
            "seg_1.m4s",
            "#EXT-X-DISCONTINUITY",
            '#EXT-X-MAP:URI="init_2.mp4"',
            "#EXTINF:1.000,",
            "seg_2.m4s",
            "#EXT-X-ENDLIST",
        ]
    )
    assert recording_files(playlist) == [
        "init.mp4", "seg_0.m4s", "seg_1.m4s", "init_2.mp4", "seg_2.m4s"
    ]  # fmt: skip
    assert recording_files("#EXTM3U\n#EXT-X-ENDLIST\n") == []


def test_ffmpeg_reads_stdin_and_writes_one_tiled_jpeg() -> None:
    layout = preview_layout(30, every=5, max_count=400, width=160)
    args = sprite_args("ffmpeg", layout)
    assert args[args.index("-i") + 1] == "pipe:0"
    assert args[-1] == "pipe:1"
    assert "-skip_frame" not in args
    filters = args[args.index("-vf") + 1]
    assert filters.startswith("setpts=PTS-STARTPTS,select='gte(t\\,selected_n*5.000-0.01)'")
    assert filters.endswith("tile=6x1")
    assert args[args.index("-frames:v") + 1] == "1"
    fast = sprite_args("ffmpeg", layout, keyframes_only=True)
    assert fast[fast.index("-skip_frame") + 1] == "nokey"
    assert fast.index("-skip_frame") < fast.index("-i")


def test_the_longest_segment_bounds_the_keyframe_spacing() -> None:
    playlist = "#EXTM3U\n#EXTINF:1.001,\nseg_0.m4s\n#EXTINF:2.500,\nseg_1.m4s\n"
    assert longest_segment(playlist) == 2.5
    assert longest_segment("#EXTM3U\n") == 0.0


def test_recorded_spans_split_where_the_wall_clock_jumps() -> None:
    playlist = "\n".join(
        [
            "#EXTM3U",
            '#EXT-X-MAP:URI="init.mp4"',
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T00:00:00.000Z",
            "#EXTINF:1.000,",
            "seg_0.m4s",
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T00:00:01.000Z",
            "#EXTINF:1.500,",
            "seg_1.m4s",
            # The publisher dropped for 10 s and came back within the reconnect window.
            "#EXT-X-DISCONTINUITY",
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T00:00:12.500Z",
            "#EXTINF:2.000,",
            "seg_2.m4s",
            "#EXT-X-ENDLIST",
        ]
    )
    spans = recorded_spans(playlist)
    assert [(s.offset, s.wall_clock.isoformat(), s.duration) for s in spans] == [
        (0.0, "2026-12-02T00:00:00+00:00", 2.5),
        (2.5, "2026-12-02T00:00:12.500000+00:00", 2.0),
    ]
    assert recorded_spans("#EXTM3U\n#EXTINF:1.0,\nseg_0.m4s\n") == []
