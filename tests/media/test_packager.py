"""The packager, its playlists and the media store; real ffmpeg at the end."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import imageio_ffmpeg
import pytest

from stagecast.media.fmp4 import (
    Fragment,
    InitSegment,
    MediaFormatError,
    pipe_stream,
)
from stagecast.media.ladder import (
    MOVFLAGS,
    RenditionOutput,
    Rung,
    ThumbnailOutput,
    build_ffmpeg_args,
    build_ladder,
    render_master_playlist,
    variant_for,
)
from stagecast.media.packager import Packager, PackagerSettings
from stagecast.media.playlists import (
    MediaPlaylist,
    OpenSegment,
    PlaylistPart,
    PlaylistSegment,
    format_program_date_time,
    parse_part_uri,
    part_uri,
    render_media_playlist,
    segments_to_drop,
    target_duration_for,
)
from stagecast.media.store import InvalidMediaKey, LocalMediaStore, MediaNotFound, validate_prefix
from tests.media.test_fmp4 import FRAME, fragment, init_segment, parse_all

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PREFIX = "live/stream1/source"


# --- playlist text ---------------------------------------------------------------------------


def test_live_playlist_text() -> None:
    playlist = MediaPlaylist(
        segments=(
            PlaylistSegment("seg_5.m4s", 1.0, "init.mp4", START),
            PlaylistSegment("seg_6.m4s", 0.9666, "init.mp4", START + timedelta(seconds=1)),
        ),
        target_duration=1,
        media_sequence=5,
    )
    assert render_media_playlist(playlist) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:5\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n"
        "#EXTINF:1.000,\n"
        "seg_5.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:01.000Z\n"
        "#EXTINF:0.967,\n"
        "seg_6.m4s\n"
    )


def test_playlist_with_discontinuities_new_map_and_end() -> None:
    later = START + timedelta(minutes=5)
    playlist = MediaPlaylist(
        segments=(
            PlaylistSegment("seg_9.m4s", 2.0, "init.mp4", START, discontinuity=True),
            PlaylistSegment("seg_10.m4s", 1.5, "init_1.mp4", later, discontinuity=True),
            PlaylistSegment("seg_11.m4s", 1.25, "init_1.mp4", later + timedelta(seconds=1.5)),
        ),
        target_duration=2,
        media_sequence=9,
        discontinuity_sequence=3,
        ended=True,
    )
    assert render_media_playlist(playlist) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-MEDIA-SEQUENCE:9\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:3\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-DISCONTINUITY\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n"
        "#EXTINF:2.000,\n"
        "seg_9.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        '#EXT-X-MAP:URI="init_1.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:05:00.000Z\n"
        "#EXTINF:1.500,\n"
        "seg_10.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:05:01.500Z\n"
        "#EXTINF:1.250,\n"
        "seg_11.m4s\n"
        "#EXT-X-ENDLIST\n"
    )


def test_vod_playlist_text() -> None:
    playlist = MediaPlaylist(
        segments=(PlaylistSegment("seg_0.m4s", 1.0, "init.mp4"),),
        target_duration=1,
        playlist_type="VOD",
        ended=True,
    )
    assert render_media_playlist(playlist) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXTINF:1.000,\n"
        "seg_0.m4s\n"
        "#EXT-X-ENDLIST\n"
    )


def test_program_date_time_format() -> None:
    paris = timezone(timedelta(hours=2))
    moment = datetime(2026, 3, 1, 14, 0, 1, 987_654, tzinfo=paris)
    assert format_program_date_time(moment) == "2026-03-01T12:00:01.987Z"
    with pytest.raises(ValueError, match="aware"):
        format_program_date_time(datetime(2026, 3, 1))  # noqa: DTZ001 -- the case under test


@pytest.mark.parametrize(
    ("durations", "target"),
    [
        ([], 1),
        ([0.4], 1),
        ([1.0, 1.023, 0.977], 1),  # 1.023 rounds to 1
        ([1.4994], 1),
        ([1.4996], 2),  # shown as 1.500, which rounds up
        ([1.5], 2),
        ([2.0004], 2),
        ([1.0, 3.2], 3),
    ],
)
def test_target_duration_is_the_largest_rounded_extinf(durations: list[float], target: int) -> None:
    assert target_duration_for(durations) == target


def test_target_duration_as_a_ceiling() -> None:
    assert target_duration_for([1.0, 1.0004], ceiling=True) == 1  # shown as 1.000
    assert target_duration_for([1.0, 1.023], ceiling=True) == 2
    assert target_duration_for([], ceiling=True) == 1


async def test_packager_can_use_the_ceiling_rule(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path, PackagerSettings(ceil_target_duration=True))
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments((31, True), (30, True)))
    assert "#EXT-X-TARGETDURATION:2\n#" in await read_text(store, "index.m3u8")


@pytest.mark.parametrize(
    ("durations", "window", "minimum", "dropped"),
    [
        ([1.0] * 10, 3, 3, 7),
        ([1.0] * 10, 0.5, 3, 7),  # never shorter than three target durations
        ([1.0] * 10, 5.5, 3, 4),
        ([1.0] * 3, 60, 3, 0),
        ([2.0], 0.1, 0, 0),  # never drops the newest segment
    ],
)
def test_segments_to_drop(
    durations: list[float], window: float, minimum: float, dropped: int
) -> None:
    assert segments_to_drop(durations, window=window, minimum=minimum) == dropped


# --- packager --------------------------------------------------------------------------------


class RecordingStore(LocalMediaStore):
    """A local store that checks every playlist names only stored, undeleted segments."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[str] = []
        self.deleted: list[str] = []

    async def write(self, key: str, data: bytes) -> None:
        if key.endswith(".m3u8"):
            directory = key.rpartition("/")[0]
            text = data.decode()
            # A preload hint names the part that comes next, before it exists (by design).
            listed = "\n".join(
                line for line in text.splitlines() if not line.startswith("#EXT-X-PRELOAD-HINT")
            )
            uris = re.findall(r'URI="([^"]+)"', listed)
            uris += [line for line in text.splitlines() if line and not line.startswith("#")]
            for uri in uris:
                stored = f"{directory}/{uri}"
                assert stored in self.writes, f"{key} names {uri} before it is stored"
                assert stored not in self.deleted, f"{key} names deleted {uri}"
        await super().write(key, data)
        self.writes.append(key)

    async def delete(self, key: str) -> None:
        await super().delete(key)
        self.deleted.append(key)


