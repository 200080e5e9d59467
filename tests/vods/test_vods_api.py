"""Recordings through the API: progress, edits and visibility (on the VOD, in lists and on its
media), reports, deletion with its media; bad input changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from stagecast.media.pipeline import media_prefix
from stagecast.moderation.models import Report
from stagecast.runtime import Runtime
from stagecast.vods.models import Vod
from tests.factories import Account, make_admin, register
from tests.money.test_wallet import buy
from tests.vods.conftest import RENDITION, Recording, make_recording, store_of


async def _progress(client: httpx.AsyncClient, vod_id: str, account: Account) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/vods/{vod_id}/progress", headers=account.headers)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


async def test_progress_is_saved_per_viewer_and_bounded_by_the_recording(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=6)
    viewer, other = await register(client), await register(client)
    url = f"/api/v1/vods/{recording.id}/progress"

    fresh = await _progress(client, recording.id, viewer)
    assert (fresh["position_seconds"], fresh["updated_at"]) == (0.0, None)
    assert fresh["duration_seconds"] == 6.0

    saved = await client.post(url, json={"position_seconds": 3.25}, headers=viewer.headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["position_seconds"] == 3.25
    moved = await client.post(url, json={"position_seconds": 4.5}, headers=viewer.headers)
    assert moved.status_code == 200, moved.text
    assert (await _progress(client, recording.id, viewer))["position_seconds"] == 4.5
    assert (await _progress(client, recording.id, other))["position_seconds"] == 0.0

    past_end = await client.post(url, json={"position_seconds": 6.5}, headers=viewer.headers)
    assert (past_end.status_code, past_end.json()["code"]) == (422, "VALIDATION_ERROR")
    assert past_end.json()["errors"][0]["field"] == "position_seconds"
    negative = await client.post(url, json={"position_seconds": -1}, headers=viewer.headers)
    assert negative.status_code == 422
    not_a_number = await client.post(url, json={"position_seconds": "x"}, headers=viewer.headers)
    assert not_a_number.status_code == 422
    assert (await _progress(client, recording.id, viewer))["position_seconds"] == 4.5

    the_end = await client.post(url, json={"position_seconds": 6}, headers=viewer.headers)
    assert the_end.status_code == 200, the_end.text
    anonymous = await client.post(url, json={"position_seconds": 1})
    assert anonymous.status_code == 401
    missing = await client.post(
        f"/api/v1/vods/{uuid.uuid4()}/progress",
        json={"position_seconds": 1},
        headers=viewer.headers,
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "VOD_NOT_FOUND")


async def test_only_the_owner_edits_a_recording(client: httpx.AsyncClient, app: FastAPI) -> None:
    recording = await make_recording(app, client)
    stranger = await register(client)
    url = f"/api/v1/vods/{recording.id}"

    edited = await client.patch(
        url, json={"title": "Best of today", "visibility": "subscribers"},
        headers=recording.owner.headers,
    )  # fmt: skip
    assert edited.status_code == 200, edited.text
    assert (edited.json()["title"], edited.json()["visibility"]) == ("Best of today", "subscribers")

    for body, headers, expected in [
        ({"title": "Mine now"}, stranger.headers, 403),
        ({"visibility": "friends"}, recording.owner.headers, 422),
        ({"visibility": None}, recording.owner.headers, 422),
        ({"title": ""}, recording.owner.headers, 422),
        ({"title": "x" * 141}, recording.owner.headers, 422),
        ({"duration_seconds": 1}, recording.owner.headers, 422),
        ({"title": "Anonymous"}, {}, 401),
    ]:
        answer = await client.patch(url, json=body, headers=headers)
        assert answer.status_code == expected, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    shown = await client.get(url, headers=recording.owner.headers)
    assert (shown.json()["title"], shown.json()["visibility"]) == ("Best of today", "subscribers")

    admin = await make_admin(client, app)
    by_admin = await client.patch(url, json={"visibility": "public"}, headers=admin.headers)
    assert by_admin.status_code == 200, by_admin.text


async def _media_status(
    client: httpx.AsyncClient, recording: Recording, headers: dict[str, str]
) -> list[int]:
    """What the recording's files answer: master playlist, rendition playlist, a segment,
    the thumbnail, and seed 004's path to the master playlist."""
    base = f"/hls/{recording.stream_id}"
    paths = [
        f"{base}/master.m3u8",
        f"{base}/{RENDITION}/vod.m3u8",
        f"{base}/{RENDITION}/seg_0.m4s",
        f"{base}/thumbnail.jpg",
        f"/livestream/{recording.stream_id}/stream.m3u8",
    ]
    return [(await client.get(path, headers=headers)).status_code for path in paths]


