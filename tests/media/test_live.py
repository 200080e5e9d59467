"""Live media end to end: real ffmpeg publishes over RTMP, HLS comes out, a VOD stays."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from stagecast.config import RateLimits
from stagecast.media.pipeline import media_prefix
from stagecast.media.store import LocalMediaStore
from tests.factories import make_channel
from tests.media.conftest import (
    H264_AAC,
    TEST_PATTERN,
    MediaServer,
    eventually,
    media_duration,
    media_settings,
    publish_briefly,
    run_ffmpeg,
    start_publisher,
    webm_chunks,
)
from tests.realtime.conftest import seed004_viewer, serving

# Seed 004's stop body.
SEED_STOP = {"userId": "user123", "action": "stop", "timestamp": 1704110400}


async def _finish(process: asyncio.subprocess.Process) -> str:
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    return stderr.decode(errors="replace")


async def _stream(server: MediaServer, stream_id: str) -> dict[str, Any]:
    answer = await server.live.http.get(f"/api/v1/streams/{stream_id}")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


async def _ended(server: MediaServer, stream_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        stream = await _stream(server, stream_id)
        return stream if stream["status"] == "ended" else None

    return await eventually(probe, within=40)


async def _vods(server: MediaServer) -> list[dict[str, Any]]:
    answer = await server.live.http.get(f"/api/v1/channels/{server.channel['slug']}/vods")
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def test_rtmp_publish_plays_as_hls_then_stays_as_a_vod(
    any_store_media_server: MediaServer,
) -> None:
    server = any_store_media_server
    http = server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=5)

    stream = await server.live_stream()
    stream_id = stream["id"]
    live = (await http.get("/api/v1/live/streams", params={"is_live": "true"})).json()["data"]
    assert stream_id in [s["id"] for s in live]
    # A browse card asks for the thumbnail at once: it exists from the moment of going live.
    first_thumbnail = await http.get(stream["thumbnail_url"])
    assert first_thumbnail.status_code == 200
    assert first_thumbnail.content.startswith(b"\xff\xd8")

    master = await eventually(lambda: _text_if_ok(http, f"/hls/{stream_id}/master.m3u8"), within=20)
    assert master.count("#EXT-X-STREAM-INF") == 2  # the source and the 120p rung
    assert "RESOLUTION=320x240" in master
    assert "RESOLUTION=160x120" in master
    assert 'CODECS="avc1.' in master
    assert "mp4a.40.2" in master
    playlist = await eventually(lambda: _segments_listed(http, stream_id), within=20)
    assert "#EXT-X-PROGRAM-DATE-TIME:" in playlist
    assert '#EXT-X-MAP:URI="init.mp4"' in playlist
    assert "#EXT-X-ENDLIST" not in playlist

    await _check_delivery(http, stream_id)
    await _check_low_latency(http, stream_id)

    # Seed 004's view of the same stream.
    status = (await http.get(f"/livestream/{stream_id}/status")).json()
    assert status["overall"]["isActive"] is True
    assert status["local"]["state"] == "live"
    assert "files" not in status["local"]  # only for the owner
    seed_master = await http.get(f"/livestream/{stream_id}/stream.m3u8")
    assert seed_master.text == master

    report = await _finish(publisher)
    assert publisher.returncode == 0, report
    ended = await _ended(server, stream_id)
    assert ended["ended_at"] is not None

    vods = await eventually(lambda: _vods(server))
    assert [v["stream_id"] for v in vods] == [stream_id]
    assert abs(vods[0]["duration_seconds"] - 5) < 1.0
    assert vods[0]["renditions"] == ["source", "120p"]
    await _check_recording_playlists(http, stream_id)

    # A player reads the recording back: both renditions, H.264 and AAC, five seconds.
    code, played = await run_ffmpeg(
        "-i", f"{server.live.url}/hls/{stream_id}/master.m3u8",
        "-map", "0", "-c", "copy", "-f", "null", "-",
    )  # fmt: skip
    assert code == 0, played[-3000:]
    assert played.count("Video: h264") >= 2
    assert "Audio: aac" in played
    assert abs(media_duration(played) - 5) < 1.0
    # What was played came from the configured store, and only from it.
    stored = await server.media.store.list_keys(f"{media_prefix(uuid.UUID(stream_id))}/")
    assert any(key.endswith("/source/vod.m3u8") for key in stored)
    assert sum(key.endswith(".m4s") for key in stored) >= 8
    local_media = server.runtime.settings.data_dir / "media"
    assert local_media.is_dir() == isinstance(server.media.store, LocalMediaStore)


async def _check_recording_playlists(http: httpx.AsyncClient, stream_id: str) -> None:
    """After the end: the master names the VOD playlists, nothing lists parts, a thumbnail."""
    vod_master = (await http.get(f"/hls/{stream_id}/master.m3u8")).text
    assert "source/vod.m3u8" in vod_master
    vod = (await http.get(f"/hls/{stream_id}/source/vod.m3u8")).text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    assert "PART" not in vod
    assert vod.rstrip().endswith("#EXT-X-ENDLIST")
    ended_live = (await http.get(f"/hls/{stream_id}/source/index.m3u8")).text
    assert "#EXT-X-ENDLIST" in ended_live
    assert "PART" not in ended_live  # ended: whole segments only, part files gone
    thumbnail = await http.get(f"/hls/{stream_id}/thumbnail.jpg")
    assert thumbnail.status_code == 200
    assert thumbnail.content.startswith(b"\xff\xd8")  # JPEG


async def _check_delivery(http: httpx.AsyncClient, stream_id: str) -> None:
    """Types, caching, CORS and ranges of the live files; nothing outside them served."""
    answer = await http.get(f"/hls/{stream_id}/source/index.m3u8")
    assert answer.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["access-control-allow-origin"] == "*"
    segment = re.findall(r"^(seg_\d+\.m4s)$", answer.text, flags=re.MULTILINE)[0]
    whole = await http.get(f"/hls/{stream_id}/source/{segment}")
    assert whole.headers["content-type"] == "video/iso.segment"
    assert "immutable" in whole.headers["cache-control"]
    part = await http.get(f"/hls/{stream_id}/source/{segment}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
    assert part.content == whole.content[:100]
    refused = await http.get(
        f"/hls/{stream_id}/source/{segment}", headers={"Range": "bytes=999999999-"}
    )
    assert refused.status_code == 416
    assert refused.json()["code"] == "RANGE_NOT_SATISFIABLE"
    for bad in ("source/..%2F..%2Fstagecast.db", "source/seg_0.txt", "nothing/init.mp4"):
        assert (await http.get(f"/hls/{stream_id}/{bad}")).status_code == 404


async def _check_low_latency(http: httpx.AsyncClient, stream_id: str) -> None:
    """Parts, preload hint and blocking reload (LL-HLS) on the live playlist; bad asks refused."""
    url = f"/hls/{stream_id}/source/index.m3u8"
    playlist = (await http.get(url)).text
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=" in playlist
    part_target = float(re.findall(r"#EXT-X-PART-INF:PART-TARGET=([\d.]+)", playlist)[0])
    durations = [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", playlist)]
    assert durations
    assert all(d <= part_target + 0.001 for d in durations), (part_target, durations)
    assert "INDEPENDENT=YES" in playlist
    hint = re.findall(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_(\d+)_(\d+)\.m4s"', playlist)
    sequence, index = (int(n) for n in hint[0])

    # The hinted part does not exist yet: the request is held until it does.
    part = await http.get(f"/hls/{stream_id}/source/part_{sequence}_{index}.m4s")
    assert part.status_code == 200, part.text
    assert part.headers["content-type"] == "video/iso.segment"
    assert b"moof" in part.content[:200]
    # A blocking reload for the part after it returns a playlist that lists it.
    wanted = {"_HLS_msn": sequence, "_HLS_part": index + 1}
    blocked = await http.get(url, params=wanted)
    assert blocked.status_code == 200, blocked.text
    assert re.search(
        rf'part_{sequence}_{index + 1}\.m4s"|part_{sequence + 1}_0\.m4s"', blocked.text
    )

    too_far = await http.get(url, params={"_HLS_msn": sequence + 50})
    assert too_far.status_code == 400
    assert too_far.json()["code"] == "PLAYLIST_REQUEST_TOO_FAR"
    for bad in ({"_HLS_part": 0}, {"_HLS_msn": -1}, {"_HLS_msn": "x"}):
        refused = await http.get(url, params=bad)
        assert refused.status_code == 422, bad
        assert refused.json()["code"] == "VALIDATION_ERROR"
    never = await http.get(f"/hls/{stream_id}/source/part_{sequence + 40}_0.m4s")
    assert never.status_code == 404


async def _is_in(item: str, items: list[str]) -> bool:
    return item in items


async def _is(value: str, wanted: str) -> bool:
    return value == wanted


async def _text_if_ok(http: httpx.AsyncClient, path: str) -> str | None:
    answer = await http.get(path)
    return answer.text if answer.status_code == 200 else None


async def _segments_listed(http: httpx.AsyncClient, stream_id: str) -> str | None:
    text = await _text_if_ok(http, f"/hls/{stream_id}/source/index.m3u8")
    return text if text and "seg_1.m4s" in text else None


async def test_a_wrong_key_is_refused_and_nothing_goes_live(media_server: MediaServer) -> None:
    server = media_server
    wrong = server.rtmp_url.rsplit("/", 1)[0] + "/sk_not_a_real_key"
    code, report = await publish_briefly(wrong)
    assert code != 0
    assert "Unknown or revoked stream key" in report
    assert [s for s in await server.channel_streams() if s["status"] == "live"] == []
    assert server.media.broadcasts == {}


async def test_a_second_publisher_on_a_live_key_is_refused(media_server: MediaServer) -> None:
    server = media_server
    first = await start_publisher(server.rtmp_url, seconds=6)
    stream = await server.live_stream()
    code, _ = await publish_briefly(server.rtmp_url)
    assert code != 0
    # The first publisher is untouched and ends its stream normally.
    report = await _finish(first)
    assert first.returncode == 0, report
    await _ended(server, stream["id"])


async def test_a_dropped_publisher_may_reconnect_within_the_window(
    media_server: MediaServer,
) -> None:
    server, http = media_server, media_server.live.http
    window = await http.patch(
        f"/api/v1/channels/{server.channel['id']}/settings",
        json={"reconnect_window_seconds": 20},
        headers=server.owner.headers,
    )
    assert window.status_code == 200, window.text

    first = await start_publisher(server.rtmp_url, seconds=30)
    stream_id = (await server.live_stream())["id"]
    await eventually(lambda: _segments_listed(http, stream_id), within=20)
    first.send_signal(signal.SIGKILL)  # the connection drops: no unpublish
    await first.wait()

    async def reconnecting() -> bool:
        status = (await http.get(f"/livestream/{stream_id}/status")).json()
        return bool(status["local"]["state"] == "reconnecting")

    await eventually(reconnecting, within=10)
    assert (await _stream(server, stream_id))["status"] == "live"

    second = await start_publisher(server.rtmp_url, seconds=3)
    report = await _finish(second)
    assert second.returncode == 0, report
    await _ended(server, stream_id)

    streams = await server.channel_streams()
    assert [s["id"] for s in streams] == [stream_id]  # one stream, not two
    vods = await eventually(lambda: _vods(server))
    assert len(vods) == 1
    assert vods[0]["duration_seconds"] > 4
    vod = (await http.get(f"/hls/{stream_id}/source/vod.m3u8")).text
    assert "#EXT-X-DISCONTINUITY" in vod
    code, played = await run_ffmpeg(
        "-i", f"{server.live.url}/hls/{stream_id}/source/vod.m3u8", "-c", "copy", "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, played[-3000:]


async def test_regenerating_the_key_cuts_the_publisher_off(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=30)
    stream_id = (await server.live_stream())["id"]
    answer = await http.post("/api/v1/live/streams/me/key/regenerate", headers=server.owner.headers)
    assert answer.status_code == 200, answer.text
    await asyncio.wait_for(publisher.wait(), 20)  # disconnected by the server
    broadcast = server.media.by_stream(uuid.UUID(stream_id))
    assert broadcast is not None
    assert broadcast.state == "reconnecting"
    # The old key no longer publishes.
    code, _ = await publish_briefly(server.rtmp_url)
    assert code != 0
    stop = await http.post(
        f"/livestream/{stream_id}/stop", headers=server.owner.headers, json=SEED_STOP
    )
    assert stop.json()["status"] == "stopped"
    await _ended(server, stream_id)


async def test_browser_ingest_goes_live_and_ends_with_a_vod(
    media_server: MediaServer, tmp_path: Path
) -> None:
    server, http = media_server, media_server.live.http
    chunks = await webm_chunks(tmp_path, seconds=4)
    tab = await server.live.connect(server.owner)
    key = server.stream_key

    started = await tab.call("start-stream", {"userId": "ignored", "streamKey": key})
    assert started["ok"], started
    assert (await tab.wait_for("stream-started"))["status"] == "broadcasting"
    for chunk in chunks:
        sent = await tab.call("stream-data", {"streamKey": key, "chunk": chunk})
        assert sent["ok"], sent
        await asyncio.sleep(1)  # MediaRecorder's pace
    stream_id = (await server.live_stream())["id"]
    master = await eventually(lambda: _text_if_ok(http, f"/hls/{stream_id}/master.m3u8"))
    assert "RESOLUTION=320x240" in master  # VP8 in, H.264 out at the source size
    ended = await tab.call("end-stream", {"streamKey": key})
    assert ended["ok"], ended
    await tab.wait_for("stream-ended")
    await _ended(server, stream_id)

    # Chunks after the end are refused, and say so.
    late = await tab.call("stream-data", {"streamKey": key, "chunk": chunks[0]})
    assert late["error"]["code"] == "NOT_BROADCASTING"
    told = await tab.wait_for("stream-error")  # seed 004's code; ours in the problem
    assert (told["code"], told["problem"]["code"]) == ("STREAM_NOT_FOUND", "NOT_BROADCASTING")

    vods = await eventually(lambda: _vods(server))
    assert [v["stream_id"] for v in vods] == [stream_id]
    code, played = await run_ffmpeg(
        "-i", f"{server.live.url}/hls/{stream_id}/master.m3u8",
        "-map", "0", "-c", "copy", "-f", "null", "-",
    )  # fmt: skip
    assert code == 0, played[-3000:]
    assert "Video: h264" in played
    assert "Audio: aac" in played
    assert media_duration(played) > 2.5


async def test_a_broadcaster_is_not_held_by_the_socket_event_limit(
    tmp_path: Path, committed_database_url: str
) -> None:
    # Three events a minute per socket: the broadcast's chunks must not count towards them.
    limits = RateLimits(socket_events="3/minute", socket_connections="100/minute")
    settings = media_settings(tmp_path, committed_database_url, rate_limits=limits)
    async with serving(settings) as live:
        owner = await live.account()
        await make_channel(live.http, owner)
        key = (await live.http.get("/api/v1/live/streams/me/key", headers=owner.headers)).json()
        tab = await live.connect(owner)
        seed_start = {"userId": "user123", "streamKey": key["stream_key"]}
        assert (await tab.call("start-stream", seed_start))["ok"]
        chunks = await webm_chunks(tmp_path, seconds=5)
        for chunk in chunks:
            sent = await tab.call("stream-data", {"streamKey": key["stream_key"], "chunk": chunk})
            assert sent["ok"], sent
            await asyncio.sleep(0.5)

        async def live_stream_id() -> str | None:
            found = await live.http.get(f"/api/v1/channels/{key['channel_id']}/streams")
            return next((s["id"] for s in found.json()["data"] if s["status"] == "live"), None)

        stream_id = await eventually(live_stream_id)
        master = await eventually(lambda: _text_if_ok(live.http, f"/hls/{stream_id}/master.m3u8"))
        assert "#EXT-X-STREAM-INF" in master
        assert (await tab.call("end-stream", {"streamKey": key["stream_key"]}))["ok"]
        # Its other events still count: within three more events one is over the limit (on a
        # slow machine the window may have let `start-stream` go by the time these are sent).
        answers = [await tab.call("stream:join", {"streamId": stream_id}) for _ in range(3)]
        refused = [a for a in answers if not a["ok"]]
        assert refused, answers
        assert refused[0]["error"]["code"] == "RATE_LIMIT_EXCEEDED"


async def test_browser_ingest_refuses_bad_input(media_server: MediaServer) -> None:
    server = media_server
    stranger = await server.live.connect(await server.live.account())

    wrong = await stranger.call("start-stream", {"streamKey": "sk_wrong"})
    assert wrong["error"]["code"] == "STREAM_KEY_REJECTED"
    told = await stranger.wait_for("stream-error")
    assert told == {
        "error": wrong["error"]["detail"],
        "streamKey": "sk_wrong",
        "code": "UNAUTHORIZED",
        "problem": wrong["error"],
    }
    # Signed in but not the owner of any channel, and no key: refused as well.
    assert (await stranger.call("start-stream", {}))["error"]["code"] == "STREAM_KEY_REJECTED"
    unstarted = await stranger.call("stream-data", {"chunk": b"\x1a\x45\xdf\xa3"})
    assert unstarted["error"]["code"] == "NOT_BROADCASTING"

    tab = await server.live.connect(server.owner)  # the owner needs no key
    assert (await tab.call("start-stream", {}))["ok"]
    again = await server.live.connect(server.owner)
    busy = await again.call("start-stream", {"streamKey": server.stream_key})
    assert busy["error"]["code"] == "STREAM_ALREADY_PUBLISHING"
    assert (await again.wait_for("stream-error"))["code"] == "STREAM_ALREADY_EXISTS"
    twice = await tab.call("start-stream", {})
    assert twice["error"]["code"] == "STREAM_ALREADY_PUBLISHING"
    text = await tab.call("stream-data", {"chunk": "not bytes"})
    assert text["error"]["code"] == "VALIDATION_ERROR"
    not_webm = await tab.call("stream-data", {"chunk": b"GIF89a" + bytes(100)})
    assert not_webm["error"]["code"] == "MEDIA_REJECTED"
    media_errors = [e["code"] for e in tab.received("stream-error")]
    assert media_errors == ["STREAM_ALREADY_EXISTS", "MEDIA_ERROR", "MEDIA_ERROR"]
    # A refused first chunk ends that publish; nothing went live.
    assert (await tab.call("stream-data", {"chunk": b"\x1a"}))["error"]["code"] == (
        "NOT_BROADCASTING"
    )
    # A WebM start that never shows video is held a few chunks, then refused.
    assert (await tab.call("start-stream", {}))["ok"]
    answers = [
        await tab.call("stream-data", {"chunk": b"\x1a\x45\xdf\xa3" + bytes(64)}) for _ in range(5)
    ]
    assert [a["ok"] for a in answers] == [True] * 4 + [False]
    assert answers[-1]["error"]["detail"] == "No video found in the first WebM chunks"
    assert [s for s in await server.channel_streams() if s["status"] == "live"] == []
    assert server.media.broadcasts == {}


@pytest.mark.parametrize("transports", [None, ["polling"]], ids=["upgraded", "polling"])
async def test_seed_004_broadcaster_sends_chunks_right_behind_start_stream(
    media_server: MediaServer, tmp_path: Path, transports: list[str] | None
) -> None:
    """The seed's Python example: python-socketio's Client, `emit` with no acks, no waiting.

    As the seed connects (long-polling, then the upgrade), and on long-polling alone, where
    the client sends everything queued in one POST.
    """
    server, http = media_server, media_server.live.http
    chunks = await webm_chunks(tmp_path, seconds=8)
    key = server.stream_key
    received: list[tuple[str, Any]] = []  # appended from the client's threads
    sio = socketio.Client(reconnection=False)
    sio.on("*", lambda event, data=None: received.append((event, data)))

    def broadcast() -> None:
        sio.connect(server.live.url, transports=transports)
        sio.emit("start-stream", {"userId": "user123", "streamKey": key})
        for chunk in chunks:
            sio.emit("stream-data", {"streamKey": key, "chunk": chunk})

    await asyncio.to_thread(broadcast)
    try:
        stream_id = (await server.live_stream())["id"]
        await eventually(lambda: _segments_listed(http, stream_id))
        await asyncio.to_thread(sio.emit, "end-stream", {"streamKey": key, "userId": "user123"})
        await eventually(lambda: _is_in("stream-ended", [name for name, _ in received]))
    finally:
        await asyncio.to_thread(sio.disconnect)
    await _ended(server, stream_id)
    names = [name for name, _ in received]
    assert "stream-error" not in names, received
    assert names.index("stream-started") < names.index("stream-ended")
    assert dict(received)["stream-started"]["status"] == "broadcasting"
    assert dict(received)["stream-ended"] == {"streamKey": key, "reason": "ended"}
    assert names.count("stream-ended") == 1
    vods = await eventually(lambda: _vods(server))
    assert [v["stream_id"] for v in vods] == [stream_id]
    code, played = await run_ffmpeg(
        "-i", f"{server.live.url}/hls/{stream_id}/source/vod.m3u8", "-c", "copy", "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, played[-3000:]
    assert media_duration(played) > 6  # every chunk was taken, in order


@pytest.mark.parametrize("how", ["end-stream", "tab closed"])
async def test_a_browser_publisher_that_stops_at_once_loses_nothing_it_sent(
    media_server: MediaServer, tmp_path: Path, how: str
) -> None:
    """Eight seconds of WebM sent as fast as the socket goes, then the end (or the tab
    closing) right behind it: every chunk received is in the recording."""
    server, http = media_server, media_server.live.http
    window = await http.patch(
        f"/api/v1/channels/{server.channel['id']}/settings",
        json={"reconnect_window_seconds": 1},
        headers=server.owner.headers,
    )
    assert window.status_code == 200, window.text
    chunks = await webm_chunks(tmp_path, seconds=8)
    tab = await server.live.connect(server.owner)
    key = server.stream_key
    await tab.client.emit("start-stream", {"streamKey": key})
    for chunk in chunks:
        await tab.client.emit("stream-data", {"streamKey": key, "chunk": chunk})
    if how == "end-stream":
        await tab.client.emit("end-stream", {"streamKey": key})
    else:
        # Long enough for the client to put the chunks on the wire, far too short for the
        # server to have fed them all to ffmpeg (the first is probed first).
        await asyncio.sleep(0.3)
        await tab.client.disconnect()
    stream_id = (await server.live_stream())["id"]
    await _ended(server, stream_id)
    vods = await eventually(lambda: _vods(server))
    assert [v["stream_id"] for v in vods] == [stream_id]
    code, played = await run_ffmpeg(
        "-i", f"{server.live.url}/hls/{stream_id}/source/vod.m3u8", "-c", "copy", "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, played[-3000:]
    assert media_duration(played) > 7.5, played[-1500:]


async def test_seed_004_viewers_and_broadcaster_hear_each_other(
    media_server: MediaServer, tmp_path: Path
) -> None:
    server = media_server
    first, *rest = await webm_chunks(tmp_path, seconds=6)
    # Chromium's MediaRecorder may cut its first slice inside the WebM header: one byte of it.
    chunks = [first[:1], first[1:], *rest]
    key, slug = server.stream_key, server.channel["slug"]
    early, joined = await seed004_viewer(server.live, slug, browser="seed004-early")
    assert joined == {"streamKey": slug, "viewerCount": 1, "isLive": False}
    tab = await server.live.connect(server.owner)
    await tab.client.emit("start-stream", {"userId": "user123", "streamKey": key})
    for chunk in chunks[:3]:
        await tab.client.emit("stream-data", {"streamKey": key, "chunk": chunk})
    stream_id = (await server.live_stream())["id"]

    late, joined = await seed004_viewer(server.live, stream_id, browser="seed004-late")
    assert joined == {"streamKey": stream_id, "viewerCount": 2, "isLive": True}
    # The broadcaster's socket hears viewers come and go, under its own key.
    assert await tab.wait_for("viewer-joined", lambda e: e["viewerCount"] == 2) == {
        "streamKey": key,
        "viewerCount": 2,
    }
    for chunk in chunks[3:]:
        await tab.client.emit("stream-data", {"streamKey": key, "chunk": chunk})
        await asyncio.sleep(0.5)
    segments = await late.wait_for("stream-segments-updated", within=30)
    assert set(segments) == {"streamKey", "segmentCount"}
    assert segments["streamKey"] == stream_id
    assert segments["segmentCount"] >= 1
    assert (await early.wait_for("stream-segments-updated"))["streamKey"] == slug
    assert (await tab.wait_for("stream-segments-updated"))["streamKey"] == key
    await late.client.emit("leave-stream", {"streamKey": stream_id})
    assert await tab.wait_for("viewer-left") == {"streamKey": key, "viewerCount": 1}

    await tab.client.emit("end-stream", {"streamKey": key, "userId": "user123"})
    assert await tab.wait_for("stream-ended") == {"streamKey": key, "reason": "ended"}
    ended = await early.wait_for("stream-ended", within=20)
    assert set(ended) == {"streamKey", "reason"}
    assert ended["streamKey"] == slug
    await asyncio.sleep(0.5)
    assert len(tab.received("stream-ended")) == 1  # told once, by its ingest
    assert "stream-error" not in [name for name, _ in tab.events]
    # The secret key never reaches a viewer.
    assert key not in repr(early.events + late.events)


async def test_ffmpeg_dying_mid_stream_is_restarted(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=8)
    stream_id = (await server.live_stream())["id"]
    await eventually(lambda: _segments_listed(http, stream_id), within=20)
    broadcast = server.media.by_stream(uuid.UUID(stream_id))
    assert broadcast is not None
    assert broadcast.pipeline is not None
    pid = broadcast.pipeline.ffmpeg_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> bool:
        pipeline = broadcast.pipeline
        return bool(pipeline and pipeline.restarts == 1 and pipeline.ffmpeg_pid not in {None, pid})

    await eventually(restarted, within=10)
    debug = await http.get(f"/livestream/{stream_id}/debug", headers=server.owner.headers)
    internals = debug.json()["broadcast"]
    assert (internals["state"], internals["ffmpegRestarts"]) == ("live", 1)
    assert internals["bytesIn"] > 0
    stranger = await server.live.account()
    forbidden = await http.get(f"/livestream/{stream_id}/debug", headers=stranger.headers)
    assert forbidden.status_code == 403
    report = await _finish(publisher)
    assert publisher.returncode == 0, report  # the publisher never noticed
    await _ended(server, stream_id)
    vod = (await http.get(f"/hls/{stream_id}/source/vod.m3u8")).text
    assert "#EXT-X-DISCONTINUITY" in vod
    assert len(re.findall(r"^seg_\d+\.m4s$", vod, flags=re.MULTILINE)) >= 5


async def test_a_publisher_faster_than_real_time_is_dropped(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    # No -re: a minute of media pushed as fast as the encoder goes.
    code, _ = await run_ffmpeg(
        "-loglevel", "error", *TEST_PATTERN, "-t", "60", *H264_AAC, "-f", "flv",
        server.rtmp_url,
    )  # fmt: skip
    assert code != 0
    stream_id = (await server.live_stream())["id"]
    broadcast = server.media.by_stream(uuid.UUID(stream_id))
    assert broadcast is not None
    # The server hangs up, then releases the broadcast: ffmpeg may exit in between.
    await eventually(lambda: _is(broadcast.state, "reconnecting"), within=10)
    stop = await http.post(
        f"/livestream/{stream_id}/stop", headers=server.owner.headers, json=SEED_STOP
    )
    assert stop.json()["status"] == "stopped"
    await _ended(server, stream_id)


async def test_shutting_down_ends_broadcasts_and_keeps_their_recordings(
    tmp_path: Path, committed_database_url: str
) -> None:
    settings = media_settings(tmp_path, committed_database_url)
    async with serving(settings) as live:
        owner = await live.account()
        channel = await make_channel(live.http, owner)
        key = (await live.http.get("/api/v1/live/streams/me/key", headers=owner.headers)).json()
        server = MediaServer(live, owner, channel, key["stream_key"])
        publisher = await start_publisher(server.rtmp_url, seconds=30)
        stream_id = (await server.live_stream())["id"]
        await eventually(lambda: _segments_listed(live.http, stream_id), within=20)
    # The server stopped under a live publisher: it hung up on it and ended the stream.
    await asyncio.wait_for(publisher.wait(), 20)

    async with serving(settings) as again:  # the same database and media directory
        stream = (await again.http.get(f"/api/v1/streams/{stream_id}")).json()
        assert stream["status"] == "ended"
        vods = (await again.http.get(f"/api/v1/channels/{channel['id']}/vods")).json()["data"]
        assert [v["stream_id"] for v in vods] == [stream_id]
        vod = await again.http.get(f"/hls/{stream_id}/source/vod.m3u8")
        assert vod.status_code == 200
        assert vod.text.rstrip().endswith("#EXT-X-ENDLIST")


async def test_a_corrupt_chunk_mid_stream_loses_nothing_recorded(
    media_server: MediaServer, tmp_path: Path
) -> None:
    server, http = media_server, media_server.live.http
    chunks = await webm_chunks(tmp_path, seconds=6)
    tab = await server.live.connect(server.owner)
    assert (await tab.call("start-stream", {"streamKey": server.stream_key}))["ok"]
    garbage = bytes((i * 7919) % 256 for i in range(50_000))
    for n, chunk in enumerate(chunks):
        if n == 3:
            assert (await tab.call("stream-data", {"chunk": garbage}))["ok"]
        assert (await tab.call("stream-data", {"chunk": chunk}))["ok"]
        await asyncio.sleep(1)
    stream_id = (await server.live_stream())["id"]
    await eventually(lambda: _segments_listed(http, stream_id))
    assert (await tab.call("end-stream", {}))["ok"]
    await _ended(server, stream_id)
    code, played = await run_ffmpeg(
        "-i", f"{server.live.url}/hls/{stream_id}/source/vod.m3u8", "-c", "copy", "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, played[-3000:]
    assert media_duration(played) > 5  # ffmpeg skipped the garbage; the media around it stayed


async def test_a_silent_tab_is_dropped(media_server: MediaServer, tmp_path: Path) -> None:
    server = media_server
    server.media.settings.publisher_timeout_seconds = 1.5
    chunks = await webm_chunks(tmp_path, seconds=2)
    tab = await server.live.connect(server.owner)
    assert (await tab.call("start-stream", {}))["ok"]
    assert (await tab.call("stream-data", {"chunk": chunks[0]}))["ok"]
    stream_id = (await server.live_stream())["id"]
    error = await tab.wait_for("stream-error", within=10)
    assert (error["code"], error["problem"]["code"]) == ("MEDIA_ERROR", "MEDIA_REJECTED")
    broadcast = server.media.by_stream(uuid.UUID(stream_id))
    assert broadcast is not None
    assert broadcast.state == "reconnecting"  # the window lets the tab come back
    assert (await tab.call("stream-data", {"chunk": chunks[1]}))["error"]["code"] == (
        "NOT_BROADCASTING"
    )