def parsed(data: bytes) -> tuple[InitSegment, list[Fragment]]:
    items = parse_all(data)
    init = items[0]
    assert isinstance(init, InitSegment)
    return init, [item for item in items if isinstance(item, Fragment)]


def fragments(
    *specs: tuple[int, bool], start: int = 0, init: bytes | None = None
) -> list[Fragment]:
    """Fragments of (frames, keyframe) back to back from `start` (ticks at 30 fps)."""
    data = init or init_segment()
    time = start
    for sequence, (frames, keyframe) in enumerate(specs, 1):
        data += fragment(sequence, time, frames=frames, keyframe=keyframe)
        time += frames * FRAME
    return parsed(data)[1]


async def push_all(packager: Packager, items: Sequence[InitSegment | Fragment]) -> None:
    for item in items:
        await packager.push(item)


def make_packager(
    tmp_path: Path, settings: PackagerSettings | None = None
) -> tuple[Packager, RecordingStore]:
    store = RecordingStore(tmp_path / "media")
    return Packager(store, PREFIX, started_at=START, settings=settings), store


async def read_text(store: LocalMediaStore, name: str) -> str:
    return (await store.read(f"{PREFIX}/{name}")).decode()


async def test_segments_are_cut_at_the_first_keyframe_past_the_target(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path)
    init, _ = parsed(init_segment())
    await packager.push(init)
    # Keyframes every half second: two fragments make a segment.
    await push_all(packager, fragments(*[(15, True)] * 5))
    assert [s.uri for s in packager.segments] == ["seg_0.m4s", "seg_1.m4s"]
    summary = await packager.finish()

    assert [s.duration for s in packager.segments] == [1.0, 1.0, 0.5]
    assert summary.segment_count == 3
    assert summary.duration == 2.5
    assert summary.vod_playlist_key == f"{PREFIX}/vod.m3u8"
    assert await read_text(store, "index.m3u8") == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n"
        "#EXTINF:1.000,\n"
        "seg_0.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:01.000Z\n"
        "#EXTINF:1.000,\n"
        "seg_1.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:02.000Z\n"
        "#EXTINF:0.500,\n"
        "seg_2.m4s\n"
        "#EXT-X-ENDLIST\n"
    )
    assert await store.read(f"{PREFIX}/init.mp4") == init.data
    # A segment is its fragments' bytes, and parses as fragments after the init segment.
    segment = await store.read(f"{PREFIX}/seg_0.m4s")
    _, again = parsed(init.data + segment)
    assert [f.start for f in again] == [0, 15 * FRAME]