async def _listed(client: httpx.AsyncClient, recording: Recording, headers: dict[str, str]) -> bool:
    answer = await client.get(f"/api/v1/channels/{recording.channel['slug']}/vods", headers=headers)
    assert answer.status_code == 200, answer.text
    return recording.id in [v["id"] for v in answer.json()["data"]]


async def test_a_private_recording_is_hidden_from_others_with_its_media(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client)
    stranger = await register(client)
    owner = recording.owner.headers
    assert await _media_status(client, recording, {}) == [200] * 5

    private = await client.patch(
        f"/api/v1/vods/{recording.id}", json={"visibility": "private"}, headers=owner
    )
    assert private.status_code == 200, private.text

    for headers in ({}, stranger.headers):
        answer = await client.get(f"/api/v1/vods/{recording.id}", headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (404, "VOD_NOT_FOUND")
        assert await _media_status(client, recording, headers) == [404] * 5
        assert not await _listed(client, recording, headers)
        replay = await client.get(f"/api/v1/vods/{recording.id}/chat", headers=headers)
        assert replay.status_code == 404
    progress = await client.post(
        f"/api/v1/vods/{recording.id}/progress",
        json={"position_seconds": 1},
        headers=stranger.headers,
    )
    assert progress.status_code == 404
    assert await _media_status(client, recording, owner) == [200] * 5
    assert await _listed(client, recording, owner)
    admin = await make_admin(client, app)
    assert (await client.get(f"/api/v1/vods/{recording.id}", headers=admin.headers)).is_success

    public = await client.patch(
        f"/api/v1/vods/{recording.id}", json={"visibility": "public"}, headers=owner
    )
    assert public.status_code == 200
    assert await _media_status(client, recording, {}) == [200] * 5
    assert await _listed(client, recording, {})


async def test_a_subscribers_recording_plays_for_subscribers(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client)
    fan, stranger = await register(client), await register(client)
    changed = await client.patch(
        f"/api/v1/vods/{recording.id}",
        json={"visibility": "subscribers"},
        headers=recording.owner.headers,
    )
    assert changed.status_code == 200
    await buy(client, fan, 2500)
    subscribed = await client.post(
        "/api/v1/subscriptions",
        json={"channel_id": recording.channel["id"], "tier": 1},
        headers=fan.headers,
    )
    assert subscribed.status_code == 201, subscribed.text

    for headers in ({}, stranger.headers):
        answer = await client.get(f"/api/v1/vods/{recording.id}", headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (403, "SUBSCRIPTION_REQUIRED")
        assert await _media_status(client, recording, headers) == [403] * 5
        assert not await _listed(client, recording, headers)
    assert (await client.get(f"/api/v1/vods/{recording.id}", headers=fan.headers)).is_success
    assert await _media_status(client, recording, fan.headers) == [200] * 5
    assert await _listed(client, recording, fan.headers)


async def _reports(app: FastAPI) -> list[Report]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        return list((await session.scalars(select(Report).order_by(Report.created_at))).all())


async def test_reports_are_stored_for_moderation_and_merged(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client)
    viewer, other = await register(client), await register(client)
    url = f"/api/v1/vods/{recording.id}/report"

    first = await client.post(
        url, json={"reason": "spam", "details": " links everywhere "}, headers=viewer.headers
    )
    assert first.status_code == 201, first.text
    report = first.json()
    assert (report["content_type"], report["content_id"]) == ("vod", recording.id)
    assert (report["status"], report["count"], report["details"]) == (
        "pending",
        1,
        "links everywhere",
    )

    again = await client.post(url, json={"reason": "harassment"}, headers=viewer.headers)
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["count"]) == (report["id"], 2)
    assert again.json()["reason"] == "harassment"
    assert again.json()["details"] == "links everywhere"
    by_other = await client.post(url, json={"reason": "other"}, headers=other.headers)
    assert by_other.status_code == 201

    before = [(r.id, r.count, r.reason) for r in await _reports(app)]
    for body, headers, expected, code in [
        ({"reason": "boring"}, viewer.headers, 422, "VALIDATION_ERROR"),
        ({}, viewer.headers, 422, "VALIDATION_ERROR"),
        ({"reason": "spam", "details": "x" * 2001}, viewer.headers, 422, "VALIDATION_ERROR"),
        ({"reason": "spam"}, recording.owner.headers, 422, "CANNOT_REPORT_OWN_CONTENT"),
        ({"reason": "spam"}, {}, 401, "AUTHENTICATION_REQUIRED"),
    ]:
        answer = await client.post(url, json=body, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (expected, code), answer.text
    missing = await client.post(
        f"/api/v1/vods/{uuid.uuid4()}/report", json={"reason": "spam"}, headers=viewer.headers
    )
    assert missing.status_code == 404
    stored = await _reports(app)
    assert [(r.id, r.count, r.reason) for r in stored] == before
    assert {str(r.reporter_id) for r in stored} == {viewer.id, other.id}
    assert all(r.content_type == "vod" and str(r.content_id) == recording.id for r in stored)


async def test_deleting_a_recording_removes_its_media_after_the_hooks(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client)
    viewer = await register(client)
    saved = await client.post(
        f"/api/v1/vods/{recording.id}/progress",
        json={"position_seconds": 2},
        headers=viewer.headers,
    )
    assert saved.status_code == 200
    store = store_of(app)
    prefix = media_prefix(recording.stream_id)
    files = await store.list_keys(f"{prefix}/")
    assert f"{prefix}/{RENDITION}/seg_0.m4s" in files

    seen: list[tuple[str, int]] = []

    async def keep_clips(session: Any, hook_store: Any, stream_id: uuid.UUID) -> None:
        # What a clip would copy is still there when the hook runs.
        seen.append((str(stream_id), len(await hook_store.list_keys(f"{prefix}/"))))

    runtime: Runtime = app.state.runtime
    runtime.before_vod_media_withdrawn.append(keep_clips)
    try:
        refused = await client.delete(f"/api/v1/vods/{recording.id}", headers=viewer.headers)
        assert refused.status_code == 403
        assert seen == []
        assert await store.list_keys(f"{prefix}/") == files

        deleted = await client.delete(
            f"/api/v1/vods/{recording.id}", headers=recording.owner.headers
        )
        assert deleted.status_code == 204, deleted.text
    finally:
        runtime.before_vod_media_withdrawn.remove(keep_clips)
    assert seen == [(recording.stream_id, len(files))]
    assert await store.list_keys(f"{prefix}/") == []
    gone = await client.get(f"/api/v1/vods/{recording.id}")
    assert (gone.status_code, gone.json()["code"]) == (404, "VOD_NOT_FOUND")
    assert (await client.get(f"/hls/{recording.stream_id}/master.m3u8")).status_code == 404
    again = await client.delete(f"/api/v1/vods/{recording.id}", headers=recording.owner.headers)
    assert again.status_code == 404


async def test_seed_000_paths_reach_the_vod_routes(client: httpx.AsyncClient, app: FastAPI) -> None:
    recording = await make_recording(app, client, seconds=3)
    viewer = await register(client)
    saved = await client.post(
        f"/api/vods/{recording.id}/progress",
        json={"position_seconds": 1.5},
        headers=viewer.headers,
    )
    assert saved.status_code == 200, saved.text
    read = await client.get(f"/api/vods/{recording.id}/progress", headers=viewer.headers)
    assert read.json()["position_seconds"] == 1.5
    reported = await client.post(
        f"/api/vods/{recording.id}/report", json={"reason": "other"}, headers=viewer.headers
    )
    assert reported.status_code == 201, reported.text


async def test_a_recording_that_stops_being_public_lets_its_clips_keep_their_media(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recording = await make_recording(app, client, seconds=2)
    stranger = await register(client)
    url = f"/api/v1/vods/{recording.id}"
    seen: list[tuple[str, str]] = []

    async def keep_clips(session: Any, hook_store: Any, stream_id: uuid.UUID) -> None:
        vod = await session.scalar(select(Vod).where(Vod.stream_id == stream_id))
        seen.append((str(stream_id), vod.visibility))  # run before the change

    runtime: Runtime = app.state.runtime
    runtime.before_vod_media_withdrawn.append(keep_clips)
    try:
        owner = recording.owner.headers
        refused = await client.patch(url, json={"visibility": "private"}, headers=stranger.headers)
        assert refused.status_code == 403
        assert (await client.patch(url, json={"title": "Renamed"}, headers=owner)).is_success
        assert seen == []
        assert (
            await client.patch(url, json={"visibility": "subscribers"}, headers=owner)
        ).is_success
        assert seen == [(recording.stream_id, "public")]
        # Already withdrawn from the public: nothing more to copy.
        assert (await client.patch(url, json={"visibility": "private"}, headers=owner)).is_success
        assert (await client.patch(url, json={"visibility": "public"}, headers=owner)).is_success
        assert seen == [(recording.stream_id, "public")]
    finally:
        runtime.before_vod_media_withdrawn.remove(keep_clips)
