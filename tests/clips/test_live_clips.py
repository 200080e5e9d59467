"""Clips of a real stream published with ffmpeg: playable as HLS at once, then an MP4 cut to
the frame; clips of the recording; a clip outliving its VOD's media."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from stagecast.clips import jobs, splice
from stagecast.clips import service as clips
from stagecast.clips.models import Clip
from stagecast.media.pipeline import media_prefix
from tests.clips.conftest import mp4_frames, published, wait_for_mp4
from tests.media.conftest import MediaServer, eventually, run_ffmpeg, start_publisher


async def _hls_seconds(http: httpx.AsyncClient, base: str, playlist_url: str) -> float:
    """Fetch a clip's playlists and every segment they name; return the listed seconds."""
    master = await http.get(playlist_url)
    assert master.status_code == 200, master.text
    variant = next(line for line in master.text.splitlines() if line.endswith(".m3u8"))
    variant_url = playlist_url.rsplit("/", 1)[0] + "/" + variant
    media = await http.get(variant_url)
    assert media.status_code == 200
    assert "#EXT-X-ENDLIST" in media.text
    assert "PRECISE=YES" in media.text
    uris = [line for line in media.text.splitlines() if line and not line.startswith("#")]
    maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', media.text)
    for uri in [*maps, *uris]:
        url = uri if uri.startswith("/") else variant_url.rsplit("/", 1)[0] + "/" + uri
        answer = await http.get(url)
        assert answer.status_code == 200, url
        assert answer.content
    return sum(float(d) for d in re.findall(r"#EXTINF:([\d.]+),", media.text))


async def test_a_live_clip_plays_at_once_then_renders_a_frame_exact_mp4(
    media_server: MediaServer, tmp_path: Path
) -> None:
    server, http = media_server, media_server.live.http
    viewer = await server.live.account()
    publisher = await start_publisher(server.rtmp_url, seconds=60)
    try:
        stream = await server.live_stream()
        listener = await server.live.connect(viewer)
        assert (await listener.call("stream:join", {"streamId": stream["id"]}))["ok"]
        await published(server, stream["id"], seconds=9)
        answer = await http.post(
            "/api/v1/clips",
            json={"stream_id": stream["id"], "duration": 6, "offset": 1.5, "title": "Nice"},
            headers=viewer.headers,
        )
        assert answer.status_code == 201, answer.text
        clip = answer.json()
        assert clip["title"] == "Nice"
        assert clip["duration"] == 6
        assert clip["mp4_state"] == "pending"
        assert clip["media_state"] == "referencing"
        assert clip["creator"]["id"] == viewer.id
        # Playable now: the playlist and every segment it names are there.
        listed = await _hls_seconds(http, server.live.url, clip["playlist_url"])
        assert 6 <= listed <= 6 + 2 * 1.5  # whole segments around the range
        event = await listener.wait_for("clip:created")
        assert event["type"] == "clip:created"
        assert event["payload"]["clip"]["id"] == clip["id"]
        # ffmpeg plays the HLS clip from the top.
        code, report = await run_ffmpeg(
            "-i", f"{server.live.url}{clip['playlist_url']}", "-f", "null", "-"
        )
        assert code == 0, report[-2000:]

        done = await wait_for_mp4(http, clip["id"])
        assert done["mp4_state"] == "ready"
        assert done["thumbnail_url"]
        mp4 = await http.get(done["mp4_url"])
        assert mp4.status_code == 200
        assert mp4.headers["content-type"] == "video/mp4"
        path = tmp_path / "clip.mp4"
        path.write_bytes(mp4.content)
        frames = await mp4_frames(path)
        assert frames == 6 * 30  # the test pattern's 30 fps, to the frame
        assert_spliced_and_clean(path, edges=2)  # 1.5 s behind the edge: mid-GOP at both ends
        code, errors = await run_ffmpeg("-v", "error", "-i", str(path), "-f", "null", "-")
        assert code == 0
        assert errors.strip() == ""
        assert abs(done["mp4_duration"] - 6) <= 1 / 30
        thumbnail = await http.get(done["thumbnail_url"])
        assert thumbnail.status_code == 200
        assert thumbnail.content[:2] == b"\xff\xd8"
    finally:
        publisher.kill()
        await publisher.wait()