async def test_whole_gop_fragments_are_stored_without_waiting_for_the_next(
    tmp_path: Path,
) -> None:
    settings = PackagerSettings(fragments_start_at_keyframes=True)
    packager, store = make_packager(tmp_path, settings)
    await packager.push(parsed(init_segment())[0])
    one_second = fragments((30, True), (30, True))
    await packager.push(one_second[0])
    # Stored at once: the next keyframe need not arrive first.
    assert [s.uri for s in packager.segments] == ["seg_0.m4s"]
    assert "seg_0.m4s" in await read_text(store, "index.m3u8")
    await packager.push(one_second[1])
    assert [s.duration for s in packager.segments] == [1.0, 1.0]


async def test_fragments_without_keyframes_extend_the_segment(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path)
    await packager.push(parsed(init_segment())[0])
    # A keyframe every 1.5 s, fragments every 0.25 s.
    pattern = [(8, True), (7, False), (8, False), (7, False), (8, False), (7, False)]
    await push_all(packager, fragments(*pattern * 2))
    await packager.finish()
    assert [s.duration for s in packager.segments] == [1.5, 1.5]
    assert "#EXT-X-TARGETDURATION:2\n" in await read_text(store, "index.m3u8")


async def test_leading_fragments_without_a_keyframe_are_dropped(tmp_path: Path) -> None:
    packager, _ = make_packager(tmp_path)
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments((15, False), (15, False), (30, True), (30, True)))
    await packager.finish()
    assert [s.duration for s in packager.segments] == [1.0, 1.0]
    # The wall clock follows media time from the first kept fragment.
    assert packager.segments[0].program_date_time == START


async def test_fragment_before_the_init_segment_is_refused(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path)
    with pytest.raises(MediaFormatError, match="before the init segment"):
        await packager.push(fragments((30, True))[0])
    assert await store.list_keys() == []


async def test_sliding_window_deletes_old_segments_without_recording(tmp_path: Path) -> None:
    settings = PackagerSettings(dvr_window=3, keep_recording=False)
    packager, store = make_packager(tmp_path, settings)
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments(*[(30, True)] * 13))  # 12 segments + 1 pending

    playlist = await read_text(store, "index.m3u8")
    assert "#EXT-X-MEDIA-SEQUENCE:9\n" in playlist
    assert re.findall(r"seg_\d+\.m4s", playlist) == ["seg_9.m4s", "seg_10.m4s", "seg_11.m4s"]
    # Removed segments stay for their duration plus the playlist's (RFC 8216 6.2.2).
    remaining = await store.list_keys(f"{PREFIX}/seg_")
    assert sorted(remaining) == sorted(f"{PREFIX}/seg_{n}.m4s" for n in range(5, 12))

    summary = await packager.finish()
    assert summary.vod_playlist_key is None
    assert not await store.exists(f"{PREFIX}/vod.m3u8")
    assert (await read_text(store, "index.m3u8")).endswith("seg_12.m4s\n#EXT-X-ENDLIST\n")


async def test_recording_keeps_every_segment_for_the_vod(tmp_path: Path) -> None:
    settings = PackagerSettings(dvr_window=3, keep_recording=True)
    packager, store = make_packager(tmp_path, settings)
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments(*[(30, True)] * 6))
    await packager.finish()

    live = await read_text(store, "index.m3u8")
    assert re.findall(r"seg_\d+\.m4s", live) == ["seg_3.m4s", "seg_4.m4s", "seg_5.m4s"]
    assert len(await store.list_keys(f"{PREFIX}/seg_")) == 6
    vod = await read_text(store, "vod.m3u8")
    assert vod.startswith(
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n"
        "#EXTINF:1.000,\n"
        "seg_0.m4s\n"
    )
    assert re.findall(r"seg_\d+\.m4s", vod) == [f"seg_{n}.m4s" for n in range(6)]
    assert vod.endswith("seg_5.m4s\n#EXT-X-ENDLIST\n")


async def test_no_window_keeps_an_event_playlist(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path, PackagerSettings(dvr_window=None))
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments(*[(30, True)] * 8))
    playlist = await read_text(store, "index.m3u8")
    assert "#EXT-X-PLAYLIST-TYPE:EVENT\n" in playlist
    assert len(re.findall(r"seg_\d+\.m4s", playlist)) == 7


