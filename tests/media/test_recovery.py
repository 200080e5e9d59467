"""Crash recovery of stored media: what a killed packager left is closed as `finish()` would."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from stagecast.media.packager import Packager, PackagerSettings
from stagecast.media.playlists import read_listed_segments
from stagecast.media.recovery import close_stored_stream
from stagecast.media.store import LocalMediaStore
from tests.media.test_fmp4 import init_segment
from tests.media.test_packager import START, fragments, parsed, push_all

STREAM = "live/stream1"
LOW_LATENCY = PackagerSettings(dvr_window=30, part_target=0.5)


async def _crashed_and_finished(
    tmp_path: Path, settings: PackagerSettings, *, restart_with_new_init: bool
) -> tuple[LocalMediaStore, LocalMediaStore]:
    """The same media through two packagers: one killed before `finish()`, one finished."""
    stores = []
    for name, finish in (("crashed", False), ("finished", True)):
        store = LocalMediaStore(tmp_path / name)
        packager = Packager(store, f"{STREAM}/source", started_at=START, settings=settings)
        await packager.push(parsed(init_segment())[0])
        await push_all(packager, fragments(*[(15, True)] * 9))
        if restart_with_new_init:
            await packager.discontinuity(wall_clock=START + timedelta(seconds=30))
            new_init = init_segment(width=640, height=480)
            await packager.push(parsed(new_init)[0])
            await push_all(packager, fragments(*[(15, True)] * 5, init=new_init))
        if finish:
            await packager.finish()
        await store.write(f"{STREAM}/master.m3u8", b"#EXTM3U\nsource/index.m3u8\n")
        stores.append(store)
    return stores[0], stores[1]


async def _text(store: LocalMediaStore, key: str) -> str:
    return (await store.read(f"{STREAM}/{key}")).decode()


async def test_a_crashed_rendition_is_closed_as_finish_would(tmp_path: Path) -> None:
    crashed, finished = await _crashed_and_finished(
        tmp_path, LOW_LATENCY, restart_with_new_init=True
    )
    live = await _text(crashed, "source/index.m3u8")
    assert "PRELOAD-HINT" in live  # what the crash left: a hint for a part never to come
    stored_before = {
        key: await crashed.read(key)
        for key in await crashed.list_keys(f"{STREAM}/")
        if re.search(r"(seg_\d+\.m4s|init(_\d+)?\.mp4)$", key)
    }

    recovered = await close_stored_stream(crashed, STREAM, started_at=START, keep_recording=True)

    # The VOD is the one the packager would have written: durations, maps, discontinuity.
    assert await _text(crashed, "source/vod.m3u8") == await _text(finished, "source/vod.m3u8")
    ended = await _text(crashed, "source/index.m3u8")
    assert ended.rstrip().endswith("#EXT-X-ENDLIST")
    assert "PRELOAD-HINT" not in ended
    assert "#EXT-X-PART" not in ended
    assert ended.count("#EXT-X-DISCONTINUITY\n") == 1
    assert not [k for k in await crashed.list_keys(f"{STREAM}/") if "/part_" in k]
    assert await _text(crashed, "master.m3u8") == "#EXTM3U\nsource/vod.m3u8\n"
    # Nothing stored was rewritten.
    for key, data in stored_before.items():
        assert await crashed.read(key) == data

    summary = recovered.renditions["source"]
    assert summary.vod_playlist_key == f"{STREAM}/source/vod.m3u8"
    assert summary.segment_count == 8  # 4.5 s then 2.5 s, in segments of at most 1 s
    assert abs(summary.duration - 7.0) < 1e-6
    # The media ends where the last segment ends on the wall clock (after the restart).
    assert recovered.ended_at == START + timedelta(seconds=32.5)


async def test_old_segments_beyond_the_live_window_are_dated_from_their_durations(
    tmp_path: Path,
) -> None:
    settings = PackagerSettings(dvr_window=3, part_target=0.5)
    crashed, finished = await _crashed_and_finished(tmp_path, settings, restart_with_new_init=False)
    await close_stored_stream(crashed, STREAM, started_at=START, keep_recording=True)
    assert await _text(crashed, "source/vod.m3u8") == await _text(finished, "source/vod.m3u8")


async def test_without_recording_only_the_live_playlist_is_closed(tmp_path: Path) -> None:
    settings = PackagerSettings(dvr_window=3, part_target=0.5, keep_recording=False)
    crashed, _ = await _crashed_and_finished(tmp_path, settings, restart_with_new_init=False)
    recovered = await close_stored_stream(crashed, STREAM, started_at=START, keep_recording=False)
    assert recovered.renditions["source"].vod_playlist_key is None
    assert not await crashed.exists(f"{STREAM}/source/vod.m3u8")
    assert await _text(crashed, "master.m3u8") == "#EXTM3U\nsource/index.m3u8\n"
    assert (await _text(crashed, "source/index.m3u8")).rstrip().endswith("#EXT-X-ENDLIST")


async def test_an_unreadable_segment_is_left_out_and_nothing_at_all_is_no_recording(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed_and_finished(tmp_path, LOW_LATENCY, restart_with_new_init=False)
    await crashed.write(f"{STREAM}/source/seg_2.m4s", b"not a fragment")
    recovered = await close_stored_stream(crashed, STREAM, started_at=START, keep_recording=True)
    vod = await _text(crashed, "source/vod.m3u8")
    assert "seg_2.m4s" not in vod
    listed, _ = read_listed_segments(vod)
    assert listed["seg_3.m4s"].discontinuity  # the gap is a discontinuity
    assert recovered.renditions["source"].segment_count == 4  # of 5: seg_2 is left out

    empty = LocalMediaStore(tmp_path / "empty")
    nothing = await close_stored_stream(empty, STREAM, started_at=START, keep_recording=True)
    assert nothing.renditions == {}
    assert nothing.ended_at is None
