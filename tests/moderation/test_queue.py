"""The moderation queue: grouping, filters, order and cursor; decisions that do what they say;
seed 003's admin reports; who may see and decide."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from stagecast.accounts.models import Role, User
from stagecast.runtime import Runtime
from stagecast.streams.models import StreamKey
from tests.factories import Account, make_admin, register
from tests.moderation.conftest import (
    make_clip,
    make_creator,
    make_message,
    make_staff,
    make_vod,
    notifications_of,
    queue_item,
    report,
)

QUEUE = "/api/v1/moderation/queue"


async def _reported(
    client: httpx.AsyncClient, content_type: str, content_id: str, *reasons: str
) -> list[Account]:
    reporters = []
    for reason in reasons:
        reporter = await register(client)
        answer = await report(client, reporter, content_type, content_id, reason=reason)
        assert answer.status_code == 201, answer.text
        reporters.append(reporter)
    return reporters


async def test_items_group_reports_per_object(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    moderator = await make_staff(client, app, Role.MODERATOR)
    reporters = await _reported(client, "user", creator.account.id, "spam", "spam", "hate")
    # A duplicate counts in report_count, not in reporter_count.
    assert (await report(client, reporters[0], "user", creator.account.id)).status_code == 200
    item = await queue_item(client, moderator, creator.account.id)
    assert item["status"] == "open"
    assert (item["report_count"], item["reporter_count"]) == (4, 3)
    assert item["reasons"] == {"spam": 3, "hate": 1}
    assert (item["flag_count"], item["flag_kinds"]) == (0, [])
    assert item["first_reported_at"] <= item["last_reported_at"]
    assert item["content"]["exists"] is True
    assert item["content"]["removed"] is False
    assert item["content"]["author"] == {
        "id": creator.account.id,
        "username": creator.account.username,
    }
    assert len(item["reports"]) == 3
    assert {r["reporter"]["username"] for r in item["reports"]} == {r.username for r in reporters}
    one = await client.get(f"{QUEUE}/{item['id']}", headers=moderator.headers)
    assert one.status_code == 200
    assert one.json() == item


async def test_only_the_latest_five_reports_are_shown(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    creator = await make_creator(app, client)
    admin = await make_admin(client, app)
    await _reported(client, "channel", creator.channel["id"], *["spam"] * 7)
    item = await queue_item(client, admin, creator.channel["id"])
    assert item["report_count"] == 7
    assert len(item["reports"]) == 5
    shown = [r["created_at"] for r in item["reports"]]
    assert shown == sorted(shown, reverse=True)
    assert item["content"]["url"] == f"/{creator.channel['slug']}"


async def test_filters_order_and_cursor(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    admin = await make_admin(client, app)
    author = await register(client)
    messages = [await make_message(app, creator, author, f"message {n}") for n in range(3)]
    for message_id in messages:
        await _reported(client, "chat_message", message_id, "spam")
    await _reported(client, "stream", creator.stream_id, "violence")
    first = await client.get(QUEUE, params={"limit": 2}, headers=admin.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["has_more"] is True
    rest = await client.get(
        QUEUE, params={"limit": 2, "cursor": page["next_cursor"]}, headers=admin.headers
    )
    assert rest.json()["has_more"] is False
    ids = [i["content_id"] for i in page["items"] + rest.json()["items"]]
    assert ids == [*messages, creator.stream_id]  # oldest first
    only = await client.get(QUEUE, params={"content_type": "stream"}, headers=admin.headers)
    assert [i["content_id"] for i in only.json()["items"]] == [creator.stream_id]
    by_reason = await client.get(QUEUE, params={"reason": "violence"}, headers=admin.headers)
    assert [i["content_id"] for i in by_reason.json()["items"]] == [creator.stream_id]
    flags = await client.get(QUEUE, params={"source": "flags"}, headers=admin.headers)
    assert flags.json()["items"] == []
    assert (await client.get(QUEUE, params={"status": "approved"}, headers=admin.headers)).json()[
        "items"
    ] == []
    bad = await client.get(QUEUE, params={"status": "closed"}, headers=admin.headers)
    assert bad.status_code == 422
    assert (
        await client.get(QUEUE, params={"limit": 101}, headers=admin.headers)
    ).status_code == 422
    forged = await client.get(QUEUE, params={"cursor": "nonsense"}, headers=admin.headers)
    assert forged.status_code == 422


async def test_approve_keeps_the_content_and_tells_the_reporters(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    creator = await make_creator(app, client)
    moderator = await make_staff(client, app, Role.MODERATOR)
    admin = await make_admin(client, app)
    reporters = await _reported(client, "channel", creator.channel["id"], "spam", "hate")
    overview = await client.get("/api/v1/admin/analytics/overview", headers=admin.headers)
    open_before = overview.json()["totals"]["reports_open"]
    item = await queue_item(client, moderator, creator.channel["id"])
    answer = await client.post(
        f"{QUEUE}/{item['id']}/approve", json={"note": "satire"}, headers=moderator.headers
    )
    assert answer.status_code == 200, answer.text
    decided = answer.json()
    assert (decided["status"], decided["decision_note"]) == ("approved", "satire")
    assert decided["decided_by"] == moderator.id
    assert decided["decision_action"] == "dismissed"
    assert {r["status"] for r in decided["reports"]} == {"dismissed"}
    assert decided["content"]["exists"] is True
    # The channel is still there, its keys too.
    assert (await client.get(f"/api/v1/channels/{creator.channel['slug']}")).status_code == 200
    for reporter in reporters:
        told = [
            n for n in await notifications_of(client, reporter) if n["kind"] == "report_outcome"
        ]
        assert [n["payload"]["outcome"] for n in told] == ["dismissed"]
        assert told[0]["payload"]["case_id"] == item["id"]
    assert not [
        n for n in await notifications_of(client, creator.account) if n["kind"] == "warning"
    ]
    overview = await client.get("/api/v1/admin/analytics/overview", headers=admin.headers)
    assert overview.json()["totals"]["reports_open"] == open_before - 2
    twice = await client.post(f"{QUEUE}/{item['id']}/reject", json={}, headers=moderator.headers)
    assert twice.status_code == 409
    assert twice.json()["code"] == "ALREADY_DECIDED"
    assert (await client.get(f"/api/v1/channels/{creator.channel['slug']}")).status_code == 200
    # Reported again after the decision: a new case.
    await _reported(client, "channel", creator.channel["id"], "spam")
    again = await queue_item(client, moderator, creator.channel["id"])
    assert again["id"] != item["id"]
    assert again["report_count"] == 1


async def _reject(
    client: httpx.AsyncClient, staff: Account, content_id: str, **body: Any
) -> dict[str, Any]:
    item = await queue_item(client, staff, content_id)
    answer = await client.post(f"{QUEUE}/{item['id']}/reject", json=body, headers=staff.headers)
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    assert decided["status"] == "rejected"
    assert {r["status"] for r in decided["reports"]} == {"resolved"}
    return decided


async def test_reject_a_chat_message_deletes_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    moderator = await make_staff(client, app, Role.MODERATOR)
    author = await register(client)
    message_id = await make_message(app, creator, author, "buy followers here")
    kept_id = await make_message(app, creator, author, "hello")
    reporters = await _reported(client, "chat_message", message_id, "spam")
    history = f"/api/v1/streams/{creator.stream_id}/chat"
    shown = [m["id"] for m in (await client.get(history)).json()["data"]]
    assert message_id in shown
    decided = await _reject(client, moderator, message_id, note="spam link")
    assert decided["decision_action"] == "removed"
    assert decided["content"]["removed"] is True
    shown = [m["id"] for m in (await client.get(history)).json()["data"]]
    assert message_id not in shown
    assert kept_id in shown
    told = [
        n for n in await notifications_of(client, reporters[0]) if n["kind"] == "report_outcome"
    ]
    assert [(n["payload"]["outcome"], n["payload"]["action_taken"]) for n in told] == [
        ("removed", True)
    ]
    owner_told = [
        n for n in await notifications_of(client, author) if n["kind"] == "content_removed"
    ]
    assert owner_told[0]["payload"]["content_id"] == message_id
    assert owner_told[0]["payload"]["note"] == "spam link"


async def test_reject_a_vod_and_a_clip_deletes_them(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    creator = await make_creator(app, client)
    admin = await make_admin(client, app)
    clipper = await register(client)
    vod_id = await make_vod(app, creator)
    assert (await client.get(f"/api/v1/vods/{vod_id}")).status_code == 200
    await _reported(client, "vod", vod_id, "copyright")
    decided = await _reject(client, admin, vod_id)
    assert decided["content"]["exists"] is False
    assert (await client.get(f"/api/v1/vods/{vod_id}")).status_code == 404
    other = await make_creator(app, client)
    clip_id = await make_clip(app, other, clipper)
    assert (await client.get(f"/api/v1/clips/{clip_id}")).status_code == 200
    await _reported(client, "clip", clip_id, "violence")
    decided = await _reject(client, admin, clip_id)
    assert decided["content"] == {
        "exists": False, "removed": True, "title": None, "text": None, "author": None,
        "channel_id": None, "url": None,
    }  # fmt: skip
    assert (await client.get(f"/api/v1/clips/{clip_id}")).status_code == 404
    # The clipper, not the streamer, is told: the clip was theirs.
    assert [n["kind"] for n in await notifications_of(client, clipper)] == ["content_removed"]


async def test_reject_a_channel_takes_it_off_the_air(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    creator = await make_creator(app, client)
    admin = await make_admin(client, app)
    key = await client.get("/api/v1/live/streams/me/key", headers=creator.account.headers)
    assert key.status_code == 200, key.text
    await _reported(client, "channel", creator.channel["id"], "illegal")
    await _reject(client, admin, creator.channel["id"])
    stream = (await client.get(f"/api/v1/streams/{creator.stream_id}")).json()
    assert stream["status"] == "ended"
    runtime: Runtime = app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        keys = await session.scalars(
            select(StreamKey).where(StreamKey.channel_id == uuid.UUID(creator.channel["id"]))
        )
        assert keys.all() == []


async def test_reject_a_stream_ends_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    moderator = await make_staff(client, app, Role.MODERATOR)
    await _reported(client, "stream", creator.stream_id, "violence")
    await _reject(client, moderator, creator.stream_id)
    stream = (await client.get(f"/api/v1/streams/{creator.stream_id}")).json()
    assert stream["status"] == "ended"


async def _status_of(app: FastAPI, account: Account) -> str:
    runtime: Runtime = app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        user = await session.get_one(User, uuid.UUID(account.id))
        return user.status


@pytest.mark.parametrize(("action", "status"), [("suspend", "suspended"), ("ban", "banned")])
async def test_reject_with_an_account_action_signs_the_owner_out(
    app: FastAPI, client: httpx.AsyncClient, action: str, status: str
) -> None:
    creator = await make_creator(app, client)
    moderator = await make_staff(client, app, Role.MODERATOR)
    author = await register(client)
    message_id = await make_message(app, creator, author, "threat")
    assert (await client.get("/api/v1/auth/me", headers=author.headers)).status_code == 200
    await _reported(client, "chat_message", message_id, "harassment")
    decided = await _reject(client, moderator, message_id, action=action)
    assert decided["decision_action"] == status
    assert await _status_of(app, author) == status
    me = await client.get("/api/v1/auth/me", headers=author.headers)
    assert me.status_code == 401
    login = await client.post(
        "/api/v1/auth/login", json={"email": author.email, "password": author.password}
    )
    assert login.status_code in (401, 403)
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": author.refresh_token}
    )
    assert refresh.status_code in (401, 403)


async def test_reject_a_user_suspends_them(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    target = await register(client)
    await _reported(client, "user", target.id, "impersonation")
    decided = await _reject(client, admin, target.id)
    assert decided["content"]["removed"] is True
    assert await _status_of(app, target) == "suspended"
    assert (await client.get("/api/v1/auth/me", headers=target.headers)).status_code == 401


async def test_staff_cannot_ban_an_admin(app: FastAPI, client: httpx.AsyncClient) -> None:
    moderator = await make_staff(client, app, Role.MODERATOR)
    admin = await make_admin(client, app)
    await _reported(client, "user", admin.id, "spam")
    item = await queue_item(client, moderator, admin.id)
    refused = await client.post(
        f"{QUEUE}/{item['id']}/reject", json={"action": "ban"}, headers=moderator.headers
    )
    assert refused.status_code == 403
    assert (await client.get(f"{QUEUE}/{item['id']}", headers=moderator.headers)).json()[
        "status"
    ] == "open"
    assert await _status_of(app, admin) == "active"


async def test_bad_decisions_change_nothing(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    moderator = await make_staff(client, app, Role.MODERATOR)
    await _reported(client, "user", creator.account.id, "spam")
    item = await queue_item(client, moderator, creator.account.id)
    unknown = await client.post(
        f"{QUEUE}/{item['id']}/reject", json={"action": "delete"}, headers=moderator.headers
    )
    assert unknown.status_code == 422
    extra = await client.post(
        f"{QUEUE}/{item['id']}/approve", json={"verdict": "ok"}, headers=moderator.headers
    )
    assert extra.status_code == 422
    missing = await client.post(
        f"{QUEUE}/{uuid.UUID(int=3)}/approve", json={}, headers=moderator.headers
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "CASE_NOT_FOUND"
    assert (
        await client.get(f"{QUEUE}/{uuid.UUID(int=3)}", headers=moderator.headers)
    ).status_code == 404
    assert (await queue_item(client, moderator, creator.account.id))["status"] == "open"
    assert await _status_of(app, creator.account) == "active"


# --- seed 003's admin reports ---

REPORTS = "/api/v1/admin/reports"


async def _pending_report(
    client: httpx.AsyncClient, admin: Account, content_id: str
) -> dict[str, Any]:
    answer = await client.get(REPORTS, params={"status": "pending"}, headers=admin.headers)
    assert answer.status_code == 200, answer.text
    found = [r for r in answer.json()["items"] if r["content_id"] == content_id]
    assert len(found) == 1
    return found[0]


async def test_admin_reports_list(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    admin = await make_admin(client, app)
    reporters = await _reported(client, "user", creator.account.id, "spam", "hate")
    page = await client.get(REPORTS, params={"status": "all", "limit": 1}, headers=admin.headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["limit"], body["offset"]) == (1, 0)
    assert body["total"] >= 2
    assert len(body["items"]) == 1
    newest = body["items"][0]
    assert newest["reporter"] == {"id": reporters[1].id, "username": reporters[1].username}
    assert newest["case_id"]
    assert (newest["resolution"], newest["resolved_by"], newest["resolved_at"]) == (None,) * 3
    second = await client.get(
        REPORTS, params={"status": "all", "limit": 1, "offset": 1}, headers=admin.headers
    )
    assert second.json()["items"][0]["reporter"]["id"] == reporters[0].id
    assert (
        await client.get(REPORTS, params={"status": "open"}, headers=admin.headers)
    ).status_code == 422


@pytest.mark.parametrize(
    ("action", "resolution", "status", "stays"),
    [
        ("resolve", "removed", "resolved", False),
        ("dismiss", "dismissed", "dismissed", True),
        ("ban", "banned", "resolved", False),
        ("warn", "warned", "resolved", True),
    ],
)
async def test_admin_resolves_a_report(
    app: FastAPI,
    client: httpx.AsyncClient,
    action: str,
    resolution: str,
    status: str,
    stays: bool,
) -> None:
    creator = await make_creator(app, client)
    admin = await make_admin(client, app)
    author = await register(client)
    message_id = await make_message(app, creator, author, "borderline")
    reporters = await _reported(client, "chat_message", message_id, "harassment")
    pending = await _pending_report(client, admin, message_id)
    # Seed 003's body exactly: {action}.
    answer = await client.post(
        f"{REPORTS}/{pending['id']}/resolve", json={"action": action}, headers=admin.headers
    )
    assert answer.status_code == 200, answer.text
    resolved = answer.json()
    assert (resolved["status"], resolved["resolution"]) == (status, resolution)
    assert resolved["resolved_by"] == admin.id
    assert resolved["resolved_at"]
    shown = [
        m["id"]
        for m in (await client.get(f"/api/v1/streams/{creator.stream_id}/chat")).json()["data"]
    ]
    assert (message_id in shown) is stays
    kinds = [n["kind"] for n in await notifications_of(client, author)] if action != "ban" else []
    if action == "warn":
        assert kinds == ["warning"]
    if action == "ban":
        assert await _status_of(app, author) == "banned"
        assert (await client.get("/api/v1/auth/me", headers=author.headers)).status_code == 401
    told = [
        n for n in await notifications_of(client, reporters[0]) if n["kind"] == "report_outcome"
    ]
    assert [n["payload"]["outcome"] for n in told] == [resolution]
    twice = await client.post(
        f"{REPORTS}/{pending['id']}/resolve", json={"action": "dismiss"}, headers=admin.headers
    )
    assert twice.status_code == 409
    assert twice.json()["code"] == "ALREADY_DECIDED"


async def test_resolve_bad_input(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    admin = await make_admin(client, app)
    await _reported(client, "user", creator.account.id, "spam")
    pending = await _pending_report(client, admin, creator.account.id)
    wrong = await client.post(
        f"{REPORTS}/{pending['id']}/resolve", json={"action": "delete"}, headers=admin.headers
    )
    assert wrong.status_code == 422
    missing = await client.post(
        f"{REPORTS}/{uuid.UUID(int=5)}/resolve", json={"action": "dismiss"}, headers=admin.headers
    )
    assert missing.status_code == 404
    assert (await _pending_report(client, admin, creator.account.id))["status"] == "pending"


# --- who may ---


async def test_non_staff_are_refused_everywhere(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    viewer = await register(client)
    moderator = await make_staff(client, app, Role.MODERATOR)
    await _reported(client, "user", creator.account.id, "spam")
    admin = await make_admin(client, app)
    item = await queue_item(client, admin, creator.account.id)
    pending = await _pending_report(client, admin, creator.account.id)
    staff_routes = [
        ("GET", QUEUE, None),
        ("GET", f"{QUEUE}/{item['id']}", None),
        ("POST", f"{QUEUE}/{item['id']}/approve", {}),
        ("POST", f"{QUEUE}/{item['id']}/reject", {}),
        ("GET", "/api/v1/moderation/flags", None),
    ]
    admin_routes = [
        ("GET", REPORTS, None),
        ("POST", f"{REPORTS}/{pending['id']}/resolve", {"action": "dismiss"}),
    ]
    for method, path, body in staff_routes + admin_routes:
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
        refused = await client.request(method, path, json=body, headers=viewer.headers)
        assert refused.status_code == 403, (method, path)
        assert refused.json()["code"] == "PERMISSION_DENIED"
    creator_account = creator.account  # a creator is not staff either
    assert (await client.get(QUEUE, headers=creator_account.headers)).status_code == 403
    for method, path, body in admin_routes:
        refused = await client.request(method, path, json=body, headers=moderator.headers)
        assert refused.status_code == 403, (method, path)
    assert (await queue_item(client, admin, creator.account.id))["status"] == "open"