async def test_a_clip_keeps_its_media_when_the_vod_media_is_removed(
    media_server: MediaServer, tmp_path: Path
) -> None:
    server, http = media_server, media_server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=9)
    stream = await server.live_stream()
    await publisher.wait()
    vod = await eventually(lambda: _vod_of(http, server.channel["id"], stream["id"]))
    # A clip of the recording: from second 1, for 7 s.
    made = await http.post(
        "/api/v1/clips",
        json={"vod_id": vod["id"], "start": 1, "duration": 7},
        headers=server.owner.headers,
    )
    assert made.status_code == 201, made.text
    clip = made.json()
    assert clip["vod_id"] == vod["id"]
    assert clip["start"] == 1
    assert clip["duration"] == 7
    await wait_for_mp4(http, clip["id"])

    # What the VOD deletion does: detach the clips, then remove the stream's media.
    runtime = server.runtime
    store = server.media.store
    async with runtime.db.session() as session, session.begin():
        copied = await clips.detach_clips_of_stream(session, store, uuid.UUID(stream["id"]))
    assert copied == 1
    removed = await store.delete_prefix(f"{media_prefix(stream['id'])}/")
    assert removed > 0
    async with runtime.db.session() as session, session.begin():
        again = await clips.detach_clips_of_stream(session, store, uuid.UUID(stream["id"]))
    assert again == 0

    kept = (await http.get(f"/api/v1/clips/{clip['id']}")).json()
    assert kept["media_state"] == "copied"
    assert await _hls_seconds(http, server.live.url, kept["playlist_url"]) >= 7
    # A trim after the VOD is gone is rendered from the clip's own copy.
    trimmed = await http.patch(
        f"/api/v1/clips/{clip['id']}",
        json={"start": 0.5, "end": 5.7},
        headers=server.owner.headers,
    )
    assert trimmed.status_code == 200, trimmed.text
    assert trimmed.json()["mp4_state"] == "pending"
    done = await wait_for_mp4(http, clip["id"])
    path = tmp_path / "trimmed.mp4"
    path.write_bytes((await http.get(done["mp4_url"])).content)
    assert await mp4_frames(path) == round(5.2 * 30)
    assert_spliced_and_clean(path, edges=2)  # 1.5 s and 6.7 s into the recording
    assert done["duration"] == 5.2
    assert done["trim_start"] == 0.5
    # Clipping the stream again is refused: its recording is gone.
    refused = await http.post(
        "/api/v1/clips",
        json={"vod_id": vod["id"], "start": 0, "duration": 5},
        headers=server.owner.headers,
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "CLIP_SOURCE_UNAVAILABLE"


def assert_spliced_and_clean(path: Path, *, edges: int) -> None:
    """The MP4 was spliced: its avcC holds the source's parameter sets and one more SPS per
    re-encoded edge, and its moov comes first."""
    data = path.read_bytes()
    config = splice.parse_avcc(splice.avcc_of_file(data) or b"")
    assert len(config.sps) == 1 + edges
    boxes = [kind for kind, _, _ in splice.top_level_boxes(data)]
    assert boxes.index("moov") < boxes.index("mdat")


async def _vod_of(
    http: httpx.AsyncClient, channel_id: str, stream_id: str
) -> dict[str, Any] | None:
    vods = (await http.get(f"/api/v1/channels/{channel_id}/vods")).json()["data"]
    return next((v for v in vods if v["stream_id"] == stream_id), None)


async def test_clip_rows_keep_the_segments_they_cover(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=40)
    try:
        stream = await server.live_stream()
        await published(server, stream["id"], seconds=7)
        answer = await http.post(
            "/api/v1/clips",
            json={"stream_id": stream["id"], "duration": 5},
            headers=server.owner.headers,
        )
        assert answer.status_code == 201, answer.text
        async with server.runtime.db.read_session() as session, session.begin():
            clip = await session.get_one(Clip, uuid.UUID(answer.json()["id"]))
            renditions = [entry["rendition"] for entry in clip.segments]
            first = clip.segments[0]["segments"]
        assert renditions[0] == "source"
        assert first[0]["start"] <= clip.start < first[0]["start"] + first[0]["duration"]
        assert first[-1]["start"] < clip.end <= first[-1]["start"] + first[-1]["duration"] + 1e-3
        await asyncio.sleep(0)
    finally:
        publisher.kill()
        await publisher.wait()


async def test_a_vod_deleted_while_its_clip_renders_leaves_a_ready_mp4(
    media_server: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, http = media_server, media_server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=9)
    stream = await server.live_stream()
    await publisher.wait()
    vod = await eventually(lambda: _vod_of(http, server.channel["id"], stream["id"]))
    store, runtime = server.media.store, server.runtime
    prefix = f"{media_prefix(stream['id'])}/"
    render = jobs._render
    deleted: list[str] = []

    async def render_racing_a_vod_deletion(*args: Any) -> tuple[str, str | None, float]:
        if not deleted:
            # The render has read where the clip's media is (the stream's segments) when the
            # VOD goes: what its DELETE does, the clips copied, then the stream's media removed.
            async with runtime.db.session() as session, session.begin():
                await clips.detach_clips_of_stream(session, store, uuid.UUID(stream["id"]))
            deleted.append(prefix)
            assert await store.delete_prefix(prefix) > 0
        return await render(*args)

    monkeypatch.setattr(jobs, "_render", render_racing_a_vod_deletion)
    made = await http.post(
        "/api/v1/clips",
        json={"vod_id": vod["id"], "start": 1.5, "duration": 6},
        headers=server.owner.headers,
    )
    assert made.status_code == 201, made.text
    done = await wait_for_mp4(http, made.json()["id"])  # ready, not failed
    assert deleted  # the deletion did happen in the middle of the render
    assert done["media_state"] == "copied"
    path = tmp_path / "clip.mp4"
    path.write_bytes((await http.get(done["mp4_url"])).content)
    assert await mp4_frames(path) == 6 * 30