async def test_discontinuity_with_a_new_init_segment_and_wall_clock(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path)
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments((30, True), (30, True), (15, True)))
    # ffmpeg restarts a minute later with another resolution; its timestamps restart at 0.
    restarted = START + timedelta(seconds=60)
    await packager.discontinuity(wall_clock=restarted)
    assert [s.duration for s in packager.segments] == [1.0, 1.0, 0.5]  # pending flushed
    new_init = init_segment(width=640, height=480)
    await packager.push(parsed(new_init)[0])
    await push_all(packager, fragments((30, True), (30, True), init=new_init))
    await packager.finish()

    assert await store.read(f"{PREFIX}/init_1.mp4") == new_init
    assert (await read_text(store, "index.m3u8")).endswith(
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:02.000Z\n"
        "#EXTINF:0.500,\n"
        "seg_2.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        '#EXT-X-MAP:URI="init_1.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:01:00.000Z\n"
        "#EXTINF:1.000,\n"
        "seg_3.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:01:01.000Z\n"
        "#EXTINF:1.000,\n"
        "seg_4.m4s\n"
        "#EXT-X-ENDLIST\n"
    )


async def test_discontinuity_with_the_same_init_continues_the_clock(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path)
    init = parsed(init_segment())[0]
    await packager.push(init)
    await push_all(packager, fragments((30, True), (30, True)))
    await packager.discontinuity()
    await packager.push(init)  # the restarted ffmpeg sends an identical init segment
    await push_all(packager, fragments((30, True), (30, True)))
    await packager.finish()

    assert not await store.exists(f"{PREFIX}/init_1.mp4")
    playlist = await read_text(store, "index.m3u8")
    assert playlist.count("#EXT-X-MAP") == 1
    assert playlist.count("#EXT-X-DISCONTINUITY\n") == 1
    assert [s.program_date_time - START for s in packager.segments] == [
        timedelta(seconds=n) for n in range(4)
    ]
    assert [s.discontinuity for s in packager.segments] == [False, False, True, False]


async def test_timestamps_jumping_back_are_a_discontinuity(tmp_path: Path) -> None:
    packager, _ = make_packager(tmp_path)
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments((30, True), (30, True), start=90 * FRAME))
    await push_all(packager, fragments((30, True), (30, True)))  # back to 0 without notice
    await packager.finish()
    assert [s.discontinuity for s in packager.segments] == [False, False, True, False]
    assert [s.program_date_time - START for s in packager.segments] == [
        timedelta(seconds=n) for n in range(4)
    ]


async def test_timestamps_jumping_ahead_keep_the_gap_on_the_clock(tmp_path: Path) -> None:
    packager, _ = make_packager(tmp_path)
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments((30, True), (30, True)))
    await push_all(packager, fragments((30, True), start=300 * FRAME))  # 10 s later
    await packager.finish()
    assert [s.discontinuity for s in packager.segments] == [False, False, True]
    assert packager.segments[2].program_date_time == START + timedelta(seconds=10)


async def test_discontinuity_sequence_counts_discontinuities_that_slid_out(
    tmp_path: Path,
) -> None:
    packager, store = make_packager(tmp_path, PackagerSettings(dvr_window=3))
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments((30, True), (30, True)))
    await packager.discontinuity()
    await push_all(packager, fragments(*[(30, True)] * 6))
    playlist = await read_text(store, "index.m3u8")
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in playlist
    assert "#EXT-X-DISCONTINUITY\n" not in playlist


async def test_bad_bytes_mid_stream_keep_what_was_stored(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path)
    reader = asyncio.StreamReader()
    data = init_segment() + b"".join(fragment(n, n * 30 * FRAME) for n in range(3))
    reader.feed_data(data + b"\x00\x00\x00\x05junk and more junk")
    reader.feed_eof()
    with pytest.raises(MediaFormatError, match="smaller than its header"):
        await packager.consume(reader)
    assert [s.uri for s in packager.segments] == ["seg_0.m4s", "seg_1.m4s"]

    await packager.finish()  # the last complete fragment still becomes a segment
    init = await store.read(f"{PREFIX}/init.mp4")
    for segment in packager.segments:
        _, parts = parsed(init + await store.read(f"{PREFIX}/{segment.uri}"))
        assert len(parts) == 1
    assert (await read_text(store, "index.m3u8")).endswith("seg_2.m4s\n#EXT-X-ENDLIST\n")


async def test_finish_twice_and_push_after_finish(tmp_path: Path) -> None:
    packager, _ = make_packager(tmp_path)
    init = parsed(init_segment())[0]
    await packager.push(init)
    await push_all(packager, fragments((30, True)))
    first = await packager.finish()
    assert await packager.finish() == first
    with pytest.raises(RuntimeError, match="finished"):
        await packager.push(init)


