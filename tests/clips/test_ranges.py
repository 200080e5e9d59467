"""The pure parts of clips: segments on the recording's timeline, the playlists over a range,
the render's ffmpeg arguments and report, the trending score."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagecast.clips.ranges import (
    Segment,
    covering,
    place_segments,
    read_media_playlist,
    render_clip_master,
    render_clip_playlist,
    variant_names,
)
from stagecast.clips.render import (
    RenderFailed,
    build_render_args,
    read_render_report,
    source_groups,
)
from stagecast.clips.service import trending_score

VOD = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:1.000,
seg_0.m4s
#EXTINF:1.000,
seg_1.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init_2.mp4"
#EXTINF:1.500,
seg_2.m4s
#EXTINF:0.500,
seg_3.m4s
#EXT-X-ENDLIST
"""

MASTER = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=320x240,CODECS="avc1.64000d,mp4a.40.2"
source/vod.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=160x120,CODECS="avc1.64000d,mp4a.40.2"
120p/vod.m3u8
"""


def test_a_vod_playlist_reads_back_on_one_timeline() -> None:
    segments = read_media_playlist(VOD)
    assert [s.uri for s in segments] == ["seg_0.m4s", "seg_1.m4s", "seg_2.m4s", "seg_3.m4s"]
    assert [s.start for s in segments] == [0.0, 1.0, 2.0, 3.5]
    assert [s.map_uri for s in segments] == ["init.mp4", "init.mp4", "init_2.mp4", "init_2.mp4"]
    assert [s.discontinuity for s in segments] == [False, False, True, False]
    assert segments == place_segments(
        (s.uri, s.duration, s.map_uri, s.discontinuity) for s in segments
    )


@pytest.mark.parametrize(
    ("start", "end", "uris"),
    [
        (0.0, 1.0, ["seg_0.m4s"]),  # ends where the next begins: not needed
        (0.5, 1.5, ["seg_0.m4s", "seg_1.m4s"]),
        (1.0, 3.6, ["seg_1.m4s", "seg_2.m4s", "seg_3.m4s"]),
        (3.9, 4.0, ["seg_3.m4s"]),
        (4.0, 5.0, []),
    ],
)
def test_a_range_is_covered_by_the_segments_it_overlaps(
    start: float, end: float, uris: list[str]
) -> None:
    assert [s.uri for s in covering(read_media_playlist(VOD), start, end)] == uris


def test_a_clip_playlist_starts_inside_its_first_segment() -> None:
    shown = covering(read_media_playlist(VOD), 1.25, 3.6)
    text = render_clip_playlist(shown, start=1.25, base="/hls/abc/source/")
    assert "#EXT-X-START:TIME-OFFSET=0.250,PRECISE=YES" in text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    assert '#EXT-X-MAP:URI="/hls/abc/source/init.mp4"' in text
    assert '#EXT-X-MAP:URI="/hls/abc/source/init_2.mp4"' in text
    assert "/hls/abc/source/seg_1.m4s" in text
    assert "seg_0.m4s" not in text
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1  # before seg_2, not before the first
    first = render_clip_playlist(covering(read_media_playlist(VOD), 2.0, 3.0), start=2, base="")
    assert "#EXT-X-DISCONTINUITY\n" not in first  # a clip's first segment starts no timeline


def test_the_clip_master_keeps_the_variants_it_has_segments_of() -> None:
    assert variant_names(MASTER) == ["source", "120p"]
    text = render_clip_master(MASTER, ["source"])
    assert "source/index.m3u8" in text
    assert "120p" not in text
    assert "RESOLUTION=320x240" in text
    both = render_clip_master(MASTER, ["source", "120p"])
    assert both.count("#EXT-X-STREAM-INF") == 2
    assert "vod.m3u8" not in both


def test_segments_join_in_runs_of_one_init_without_discontinuities() -> None:
    groups = source_groups(read_media_playlist(VOD))
    assert [[s.uri for s in g] for g in groups] == [
        ["seg_0.m4s", "seg_1.m4s"],
        ["seg_2.m4s", "seg_3.m4s"],
    ]
    same_init = [Segment("a", 1, "init.mp4", 0), Segment("b", 1, "init.mp4", 1, True)]
    assert len(source_groups(same_init)) == 2


def test_render_arguments_pick_frames_by_number_and_draw_the_middle_frame(
    tmp_path: Path,
) -> None:
    args = build_render_args(
        "ffmpeg", source=tmp_path / "in.mp4", concat=False, skip=12, frames=900, frame=1 / 30,
        audio_seek=0.4, mp4=tmp_path / "clip.mp4", thumbnail=tmp_path / "t.jpg",
    )  # fmt: skip
    assert args.count("-i") == 2  # the video from the top, the audio seeked
    assert args[args.index("-ss") + 1] == "0.400000"
    assert args.index("-ss") < args.index("-i", args.index("-i") + 1)
    assert "trim=start_frame=12" in args[args.index("-vf") + 1]
    assert args[args.index("-frames:v") + 1] == "900"
    assert args[args.index("-t") + 1] == "30.000000"
    assert "select=eq(n\\,462)" in args[len(args) - 1 - args[::-1].index("-vf") + 1]
    assert "-f" not in args
    concat = build_render_args(
        "ffmpeg", source=tmp_path / "list.txt", concat=True, skip=0, frames=150, frame=1 / 30,
        audio_seek=0, mp4=tmp_path / "clip.mp4", thumbnail=tmp_path / "t.jpg",
    )  # fmt: skip
    assert concat.count("concat") == 2


def test_the_render_report_gives_frames_and_rate() -> None:
    report = (
        "Input #0, mov,mp4\n  Stream #0:0: Video: h264, 25 fps\n"
        "Output #0, mp4, to 'clip.mp4':\n  Stream #0:0: Video: h264 (libx264), yuv420p,"
        " 1280x720, q=2-31, 30 fps, 15360 tbn\nframe=  450 fps=90\rframe=  900 fps=95\n"
    )
    assert read_render_report(report) == (900, 30.0)
    with pytest.raises(RenderFailed):
        read_render_report("nothing useful")


def test_trending_prefers_fresh_engagement() -> None:
    fresh = trending_score(views=50, likes=5, age_hours=1)
    old = trending_score(views=400, likes=40, age_hours=72)
    assert fresh > old
    assert trending_score(views=10, likes=1, age_hours=5) > trending_score(
        views=10, likes=0, age_hours=5
    )
    assert trending_score(views=0, likes=0, age_hours=0) == 0
