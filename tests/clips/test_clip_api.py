"""One published stream, many clips: ranges outside the DVR window, the rate limit, editing and
deleting (whose clip it is), likes and views, the channel's lists and trending."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.clips.conftest import published
from tests.factories import Account
from tests.media.conftest import MediaServer, start_publisher


async def _clip(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await http.post("/api/v1/clips", json=body, headers=headers)


async def _ids(http: httpx.AsyncClient, path: str) -> list[str]:
    answer = await http.get(path)
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()["data"]]


async def test_clips_of_one_stream_through_the_api(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    owner = server.owner
    clipper = await server.live.account()
    other = await server.live.account()
    moderator = await server.live.account()
    limited = await server.live.account()
    appointed = await http.post(
        f"/api/v1/channels/{server.channel['id']}/moderators",
        json={"user_id": moderator.id},
        headers=owner.headers,
    )
    assert appointed.status_code in {200, 201}, appointed.text
    publisher = await start_publisher(server.rtmp_url, seconds=60)
    try:
        stream = await server.live_stream()
        stream_id = stream["id"]
        await published(server, stream_id, seconds=8)

        # Outside the DVR window (30 s in these tests) or past the live edge.
        for body in (
            {"offset": 40, "duration": 5},
            {"start": 0, "duration": 60},
            {"start": 500, "duration": 5},
        ):
            refused = await _clip(http, clipper.headers, stream_id=stream_id, **body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["code"] == "CLIP_RANGE_UNAVAILABLE"
            assert refused.json()["available_end"] >= 8

        first = await _clip(http, clipper.headers, stream_id=stream_id, duration=6)
        assert first.status_code == 201, first.text
        clip = first.json()
        second = await _clip(http, other.headers, stream_id=stream_id, duration=5, offset=1)
        assert second.status_code == 201, second.text
        other_clip = second.json()

        # The per-user rate limit of the channel.
        limit = await http.patch(
            f"/api/v1/channels/{server.channel['id']}/settings",
            json={"clips": {"per_user_per_hour": 1}},
            headers=owner.headers,
        )
        assert limit.status_code == 200, limit.text
        assert (
            await _clip(http, limited.headers, stream_id=stream_id, duration=5)
        ).status_code == 201
        again = await _clip(http, limited.headers, stream_id=stream_id, duration=5)
        assert again.status_code == 429
        assert again.json()["code"] == "RATE_LIMIT_EXCEEDED"
        assert int(again.headers["retry-after"]) > 0
        # The owner is not limited.
        assert (
            await _clip(http, owner.headers, stream_id=stream_id, duration=5)
        ).status_code == 201
        assert (
            await _clip(http, owner.headers, stream_id=stream_id, duration=5)
        ).status_code == 201

        await _whose_clip(
            http, clip, clipper=clipper, other=other, moderator=moderator, owner=owner
        )
        await _likes_and_views(http, clip, other=other, owner=owner)
        await _lists(http, server.channel["id"], clip)

        # Deleting: the moderator may; the clip's files go with it.
        deleted = await http.delete(f"/api/v1/clips/{other_clip['id']}", headers=moderator.headers)
        assert deleted.status_code == 204
        assert (await http.get(f"/api/v1/clips/{other_clip['id']}")).status_code == 404
        assert (await http.get(other_clip["playlist_url"])).status_code == 404
        deleted = await http.delete(f"/api/v1/clips/{clip['id']}", headers=clipper.headers)
        assert deleted.status_code == 204
        assert len(await _ids(http, f"/api/v1/channels/{server.channel['id']}/clips")) == 3
    finally:
        publisher.kill()
        await publisher.wait()


async def _whose_clip(
    http: httpx.AsyncClient,
    clip: dict[str, Any],
    *,
    clipper: Account,
    other: Account,
    moderator: Account,
    owner: Account,
) -> None:
    # Someone else's clip: no edits, no deletion.
    path = f"/api/v1/clips/{clip['id']}"
    for answer in (
        await http.patch(path, json={"title": "mine now"}, headers=other.headers),
        await http.delete(path, headers=other.headers),
        await http.patch(path, json={"title": "mod edit"}, headers=moderator.headers),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "NOT_YOUR_CLIP"
    assert (await http.get(path)).json()["title"] == clip["title"]

    # A trim beyond the original range, or too short, changes nothing.
    for trim in ({"start": 0, "end": 6.5}, {"start": 2, "end": 6.1}, {"start": 3, "end": 6}):
        refused = await http.patch(path, json=trim, headers=clipper.headers)
        assert refused.status_code == 422, (trim, refused.text)
        assert refused.json()["code"] == "TRIM_OUTSIDE_RANGE"
    unchanged = (await http.get(path)).json()
    assert unchanged["duration"] == 6
    assert unchanged["trim_start"] == 0
    renamed = await http.patch(path, json={"title": "Best play"}, headers=clipper.headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "Best play"
    # The channel's owner may retitle it too.
    by_owner = await http.patch(path, json={"title": "Best play!"}, headers=owner.headers)
    assert by_owner.status_code == 200


async def _likes_and_views(
    http: httpx.AsyncClient, clip: dict[str, Any], *, other: Account, owner: Account
) -> None:
    path = f"/api/v1/clips/{clip['id']}"
    # Likes are idempotent both ways.
    like = f"{path}/like"
    assert (await http.post(like, headers=other.headers)).json() == {
        "liked": True,
        "like_count": 1,
    }
    assert (await http.post(like, headers=other.headers)).json()["like_count"] == 1
    assert (await http.post(like, headers=owner.headers)).json()["like_count"] == 2
    assert (await http.delete(like, headers=owner.headers)).json() == {
        "liked": False,
        "like_count": 1,
    }
    assert (await http.delete(like, headers=owner.headers)).json()["like_count"] == 1
    seen = (await http.get(path, headers=other.headers)).json()
    assert seen["liked"] is True
    assert (await http.get(path)).json()["liked"] is None
    assert (await http.post(like)).status_code == 401

    # Views: once per viewer an hour.
    views = f"{path}/views"
    assert (await http.post(views, headers=other.headers)).json() == {
        "counted": True,
        "view_count": 1,
    }
    assert (await http.post(views, headers=other.headers)).json()["counted"] is False
    assert (await http.post(views)).json()["counted"] is True  # anonymous, by address
    assert (await http.post(views)).json() == {"counted": False, "view_count": 2}


async def _lists(http: httpx.AsyncClient, channel_id: str, clip: dict[str, Any]) -> None:
    # The channel's lists and trending.
    channel_clips = f"/api/v1/channels/{channel_id}/clips"
    by_views = await _ids(http, f"{channel_clips}?sort=views")
    assert by_views[0] == clip["id"]
    assert len(by_views) == 5
    assert (await _ids(http, f"{channel_clips}?sort=likes"))[0] == clip["id"]
    recent = await _ids(http, f"{channel_clips}?sort=recent&period=day")
    assert recent[-1] == clip["id"]
    assert len(recent) == 5
    page = await http.get(f"{channel_clips}?sort=views&limit=2")
    assert page.json()["has_more"] is True
    rest = await http.get(
        f"{channel_clips}?sort=views&limit=10&cursor={page.json()['next_cursor']}"
    )
    paged = [c["id"] for c in page.json()["data"] + rest.json()["data"]]
    assert paged == by_views
    counted = (await http.get(f"{channel_clips}?page=2&limit=2")).json()
    assert counted["total"] == 5
    assert counted["page"] == 2
    assert (await _ids(http, "/api/v1/clips/trending"))[0] == clip["id"]


async def test_the_per_user_limit_holds_for_clips_asked_at_once(media_server: MediaServer) -> None:
    server, http = media_server, media_server.live.http
    clipper = await server.live.account()
    limit = await http.patch(
        f"/api/v1/channels/{server.channel['id']}/settings",
        json={"clips": {"per_user_per_hour": 3}},
        headers=server.owner.headers,
    )
    assert limit.status_code == 200, limit.text
    publisher = await start_publisher(server.rtmp_url, seconds=40)
    try:
        stream = await server.live_stream()
        await published(server, stream["id"], seconds=7)
        answers = await asyncio.gather(
            *(
                _clip(http, clipper.headers, stream_id=stream["id"], duration=5, offset=n / 10)
                for n in range(8)
            )
        )
    finally:
        publisher.kill()
        await publisher.wait()
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [201] * 3 + [429] * 5, [a.text for a in answers]
    mine = await _ids(http, f"/api/v1/channels/{server.channel['id']}/clips?period=all")
    assert len(mine) == 3
