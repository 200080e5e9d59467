"""Long keyframe intervals (OBS's default of 250 frames): measured, told, re-encoded."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from stagecast.media.keyframes import (
    KEYFRAME_WARNING,
    KeyframeCadence,
    StreamHealth,
    recommended_keyframe_interval,
)
from stagecast.media.rtmp import FlvTag, TagType
from tests.media.conftest import (
    OBS_DEFAULT_KEYFRAMES,
    MediaServer,
    eventually,
    media_settings,
    run_ffmpeg,
    serve_media,
    start_publisher,
    x264_keyframes,
)
from tests.realtime.conftest import Listener

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01"


def video(timestamp: int, *, keyframe: bool) -> FlvTag:
    return FlvTag(
        TagType.VIDEO, timestamp, (b"\x17" if keyframe else b"\x27") + b"\x01\x00\x00\x00"
    )


def feed(cadence: KeyframeCadence, tags: list[FlvTag]) -> list[bool]:
    return [cadence.observe(tag) for tag in tags]


# --- measuring -------------------------------------------------------------------------------


def test_two_keyframes_a_second_apart_are_measured_and_fine() -> None:
    cadence = KeyframeCadence(2.0)
    changes = feed(
        cadence,
        [
            FlvTag(TagType.VIDEO, 0, AVC_HEADER),  # the sequence header is no keyframe
            FlvTag(TagType.AUDIO, 0, b"\xaf\x01\x00"),
            video(0, keyframe=True),
            *[video(t, keyframe=False) for t in range(33, 1000, 33)],
        ],
    )
    assert not any(changes)
    assert not cadence.known
    assert cadence.interval is None
    assert cadence.observe(video(1001, keyframe=True)) is True
    assert cadence.known
    assert cadence.interval == pytest.approx(1.001)
    assert not cadence.too_long
    assert cadence.observe(video(2002, keyframe=True)) is False  # nothing new to tell


def test_a_late_keyframe_is_known_to_be_too_far_before_it_comes() -> None:
    cadence = KeyframeCadence(2.0)
    feed(
        cadence, [video(0, keyframe=True), *[video(t, keyframe=False) for t in range(33, 2100, 33)]]
    )
    assert not cadence.known  # 2.1 s: within the slack of frame timing
    assert cadence.observe(video(2134, keyframe=False)) is True
    assert cadence.known
    assert cadence.too_long
    assert cadence.interval is None  # not measured yet
    assert cadence.observe(video(8333, keyframe=True)) is True  # now it is
    assert cadence.interval == pytest.approx(8.333)
    assert cadence.observe(video(16667, keyframe=True)) is False


def test_two_seconds_at_29_97_fps_is_not_too_far() -> None:
    cadence = KeyframeCadence(2.0)
    feed(cadence, [video(0, keyframe=True), video(2002, keyframe=True)])
    assert cadence.known
    assert not cadence.too_long


def test_one_long_interval_among_short_ones_stays_too_far() -> None:
    cadence = KeyframeCadence(2.0)
    feed(cadence, [video(0, keyframe=True), video(500, keyframe=True)])  # a scene cut
    assert cadence.known
    assert not cadence.too_long
    assert cadence.observe(video(9000, keyframe=True)) is True
    assert cadence.too_long
    assert cadence.interval == pytest.approx(8.5)  # the longest lately
    assert not any(feed(cadence, [video(9000 + 500 * n, keyframe=True) for n in range(1, 20)]))
    assert cadence.too_long  # for the rest of the publish
    assert cadence.interval == pytest.approx(0.5)  # 8.5 s has left the recent intervals


def test_a_timeline_that_restarts_is_measured_afresh() -> None:
    cadence = KeyframeCadence(2.0)
    feed(cadence, [video(5000, keyframe=True), video(100, keyframe=False)])
    assert not cadence.too_long  # not a 4.9 s interval, nor a negative one
    assert cadence.observe(video(1100, keyframe=True)) is False  # no keyframe since the restart
    assert cadence.observe(video(2100, keyframe=True)) is True
    assert cadence.interval == pytest.approx(1.0)


def test_the_health_tells_what_to_do() -> None:
    fine = StreamHealth(1.0, 2.0, keyframes_too_far=False, reencoding=False)
    assert fine.payload() == {
        "keyframe_interval": 1.0,
        "max_keyframe_interval": 2.0,
        "reencoding": False,
        "warning": None,
        "message": None,
    }
    unknown = StreamHealth(None, 2.0, keyframes_too_far=True, reencoding=True)
    assert unknown.warning == KEYFRAME_WARNING
    assert unknown.message is not None
    assert "more than 2 s apart" in unknown.message
    assert "re-encoded" in unknown.message
    assert "Keyframe Interval to 1 s (or 2 s)" in unknown.message
    passed = StreamHealth(8.3333, 2.0, keyframes_too_far=True, reencoding=False)
    assert passed.payload()["keyframe_interval"] == 8.333
    assert passed.message is not None
    assert "8.3 s apart" in passed.message
    assert "players without low-latency support fall far behind" in passed.message


@pytest.mark.parametrize(
    ("segment_seconds", "max_keyframe_seconds", "advised"),
    [(1.0, 2.0, 1), (0.5, 2.0, 1), (1.5, 2.0, 2), (6.0, 10.0, 2), (2.0, 1.0, 1), (1.0, 0.5, 1)],
)
def test_the_advice_is_whole_seconds_obs_accepts(
    segment_seconds: float, max_keyframe_seconds: float, advised: int
) -> None:
    assert recommended_keyframe_interval(segment_seconds, max_keyframe_seconds) == advised


# --- end to end ------------------------------------------------------------------------------


_EXTINF = re.compile(r"#EXTINF:([\d.]+),")


async def finish(publisher: asyncio.subprocess.Process) -> None:
    _, stderr = await asyncio.wait_for(publisher.communicate(), 60)
    assert publisher.returncode == 0, stderr.decode(errors="replace")


async def in_channel_room(server: MediaServer) -> Listener:
    """The creator's socket in their channel's room, as the dashboard joins it."""
    socket = await server.live.connect(server.owner)
    joined = await socket.call("stream:join", {"channelId": server.channel["id"]})
    assert joined["ok"], joined
    return socket


async def health_events(socket: Listener, count: int) -> list[dict[str, Any]]:
    await eventually(lambda: _received(socket, count), within=30)
    events: list[dict[str, Any]] = socket.received("stream:health")
    for event in events:
        assert event["type"] == "stream:health"
        assert set(event["payload"]) >= {"channel_id", "stream_id", "keyframe_interval"}
    return [event["payload"] for event in events]


async def _received(socket: Listener, count: int) -> bool:
    return len(socket.received("stream:health")) >= count


async def debug_of(server: MediaServer, stream_id: str) -> dict[str, Any]:
    answer = await server.live.http.get(
        f"/livestream/{stream_id}/debug", headers=server.owner.headers
    )
    assert answer.status_code == 200, answer.text
    broadcast: dict[str, Any] = answer.json()["broadcast"]
    return broadcast


async def recording(server: MediaServer, stream_id: str, rendition: str) -> str:
    """A rendition's VOD playlist, once the stream has ended."""

    async def vod() -> str | None:
        answer = await server.live.http.get(f"/hls/{stream_id}/{rendition}/vod.m3u8")
        return answer.text if answer.status_code == 200 else None

    text: str = await eventually(vod, within=40)
    return text