async def test_finish_without_media_writes_nothing(tmp_path: Path) -> None:
    packager, store = make_packager(tmp_path)
    summary = await packager.finish()
    assert (summary.segment_count, summary.vod_playlist_key) == (0, None)
    assert await store.list_keys() == []


async def test_measured_bitrates_and_frame_rate(tmp_path: Path) -> None:
    packager, _ = make_packager(tmp_path)
    assert packager.frame_rate is None
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments((30, True), (30, True), (30, True)))
    size = packager.segments[0].size
    assert packager.peak_bitrate == size * 8
    assert packager.average_bitrate == size * 8
    assert packager.frame_rate == 30


# --- low-latency HLS -------------------------------------------------------------------------


def test_low_latency_playlist_text() -> None:
    part = PlaylistPart
    playlist = MediaPlaylist(
        segments=(
            PlaylistSegment("seg_4.m4s", 1.0, "init.mp4", START),
            PlaylistSegment(
                "seg_5.m4s",
                1.0,
                "init.mp4",
                START + timedelta(seconds=1),
                parts=(part("part_5_0.m4s", 0.5, True), part("part_5_1.m4s", 0.5, False)),
            ),
        ),
        target_duration=1,
        media_sequence=4,
        part_target=0.5,
        open_segment=OpenSegment(
            map_uri="init.mp4",
            program_date_time=START + timedelta(seconds=2),
            discontinuity=False,
            parts=(part("part_6_0.m4s", 0.3, True),),
            preload_hint="part_6_1.m4s",
        ),
    )
    assert render_media_playlist(playlist) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500\n"
        "#EXT-X-PART-INF:PART-TARGET=0.500\n"
        "#EXT-X-MEDIA-SEQUENCE:4\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n"
        "#EXTINF:1.000,\n"
        "seg_4.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:01.000Z\n"
        '#EXT-X-PART:DURATION=0.50000,URI="part_5_0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.50000,URI="part_5_1.m4s"\n'
        "#EXTINF:1.000,\n"
        "seg_5.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:02.000Z\n"
        '#EXT-X-PART:DURATION=0.30000,URI="part_6_0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_6_1.m4s"\n'
    )
    # Ended, the same playlist lists whole segments only.
    ended = render_media_playlist(dataclasses.replace(playlist, ended=True))
    assert "PART" not in ended
    assert "SERVER-CONTROL" not in ended
    assert ended.endswith("seg_5.m4s\n#EXT-X-ENDLIST\n")


@pytest.mark.parametrize(
    ("name", "parsed_name"),
    [
        ("part_12_3.m4s", (12, 3)),
        ("part_0_0.m4s", (0, 0)),
        ("seg_12.m4s", None),
        ("part_12.m4s", None),
        ("part_a_1.m4s", None),
        ("part_1_2_3.m4s", None),
        ("part_-1_2.m4s", None),
    ],
)
def test_part_names(name: str, parsed_name: tuple[int, int] | None) -> None:
    assert parse_part_uri(name) == parsed_name
    if parsed_name is not None:
        assert part_uri(*parsed_name) == name


def low_latency(tmp_path: Path) -> tuple[Packager, RecordingStore]:
    return make_packager(tmp_path, PackagerSettings(part_target=0.5))


async def test_every_fragment_is_stored_and_listed_as_a_part(tmp_path: Path) -> None:
    packager, store = low_latency(tmp_path)
    await packager.push(parsed(init_segment())[0])
    first, second, third = fragments((15, True), (15, False), (15, True))
    await packager.push(first)
    text = await read_text(store, "index.m3u8")
    # Listed before any segment is complete, with the next part hinted.
    assert '#EXT-X-PART:DURATION=0.50000,URI="part_0_0.m4s",INDEPENDENT=YES' in text
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_0_1.m4s"' in text
    assert "#EXTINF" not in text
    assert await store.read(f"{PREFIX}/part_0_0.m4s") == first.data
    await packager.push(second)
    text = await read_text(store, "index.m3u8")
    assert 'URI="part_0_1.m4s"\n' in text
    # One second in, a keyframe is due: the hint names the next segment's first part.
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_1_0.m4s"' in text
    await packager.push(third)
    text = await read_text(store, "index.m3u8")
    assert text.index("part_0_1.m4s") < text.index("seg_0.m4s") < text.index("part_1_0.m4s")
    assert await store.read(f"{PREFIX}/seg_0.m4s") == first.data + second.data
    assert [p.uri for p in packager.segments[0].parts] == ["part_0_0.m4s", "part_0_1.m4s"]


