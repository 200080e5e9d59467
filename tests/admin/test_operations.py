"""Announcements, analytics and seed 003's system routes through the API, bad input included."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from stagecast.accounts.models import User
from stagecast.app import create_app
from stagecast.config import RateLimits
from stagecast.db.engine import Database
from stagecast.moderation import reports
from stagecast.moderation.models import ReportedType, ReportReason
from tests.conftest import make_settings
from tests.factories import end_live, go_live, make_admin, make_channel, register
from tests.money.test_wallet import buy


async def test_announcements(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    now = datetime.now(UTC)
    made = {}

    def at(**delta: float) -> str:
        return (now + timedelta(**delta)).isoformat()

    for name, body in {
        "now": {"title": "Hello", "content": "Welcome", "type": "warning"},
        "later": {"title": "Soon", "content": "x", "starts_at": at(days=1)},
        "past": {"title": "Old", "content": "x", "starts_at": at(days=-2), "ends_at": at(days=-1)},
        "open": {"title": "Until", "content": "x", "ends_at": at(hours=1)},
    }.items():
        answer = await client.post("/api/v1/admin/announcements", json=body, headers=admin.headers)
        assert answer.status_code == 201, answer.text
        made[name] = answer.json()
    assert made["now"]["type"] == "warning"
    assert made["later"]["type"] == "info"  # the default
    active = await client.get("/api/v1/announcements/active")  # public: no credentials
    assert active.status_code == 200
    assert [a["title"] for a in active.json()["data"]] == ["Until", "Hello"]
    assert active.json()["maintenance"] is None
    listed = await client.get("/api/v1/admin/announcements", headers=admin.headers)
    assert [a["title"] for a in listed.json()["data"]] == ["Until", "Old", "Soon", "Hello"]

    gone = await client.delete(
        f"/api/v1/admin/announcements/{made['now']['id']}", headers=admin.headers
    )
    assert gone.status_code == 204
    again = await client.delete(
        f"/api/v1/admin/announcements/{made['now']['id']}", headers=admin.headers
    )
    assert again.status_code == 404
    assert again.json()["code"] == "ANNOUNCEMENT_NOT_FOUND"
    active = await client.get("/api/v1/announcements/active")
    assert [a["title"] for a in active.json()["data"]] == ["Until"]


async def test_announcement_bad_input(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    now = datetime.now(UTC)
    bad_bodies = [
        {"content": "no title"},
        {"title": "", "content": "x"},
        {"title": "t", "content": "x", "type": "urgent"},
        {"title": "t" * 201, "content": "x"},
        {"title": "t", "content": "x", "starts_at": now.isoformat(),
         "ends_at": (now - timedelta(hours=1)).isoformat()},
        {"title": "t", "content": "x", "starts_at": "2030-01-01T00:00:00"},
        {"title": "t", "content": "x", "colour": "red"},
    ]  # fmt: skip
    for body in bad_bodies:
        answer = await client.post("/api/v1/admin/announcements", json=body, headers=admin.headers)
        assert answer.status_code == 422, body
        assert answer.json()["code"] == "VALIDATION_ERROR"
    listed = await client.get("/api/v1/admin/announcements", headers=admin.headers)
    assert listed.json()["data"] == []
    bad_id = await client.delete("/api/v1/admin/announcements/nope", headers=admin.headers)
    assert bad_id.status_code == 422


async def test_analytics_overview(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    creator, viewer = await register(client), await register(client)
    channel = await make_channel(client, creator)
    ended = await go_live(app, channel["slug"])
    await end_live(app, ended)
    stream_id = await go_live(app, channel["slug"])
    await buy(client, viewer, 500)
    tip = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 100}, headers=viewer.headers
    )
    assert tip.status_code == 201, tip.text
    runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        reporter = await session.get_one(User, uuid.UUID(viewer.id))
        await reports.file_report(
            session,
            reporter=reporter,
            content_type=ReportedType.USER,
            content_id=uuid.UUID(creator.id),
            owner_id=uuid.UUID(creator.id),
            reason=ReportReason.SPAM,
            details=None,
        )

    answer = await client.get("/api/v1/admin/analytics/overview", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    totals = body["totals"]
    assert totals["users"] == 3
    assert totals["new_users"] == 3
    assert totals["creators"] == 1
    assert totals["live_now"] == 1
    assert totals["streams"] == 2
    assert totals["tokens_bought"] == 500
    assert totals["purchases_cents"] == 500  # 100 tokens a dollar
    assert totals["tokens_tipped"] == 100
    assert totals["platform_fee_tokens"] == 20  # the 20 % fee
    assert totals["payouts_tokens"] == 0
    assert totals["reports_open"] == 1
    assert len(body["days"]) == 30
    today = body["days"][-1]
    assert today["day"] == datetime.now(UTC).date().isoformat()
    assert today["new_users"] == 3
    assert today["streams"] == 2
    assert today["tokens_tipped"] == 100
    assert sum(d["tokens_bought"] for d in body["days"][:-1]) == 0
    assert body["from"] < body["to"]
    assert body["currency"] == "usd"

    week = await client.get(
        "/api/v1/admin/analytics/overview", params={"period": "week"}, headers=admin.headers
    )
    assert len(week.json()["days"]) == 7
    today_only = datetime.now(UTC).date().isoformat()
    ranged = await client.get(
        "/api/v1/admin/analytics/overview",
        params={"from": today_only, "to": today_only},
        headers=admin.headers,
    )
    assert [d["day"] for d in ranged.json()["days"]] == [today_only]
    assert ranged.json()["totals"]["tokens_tipped"] == 100
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    before = await client.get(
        "/api/v1/admin/analytics/overview",
        params={"from": yesterday, "to": yesterday},
        headers=admin.headers,
    )
    assert before.json()["totals"]["new_users"] == 0
    assert before.json()["totals"]["users"] == 3  # all time


async def test_analytics_bad_periods(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    for query in (
        {"period": "decade"},
        {"period": "week", "from": "2026-01-01"},
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"from": "2020-01-01", "to": "2026-01-01"},
        {"from": "2026-01-01T10:30:00"},  # a time needs its zone
        {"from": "soon"},
    ):
        answer = await client.get(
            "/api/v1/admin/analytics/overview", params=query, headers=admin.headers
        )
        assert answer.status_code == 422, query
        assert answer.json()["code"] == "VALIDATION_ERROR"


async def test_status(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/status")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body["components"]) == {"database", "redis", "chat", "stream_server"}
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["chat"]["status"] == "ok"
    assert body["status"] in {"operational", "degraded"}
    assert body["maintenance"]["enabled"] is False
    # Test apps run without RTMP: the stream server says so rather than "down".
    assert body["components"]["stream_server"]["details"]["rtmp"] is False


async def test_validate(client: httpx.AsyncClient) -> None:
    taken = await register(client)
    answer = await client.post(
        "/api/v1/validate",
        json={"username": taken.username.upper(), "email": taken.email, "password": "short"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is False
    assert body["username"] == {"valid": False, "available": False, "errors": ["is taken"],
                                "strength": None}  # fmt: skip
    assert body["email"]["available"] is False
    assert body["password"]["strength"] == "weak"
    assert body["password"]["errors"]
    fresh = await client.post(
        "/api/v1/validate",
        json={"username": "brand_new_name", "email": "new@example.com",
              "password": "Correct-Horse-Battery-9"},
    )  # fmt: skip
    assert fresh.json()["valid"] is True
    assert fresh.json()["password"]["strength"] == "strong"
    odd = await client.post("/api/v1/validate", json={"username": "a b", "email": "not-an-email"})
    assert odd.json()["username"]["valid"] is False
    assert odd.json()["username"]["errors"] == ["3 to 25 letters, digits or underscores"]
    assert odd.json()["email"]["valid"] is False
    seed_form = await client.post("/api/v1/validate", json={"type": "email", "value": taken.email})
    assert seed_form.json()["email"]["available"] is False
    assert seed_form.json()["username"] is None
    bad_bodies = [
        {}, {"colour": "red"}, {"username": 5}, {"password": "x" * 2000},
        {"type": "email"}, {"type": "phone", "value": "1"},
        {"type": "email", "value": "a@b.c", "email": "d@e.f"},
    ]  # fmt: skip
    for bad in bad_bodies:
        refused = await client.post("/api/v1/validate", json=bad)
        assert refused.status_code == 422, bad


async def test_validate_is_rate_limited(tmp_path: Path, database: Database) -> None:
    settings = make_settings(tmp_path, "unused", rate_limits=RateLimits(validation="2/minute"))
    application = create_app(settings, database=database)
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as http,
    ):
        codes = [
            (await http.post("/api/v1/validate", json={"username": "abc"})).status_code
            for _ in range(3)
        ]
    assert codes == [200, 200, 429]


async def test_csrf_token(client: httpx.AsyncClient) -> None:
    account = await register(client)
    answer = await client.get("/api/v1/csrf-token")
    assert answer.status_code == 200
    token = answer.json()["csrf_token"]
    assert answer.json()["header"] == "X-CSRF-Token"
    assert "stagecast_csrf" in answer.cookies
    assert answer.headers["cache-control"] == "no-store"
    # A header that is not the cookie's, or a cookie this server did not sign, is refused.
    wrong = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": token + "x"})
    assert wrong.status_code == 403
    client.cookies.set("stagecast_csrf", "forged.token", path="/api/v1")
    forged = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": "forged.token"})
    assert forged.status_code == 403
    assert forged.json()["code"] == "CSRF_TOKEN_INVALID"
    # The body's refresh token carries no ambient authority: no CSRF token needed.
    client.cookies.clear()
    by_body = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert by_body.status_code == 200
    # Logout by the cookie needs it too; by the access token it does not.
    token = (await client.get("/api/v1/csrf-token")).json()["csrf_token"]
    client.cookies.set("stagecast_refresh", by_body.json()["refresh_token"], path="/api/v1")
    refused = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "nope"})
    assert refused.status_code == 403
    done = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": token})
    assert done.status_code == 204


async def test_upload_limits_and_types(client: httpx.AsyncClient) -> None:
    limits = await client.get("/api/v1/upload/limits")
    assert limits.status_code == 200
    kinds = {k["kind"]: k for k in limits.json()["kinds"]}
    chunk = kinds["browser_stream_chunk"]
    assert chunk["max_bytes"] == 8 * 1024 * 1024
    assert limits.json()["max_request_bytes"] == 1024 * 1024

    def check(**query: str) -> object:
        return client.get("/api/v1/upload/validate-type", params=query)

    ok = await check(kind="browser_stream_chunk", filename="part.WEBM", content_type="video/webm")
    assert ok.json()["allowed"] is True
    assert ok.json()["extension"] == ".webm"
    exe = await check(kind="browser_stream_chunk", filename="setup.exe")
    assert exe.json()["allowed"] is False
    assert ".exe" in exe.json()["reason"]
    wrong_type = await check(kind="browser_stream_chunk", content_type="application/x-msdownload")
    assert wrong_type.json()["allowed"] is False
    big = await check(kind="browser_stream_chunk", filename="a.webm", size=str(9 * 1024 * 1024))
    assert big.json()["allowed"] is False
    nothing = await check(kind="browser_stream_chunk")
    assert nothing.json()["allowed"] is False
    unknown = await check(kind="tarball", filename="a.tar")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "UPLOAD_KIND_NOT_FOUND"
    missing = await client.get("/api/v1/upload/validate-type")
    assert missing.status_code == 422
    negative = await check(kind="browser_stream_chunk", filename="a.webm", size="-1")
    assert negative.status_code == 422
