"""Every way of ending a stream ends the broadcast: publisher cut, ffmpeg stopped, playlists
closed, VOD finished, `stream:ended` sent, and the answer tells the truth."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from stagecast.db.base import utcnow
from stagecast.media.pipeline import media_prefix
from tests.factories import make_admin
from tests.media.conftest import MediaServer, eventually, start_publisher

SEED_004_STOP = {"userId": "user123", "action": "stop", "timestamp": 1704110400}

Ending = Callable[[MediaServer, str], Awaitable[httpx.Response]]


async def _delete(server: MediaServer, stream_id: str) -> httpx.Response:
    return await server.live.http.delete(
        f"/api/v1/streams/{stream_id}", headers=server.owner.headers
    )


async def _patch(server: MediaServer, stream_id: str) -> httpx.Response:
    return await server.live.http.patch(
        f"/api/v1/streams/{stream_id}", json={"status": "ended"}, headers=server.owner.headers
    )


async def _seed_003_put(server: MediaServer, stream_id: str) -> httpx.Response:
    return await server.live.http.put(
        f"/api/v1/live/streams/{stream_id}", json={"status": "ended"}, headers=server.owner.headers
    )


async def _seed_004_stop(server: MediaServer, stream_id: str) -> httpx.Response:
    return await server.live.http.post(
        f"/livestream/{stream_id}/stop", json=SEED_004_STOP, headers=server.owner.headers
    )


async def _admin_delete(server: MediaServer, stream_id: str) -> httpx.Response:
    admin = await make_admin(server.live.http, server.live.app)
    return await server.live.http.delete(f"/api/v1/streams/{stream_id}", headers=admin.headers)


def _answered_ended(answer: httpx.Response) -> bool:
    body = answer.json()
    return body.get("status") in {"ended", "stopped"}


def _seconds(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _playlist(server: MediaServer, stream_id: str) -> str:
    answer = await server.live.http.get(f"/hls/{stream_id}/source/index.m3u8")
    return answer.text if answer.status_code == 200 else ""


@pytest.mark.parametrize(
    "end", [_delete, _patch, _seed_003_put, _seed_004_stop, _admin_delete], ids=lambda f: f.__name__
)
async def test_ending_a_live_stream_ends_its_broadcast(
    media_server: MediaServer, end: Ending
) -> None:
    server, http = media_server, media_server.live.http
    published_at = time.monotonic()
    publisher = await start_publisher(server.rtmp_url, seconds=120)
    try:
        stream = await server.live_stream()
        stream_id = stream["id"]
        viewer = await server.live.connect()
        joined = await viewer.call("stream:join", {"streamId": stream_id})
        assert joined["ok"], joined
        await eventually(lambda: _has_segments(server, stream_id), within=20)

        asked_at = utcnow()
        answer = await end(server, stream_id)
        sent_for = time.monotonic() - published_at  # real-time media: at most this much
        assert answer.status_code == 200, answer.text
        assert _answered_ended(answer), answer.text

        # The answer came once everything was done: the publisher is cut, nothing runs.
        await asyncio.wait_for(publisher.wait(), 10)
        assert server.media.by_stream(uuid.UUID(stream_id)) is None
        ended = (await http.get(f"/api/v1/streams/{stream_id}")).json()
        assert ended["status"] == "ended"
        assert _seconds(ended["ended_at"]) <= utcnow()
        assert _seconds(ended["ended_at"]) >= asked_at

        playlist = await _playlist(server, stream_id)
        assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
        assert "PRELOAD-HINT" not in playlist
        assert "#EXT-X-PART:" not in playlist
        stored = await server.media.store.list_keys(f"{media_prefix(stream_id)}/")
        await asyncio.sleep(1.5)  # no ffmpeg writes behind the ended playlist
        assert await server.media.store.list_keys(f"{media_prefix(stream_id)}/") == stored

        vods = (await http.get(f"/api/v1/channels/{server.channel['slug']}/vods")).json()["data"]
        assert [v["stream_id"] for v in vods] == [stream_id]
        # The recording holds what was sent until the end, nothing written after it (ffmpeg's
        # -re starts with a burst of half a second).
        assert 0 < vods[0]["duration_seconds"] <= sent_for + 1.0

        event = await viewer.wait_for("stream:ended", within=5)
        assert event["payload"]["stream_id"] == stream_id

        # Asked again, every way answers that it had already ended, and changes nothing.
        again = await _seed_004_stop(server, stream_id)
        assert again.json()["status"] == "already_stopped", again.text
        repeat = await _delete(server, stream_id)
        assert repeat.status_code == 200
        assert repeat.json()["ended_at"] == ended["ended_at"]
        assert len(viewer.received("stream:ended")) == 1
    finally:
        if publisher.returncode is None:
            publisher.kill()
            await publisher.wait()


async def _has_segments(server: MediaServer, stream_id: str) -> bool:
    return "seg_1.m4s" in await _playlist(server, stream_id)


async def test_only_the_owner_or_an_admin_ends_a_stream(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    publisher = await start_publisher(server.rtmp_url, seconds=120)
    try:
        stream_id = (await server.live_stream())["id"]
        stranger = await server.live.account()
        attempts: list[Any] = [
            http.delete(f"/api/v1/streams/{stream_id}", headers=stranger.headers),
            http.patch(
                f"/api/v1/streams/{stream_id}", json={"status": "ended"}, headers=stranger.headers
            ),
            http.post(
                f"/livestream/{stream_id}/stop", json=SEED_004_STOP, headers=stranger.headers
            ),
        ]
        for answer in await asyncio.gather(*attempts):
            assert answer.status_code == 403, answer.text
            assert answer.json()["code"] == "PERMISSION_DENIED"
        anonymous = await http.delete(f"/api/v1/streams/{stream_id}")
        assert anonymous.status_code == 401
        # A stream cannot be put live by asking, only by publishing.
        refused = await http.patch(
            f"/api/v1/streams/{stream_id}", json={"status": "live"}, headers=server.owner.headers
        )
        assert refused.status_code == 422
        assert refused.json()["code"] == "VALIDATION_ERROR"
        assert (await http.get(f"/api/v1/streams/{stream_id}")).json()["status"] == "live"
        assert publisher.returncode is None
        assert server.media.by_stream(uuid.UUID(stream_id)) is not None
    finally:
        publisher.kill()
        await publisher.wait()


async def test_a_scheduled_stream_is_cancelled_not_ended(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    created = await http.post(
        "/api/v1/streams", json={"title": "Later"}, headers=server.owner.headers
    )
    assert created.status_code == 201, created.text
    stream_id = created.json()["id"]
    not_live = await http.patch(
        f"/api/v1/streams/{stream_id}", json={"status": "ended"}, headers=server.owner.headers
    )
    assert not_live.status_code == 409
    assert not_live.json()["code"] == "STREAM_NOT_LIVE"
    stop = await _seed_004_stop(server, stream_id)
    assert stop.json()["status"] == "already_stopped"
    cancelled = await _delete(server, stream_id)
    assert cancelled.status_code == 204
    assert (await http.get(f"/api/v1/streams/{stream_id}")).status_code == 404