async def test_the_hint_follows_the_keyframe_interval(tmp_path: Path) -> None:
    packager, store = low_latency(tmp_path)
    await packager.push(parsed(init_segment())[0])
    # A keyframe every 1.5 s (OBS-like), parts of 0.5 s: segments of 1.5 s.
    pattern = [(15, True), (15, False), (15, False)] * 2
    await push_all(packager, fragments(*pattern, (15, True), (15, False)))
    assert [s.duration for s in packager.segments] == [1.5, 1.5]
    # 1.0 s into the third segment: long enough, but the keyframe is half a second away.
    text = await read_text(store, "index.m3u8")
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_2_2.m4s"' in text


async def test_parts_are_listed_near_the_edge_and_deleted_later(tmp_path: Path) -> None:
    packager, store = low_latency(tmp_path)
    await packager.push(parsed(init_segment())[0])
    await push_all(packager, fragments(*[(15, True), (15, False)] * 14))
    text = await read_text(store, "index.m3u8")
    listed = sorted(set(re.findall(r"part_(\d+)_\d+\.m4s", text)), key=int)
    # Three target durations back from the edge: the open segment 13 (1 s so far), 12 and 11;
    # the preload hint names segment 14's first part.
    assert listed == ["11", "12", "13", "14"]
    stored = {k.rpartition("/")[2] for k in await store.list_keys(PREFIX) if "part_" in k}
    assert "part_2_0.m4s" not in stored  # older than the kept ten segments
    assert {"part_3_0.m4s", "part_12_1.m4s", "part_13_0.m4s"} <= stored
    await packager.finish()
    assert [k for k in await store.list_keys(PREFIX) if "part_" in k] == []
    ended = await read_text(store, "index.m3u8")
    assert "PART" not in ended
    assert ended.endswith("seg_13.m4s\n#EXT-X-ENDLIST\n")


async def test_blocking_reload_waits_for_the_part(tmp_path: Path) -> None:
    packager, _ = low_latency(tmp_path)
    await packager.push(parsed(init_segment())[0])
    first, second, third = fragments((15, True), (15, False), (15, True))
    await packager.push(first)
    await asyncio.wait_for(packager.wait_for_playlist(0, 0), 0.01)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(packager.wait_for_playlist(0, 1), 0.01)
    waiting = asyncio.create_task(packager.wait_for_playlist(0, 1))
    segment_waiting = asyncio.create_task(packager.wait_for_playlist(1, None))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await packager.push(second)
    await asyncio.wait_for(waiting, 1)
    assert not segment_waiting.done()
    await packager.push(third)
    assert packager.expected_sequence() == 1
    # Segment 1 is open, not complete: asking for it whole still waits.
    await asyncio.sleep(0.01)
    assert not segment_waiting.done()
    await packager.finish()
    await asyncio.wait_for(segment_waiting, 1)  # ended: the playlist will not grow


async def test_waiting_for_a_part_that_will_never_exist(tmp_path: Path) -> None:
    packager, _ = low_latency(tmp_path)
    await packager.push(parsed(init_segment())[0])
    first, second, third = fragments((15, True), (15, False), (15, True))
    await push_all(packager, [first, second])
    hinted = asyncio.create_task(packager.wait_for_part(1, 0))
    mispredicted = asyncio.create_task(packager.wait_for_part(0, 2))
    await asyncio.sleep(0.01)
    assert not hinted.done()
    assert not mispredicted.done()
    await packager.push(third)
    assert await asyncio.wait_for(hinted, 1)
    # Segment 0 closed with two parts: its third is answered at once, not after a timeout.
    assert not await asyncio.wait_for(mispredicted, 1)
    assert await asyncio.wait_for(packager.wait_for_part(0, 1), 0.01)
    # Far beyond the hint: refused at once.
    assert not await asyncio.wait_for(packager.wait_for_part(5, 0), 0.01)
    await packager.finish()
    assert not await asyncio.wait_for(packager.wait_for_part(1, 1), 0.01)


def test_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="between 1 and 2"):
        PackagerSettings(target_duration=0.5)
    with pytest.raises(ValueError, match="between 1 and 2"):
        PackagerSettings(target_duration=2.5)
    with pytest.raises(ValueError, match="positive"):
        PackagerSettings(dvr_window=0)
    with pytest.raises(ValueError, match="aware"):
        Packager(LocalMediaStore(tmp_path), "x", started_at=datetime(2026, 1, 1))  # noqa: DTZ001


# --- media store -----------------------------------------------------------------------------


