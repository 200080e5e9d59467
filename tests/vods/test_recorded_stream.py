"""A recording made by the real pipeline (ffmpeg publishing over RTMP, our packager): its seek
previews come from the previews job, and its visibility and deletion hold over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from stagecast.media.pipeline import media_prefix
from stagecast.vods import jobs
from stagecast.vods.models import Vod
from tests.media.conftest import MediaServer, eventually, start_publisher
from tests.vods.test_replay_and_jobs import _jpeg_size


async def _vods(server: MediaServer) -> list[dict[str, Any]]:
    answer = await server.live.http.get(
        f"/api/v1/channels/{server.channel['slug']}/vods", headers=server.owner.headers
    )
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def test_a_published_stream_gets_previews_and_follows_its_visibility(
    media_server: MediaServer,
) -> None:
    server, http = media_server, media_server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=7)
    stream_id = (await server.live_stream())["id"]
    _, stderr = await asyncio.wait_for(publisher.communicate(), 60)
    assert publisher.returncode == 0, stderr.decode(errors="replace")
    vod = (await eventually(lambda: _vods(server), within=40))[0]
    assert vod["stream_id"] == stream_id
    assert vod["previews_url"] is None

    # The recording's wall-clock span (no reconnect: one), for chat replay.
    async with server.runtime.db.read_session() as session, session.begin():
        row = await session.get_one(Vod, uuid.UUID(vod["id"]))
        timeline = row.timeline
    assert timeline is not None
    assert len(timeline) == 1
    assert timeline[0][0] == 0
    assert abs(float(str(timeline[0][2])) - vod["duration_seconds"]) < 0.01

    await jobs.run_once(server.runtime)
    shown = (await http.get(f"/api/v1/vods/{vod['id']}")).json()
    assert shown["previews_url"] is not None
    track = (await http.get(shown["previews_url"])).text
    cues = [line for line in track.splitlines() if line.startswith("sprite.jpg#xywh=")]
    # A thumbnail every 5 s of about 7 s: two, side by side.
    assert cues == ["sprite.jpg#xywh=0,0,160,90", "sprite.jpg#xywh=160,0,160,90"]
    sprite = await http.get(shown["preview_sprite_url"])
    assert _jpeg_size(sprite.content) == (320, 90)

    owner = server.owner.headers
    hidden = await http.patch(
        f"/api/v1/vods/{vod['id']}", json={"visibility": "private"}, headers=owner
    )
    assert hidden.status_code == 200, hidden.text
    for path in ("master.m3u8", "120p/vod.m3u8", "120p/seg_0.m4s", "previews/sprite.jpg"):
        assert (await http.get(f"/hls/{stream_id}/{path}")).status_code == 404, path
        assert (await http.get(f"/hls/{stream_id}/{path}", headers=owner)).status_code == 200

    store = server.media.store
    assert await store.list_keys(f"{media_prefix(stream_id)}/")
    deleted = await http.delete(f"/api/v1/vods/{vod['id']}", headers=owner)
    assert deleted.status_code == 204, deleted.text
    assert await store.list_keys(f"{media_prefix(stream_id)}/") == []
    assert (await http.get(f"/api/v1/vods/{uuid.UUID(vod['id'])}")).status_code == 404