def durations(playlist: str) -> list[float]:
    return [float(value) for value in _EXTINF.findall(playlist)]


async def test_obs_default_keyframes_are_reencoded_into_one_second_segments(
    media_server: MediaServer,
) -> None:
    server, http = media_server, media_server.live.http
    socket = await in_channel_room(server)
    publisher = await start_publisher(server.rtmp_url, 6, OBS_DEFAULT_KEYFRAMES)

    [health] = await health_events(socket, 1)
    stream_id = health["stream_id"]
    assert health == {
        "channel_id": server.channel["id"],
        "stream_id": stream_id,
        "keyframe_interval": None,  # the second keyframe is 8.3 s away: too far, whatever
        "max_keyframe_interval": 2.0,
        "reencoding": True,
        "warning": KEYFRAME_WARNING,
        "message": health["message"],
    }
    assert "Keyframe Interval to 1 s" in health["message"]
    # The go-live page and the dashboard read it on load too, with the advice.
    key = (await http.get("/api/v1/live/streams/me/key", headers=server.owner.headers)).json()
    assert key["encoder"] == {"keyframe_interval_seconds": 1, "max_keyframe_interval_seconds": 2.0}
    assert key["stream_health"] == {
        k: v for k, v in health.items() if k not in {"channel_id", "stream_id"}
    }

    async def measured() -> dict[str, Any] | None:
        broadcast = await debug_of(server, stream_id)
        return broadcast if broadcast["keyframeIntervals"].get("source") else None

    broadcast = await eventually(measured, within=20)
    assert broadcast["passthrough"] is False
    assert broadcast["health"]["warning"] == KEYFRAME_WARNING
    assert broadcast["keyframeIntervals"]["source"] == pytest.approx(1.0, abs=0.05)

    await finish(publisher)
    segments = durations(await recording(server, stream_id, "source"))
    assert len(segments) >= 5
    assert max(segments) < 1.2  # not one 6-second segment
    after = await http.get("/api/v1/live/streams/me/key", headers=server.owner.headers)
    assert after.json()["stream_health"] is None  # off air: nothing to warn of