async def test_store_write_read_and_ranges(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    await store.write("live/a/seg_0.m4s", b"0123456789")
    await store.write("live/a/seg_0.m4s", b"abcdefghij")  # replaced
    assert await store.read("live/a/seg_0.m4s") == b"abcdefghij"
    assert await store.read_range("live/a/seg_0.m4s", 2, 5) == b"cde"
    assert await store.read_range("live/a/seg_0.m4s", 8) == b"ij"
    assert await store.size("live/a/seg_0.m4s") == 10
    assert await store.exists("live/a/seg_0.m4s")
    assert not await store.exists("live/a/seg_1.m4s")
    assert sorted(p.name for p in (tmp_path / "live/a").iterdir()) == ["seg_0.m4s"]
    with pytest.raises(ValueError, match="invalid range"):
        await store.read_range("live/a/seg_0.m4s", 5, 2)


async def test_store_missing_objects(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    for read in (store.read("a/b"), store.size("a/b"), store.read_range("a/b", 0, 1)):
        with pytest.raises(MediaNotFound):
            await read
    await store.write("a/b/c", b"x")
    with pytest.raises(MediaNotFound):
        await store.read("a/b")  # a directory is not an object
    with pytest.raises(MediaNotFound):
        await store.size("a/b")
    await store.delete("nothing/here")  # deleting what is absent is fine


async def test_store_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalMediaStore(tmp_path)
    await store.write("live/index.m3u8", b"old playlist")

    def write_half_then_fail(self: Path, data: bytes) -> int:
        with self.open("wb") as file:
            file.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        await store.write("live/index.m3u8", b"new playlist, longer")
    monkeypatch.undo()
    assert await store.read("live/index.m3u8") == b"old playlist"
    assert [p.name for p in (tmp_path / "live").iterdir()] == ["index.m3u8"]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside",
        "live/../../outside",
        "live/./seg",
        "live//seg",
        ".hidden",
        "live/.tmp",
        "live\\..\\outside",
        "live/seg 1",
        "live/seg/",
        "x" * 600,
        "live/\x00",
    ],
)
async def test_store_refuses_unsafe_keys(tmp_path: Path, key: str) -> None:
    store = LocalMediaStore(tmp_path / "root")
    with pytest.raises(InvalidMediaKey):
        await store.write(key, b"x")
    with pytest.raises(InvalidMediaKey):
        await store.read(key)
    with pytest.raises(InvalidMediaKey):
        await store.delete(key)
    assert not (tmp_path / "outside").exists()


def test_prefixes_are_validated(tmp_path: Path) -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("live/a/") == "live/a/"
    with pytest.raises(InvalidMediaKey):
        validate_prefix("../")
    with pytest.raises(InvalidMediaKey):
        Packager(LocalMediaStore(tmp_path), "../x", started_at=START)