async def test_with_reencoding_off_the_warning_still_comes(
    tmp_path: Path, committed_database_url: str
) -> None:
    settings = media_settings(tmp_path, committed_database_url)
    media = settings.media.model_copy(update={"reencode_long_gops": False})
    async with serve_media(settings.model_copy(update={"media": media})) as server:
        socket = await in_channel_room(server)
        publisher = await start_publisher(server.rtmp_url, 4, OBS_DEFAULT_KEYFRAMES)
        [health] = await health_events(socket, 1)
        assert health["warning"] == KEYFRAME_WARNING
        assert health["reencoding"] is False
        assert "segments are that long" in health["message"]
        stream_id = health["stream_id"]
        assert (await debug_of(server, stream_id))["passthrough"] is True
        await finish(publisher)
        segments = durations(await recording(server, stream_id, "source"))
        assert max(segments) > 3  # the source's own keyframes: one segment per interval


async def test_keyframes_that_spread_out_later_switch_to_reencoding(
    media_server: MediaServer,
) -> None:
    server = media_server
    socket = await in_channel_room(server)
    # Keyframes at 0, 0.5 (close: passed through), then 3.5 and 6.5 s (too far apart).
    spreading = x264_keyframes(
        "-g", "90", "-keyint_min", "90", "-force_key_frames", "0,0.5", "-forced-idr", "1"
    )
    publisher = await start_publisher(server.rtmp_url, 7, spreading)

    first, late, switched = await health_events(socket, 3)
    assert (first["keyframe_interval"], first["warning"], first["reencoding"]) == (0.5, None, False)
    # 2 s after the keyframe at 0.5 s the creator is told; at 3.5 s the top rendition is
    # re-encoded from that keyframe on.
    assert (late["warning"], late["reencoding"]) == (KEYFRAME_WARNING, False)
    assert (switched["keyframe_interval"], switched["reencoding"]) == (3.0, True)
    stream_id = first["stream_id"]

    await finish(publisher)
    before, _, after = (await recording(server, stream_id, "source")).partition(
        "#EXT-X-DISCONTINUITY"
    )
    assert after
    assert durations(before)[-1] > 2.5  # 0.5 s to 3.5 s, passed through
    assert len(durations(after)) >= 3
    assert max(durations(after)) < 1.2  # re-encoded from the keyframe at 3.5 s
    # The recording plays across the switch.
    code, played = await run_ffmpeg(
        "-i", f"{server.live.url}/hls/{stream_id}/source/vod.m3u8", "-c", "copy", "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, played[-3000:]