async def test_store_lists_and_deletes_by_prefix(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    for key in ["live/a/seg_1.m4s", "live/a/seg_10.m4s", "live/a/init.mp4", "live/b/seg_1.m4s"]:
        await store.write(key, b"x")
    assert await store.list_keys("live/a/seg_1") == ["live/a/seg_1.m4s", "live/a/seg_10.m4s"]
    assert await store.list_keys("live/") == [
        "live/a/init.mp4",
        "live/a/seg_1.m4s",
        "live/a/seg_10.m4s",
        "live/b/seg_1.m4s",
    ]
    assert await store.list_keys("nothing/") == []
    assert await store.delete_prefix("live/a/") == 3
    assert await store.list_keys() == ["live/b/seg_1.m4s"]
    assert not await asyncio.to_thread((tmp_path / "live/a").exists)  # emptied dirs go too
    assert await asyncio.to_thread(tmp_path.exists)


# --- real ffmpeg -----------------------------------------------------------------------------

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TEST_SOURCE = [
    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
    "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
    "-c:a", "aac", "-b:a", "64k",
]  # fmt: skip


async def run_ffmpeg(*args: str) -> str:
    """Run ffmpeg to completion; return its stderr and fail on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", *args, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = stderr.decode(errors="replace")
    assert process.returncode == 0, output
    return output


def duration_of(ffmpeg_output: str) -> float:
    match = re.search(r"Duration: (\d+):(\d+):([\d.]+)", ffmpeg_output)
    assert match, ffmpeg_output
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def test_real_ffmpeg_stream_is_packaged_and_plays_back(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    packager = Packager(store, PREFIX, started_at=START)
    process = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", *TEST_SOURCE, "-t", "4",
        "-f", "mp4", "-movflags", MOVFLAGS, "pipe:1",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        await asyncio.wait_for(packager.consume(process.stdout), 60)
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    summary = await packager.finish()

    assert packager.init is not None
    assert packager.init.codecs == "avc1.64000d,mp4a.40.2"
    assert summary.segment_count == 4
    assert all(s.duration == pytest.approx(1.0, abs=0.05) for s in packager.segments)
    keys = await store.list_keys(f"{PREFIX}/")
    for name in ["init.mp4", "index.m3u8", "vod.m3u8", *(f"seg_{n}.m4s" for n in range(4))]:
        assert f"{PREFIX}/{name}" in keys
    playlist = await read_text(store, "index.m3u8")
    target = re.search(r"#EXT-X-TARGETDURATION:(\d+)", playlist)
    assert target is not None
    assert target[1] == "1"
    assert all(round(float(d)) <= 1 for d in re.findall(r"#EXTINF:([\d.]+),", playlist))
    assert playlist.endswith("#EXT-X-ENDLIST\n")

    for name in ["index.m3u8", "vod.m3u8"]:
        output = await run_ffmpeg(
            "-i", str(store.path_for(f"{PREFIX}/{name}")), "-c", "copy", "-f", "null", "-"
        )
        assert "Video: h264" in output
        assert "Audio: aac" in output
        assert duration_of(output) == pytest.approx(4.0, abs=0.1)


async def test_two_renditions_from_one_ffmpeg_through_pass_fds(tmp_path: Path) -> None:
    flv = tmp_path / "publish.flv"
    await run_ffmpeg("-loglevel", "error", *TEST_SOURCE, "-t", "3", "-f", "flv", str(flv))
    ladder = build_ladder(
        width=320, height=240, frame_rate=30, video_codec="h264", rungs=[Rung(120, 150_000)]
    )
    assert [(r.name, r.width, r.height, r.copy_video) for r in ladder] == [
        ("source", 320, 240, True),
        ("120p", 160, 120, False),
    ]
    store = LocalMediaStore(tmp_path / "media")
    pipes = [os.pipe() for _ in ladder]
    thumbnail = tmp_path / "thumb.jpg"
    args = build_ffmpeg_args(
        FFMPEG,
        input_format="flv",
        outputs=[RenditionOutput(r, f"pipe:{w}") for r, (_, w) in zip(ladder, pipes, strict=True)],
        audio_codec="aac",
        thumbnail=ThumbnailOutput(str(thumbnail), interval=1),
    )
    packagers = [Packager(store, f"live/s/{r.name}", started_at=START) for r in ladder]
    try:
        with flv.open("rb") as stdin:
            process = await asyncio.create_subprocess_exec(
                *args, stdin=stdin, pass_fds=[w for _, w in pipes]
            )
    finally:
        for _, write_end in pipes:
            os.close(write_end)  # ffmpeg holds its own copies; EOF comes when it exits

    async def package(packager: Packager, read_end: int) -> None:
        async with pipe_stream(read_end) as reader:
            await packager.consume(reader)

    try:
        await asyncio.wait_for(
            asyncio.gather(*(package(p, r) for p, (r, _) in zip(packagers, pipes, strict=True))),
            60,
        )
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    for packager in packagers:
        await packager.finish()

    variants = []
    for rendition, packager in zip(ladder, packagers, strict=True):
        assert packager.init is not None
        assert packager.init.video is not None
        assert (packager.init.video.width, packager.init.video.height) == (
            rendition.width,
            rendition.height,
        )
        assert [round(s.duration, 1) for s in packager.segments] == [1.0, 1.0, 1.0]
        uri = f"{rendition.name}/index.m3u8"
        variants.append(variant_for(rendition, uri=uri, codecs=packager.init.codecs))
    # Passthrough keeps the source's keyframes; the transcode forces its own on the same grid.
    assert [s.uri for s in packagers[0].segments] == [s.uri for s in packagers[1].segments]
    master = render_master_playlist(variants)
    assert 'RESOLUTION=160x120,FRAME-RATE=30.000,CODECS="avc1.64000b,mp4a.40.2"' in master
    await store.write("live/s/master.m3u8", master.encode())
    assert thumbnail.read_bytes().startswith(b"\xff\xd8")

    master_path = str(store.path_for("live/s/master.m3u8"))
    output = await run_ffmpeg("-i", master_path, "-map", "0", "-c", "copy", "-f", "null", "-")
    assert "320x240" in output
    assert "160x120" in output
    assert duration_of(output) == pytest.approx(3.0, abs=0.1)
