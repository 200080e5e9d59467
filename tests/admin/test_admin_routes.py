"""Every admin route refuses anyone but an admin; the audit log, flags, maintenance mode,
announcements and analytics through the API, bad input included."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from stagecast.accounts.deps import CurrentUser
from stagecast.admin import audit, flags, jobs
from stagecast.admin.audit import AuditRecord
from stagecast.admin.maintenance import MaintenanceMode
from stagecast.errors import AppError
from stagecast.runtime import Runtime
from tests.conftest import logged
from tests.factories import go_live, make_admin, make_channel, register
from tests.money.test_wallet import balance, buy


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every method and path under /api/v1/admin in the OpenAPI document, filled in."""
    found = []
    for template, operations in app.openapi()["paths"].items():
        if template.startswith("/api/v1/admin/"):
            path = template.replace("{name}", "tips")
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            found.extend((m.upper(), path) for m in sorted(operations))
    return found


async def test_every_admin_route_refuses_non_admins(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    viewer = await register(client)
    routes = admin_routes(app)
    # The ones this part adds are all there (and accounts' /admin/users).
    paths = {p for _, p in routes}
    for expected in ("/api/v1/admin/audit", "/api/v1/admin/analytics/overview",
                     "/api/v1/admin/announcements", "/api/v1/admin/feature-flags",
                     "/api/v1/admin/feature-flags/tips", "/api/v1/admin/maintenance",
                     "/api/v1/admin/users"):  # fmt: skip
        assert expected in paths
    bodies: dict[str, Any] = {"PUT": {"enabled": True}, "POST": {"title": "t", "content": "c"}}
    for method, path in routes:
        answer = await client.request(method, path, headers=viewer.headers, json=bodies.get(method))
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "PERMISSION_DENIED"
        anonymous = await client.request(method, path, json=bodies.get(method))
        assert anonymous.status_code == 401, (method, path)
    # A refused PUT changed nothing.
    assert await flags.enabled(runtime_of(app), "tips")


async def test_feature_flags_gate_tips_and_registrations(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_admin(client, app)
    listed = await client.get("/api/v1/admin/feature-flags", headers=admin.headers)
    assert listed.status_code == 200
    names = {f["name"]: f for f in listed.json()["data"]}
    assert set(names) >= {"clips", "tips", "browser_broadcasting", "registrations"}
    assert all(f["enabled"] and f["default"] for f in names.values())

    creator, viewer = await register(client), await register(client)
    channel = await make_channel(client, creator)
    stream_id = await go_live(app, channel["slug"])
    await buy(client, viewer, 100)

    off = await client.put(
        "/api/v1/admin/feature-flags/tips", json={"enabled": False}, headers=admin.headers
    )
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    assert off.json()["updated_by_id"] == admin.id
    tip = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 10}, headers=viewer.headers
    )
    assert tip.status_code == 403
    assert tip.json()["code"] == "FEATURE_DISABLED"
    assert tip.json()["feature"] == "tips"
    assert (await balance(client, viewer))["token_balance"] == 100  # nothing moved
    await client.put(
        "/api/v1/admin/feature-flags/tips", json={"enabled": True}, headers=admin.headers
    )
    tip = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 10}, headers=viewer.headers
    )
    assert tip.status_code == 201, tip.text

    await client.put(
        "/api/v1/admin/feature-flags/registrations", json={"enabled": False}, headers=admin.headers
    )
    refused = await client.post(
        "/api/v1/auth/register",
        json={"username": "latecomer", "email": "late@example.com", "password": "Correct-Horse-7"},
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "FEATURE_DISABLED"
    check = await client.post("/api/v1/validate", json={"username": "latecomer"})
    assert check.json()["username"]["available"] is True  # no account was made

    runtime = runtime_of(app)
    assert await flags.enabled(runtime, "clips")
    await client.put(
        "/api/v1/admin/feature-flags/clips", json={"enabled": False}, headers=admin.headers
    )
    assert not await flags.enabled(runtime, "clips")
    with pytest.raises(flags.FeatureDisabled):
        await flags.require(runtime, "clips")
    clip = await client.post(
        "/api/v1/clips", json={"stream_id": stream_id, "duration": 10}, headers=viewer.headers
    )
    assert clip.status_code == 403
    assert clip.json()["code"] == "FEATURE_DISABLED"
    assert clip.json()["feature"] == "clips"


async def test_feature_flag_bad_input(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    unknown = await client.put(
        "/api/v1/admin/feature-flags/teleport", json={"enabled": True}, headers=admin.headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "FEATURE_FLAG_NOT_FOUND"
    for body in ({}, {"enabled": "maybe"}, {"enabled": True, "extra": 1}):
        bad = await client.put("/api/v1/admin/feature-flags/tips", json=body, headers=admin.headers)
        assert bad.status_code == 422, body
    assert await flags.enabled(runtime_of(app), "tips")


async def test_maintenance_mode(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    viewer = await register(client)
    creator = await register(client)
    await make_channel(client, creator)
    ends = datetime.now(UTC) + timedelta(minutes=10)
    on = await client.put(
        "/api/v1/admin/maintenance",
        json={"enabled": True, "message": "Upgrading the database", "ends_at": ends.isoformat()},
        headers=admin.headers,
    )
    assert on.status_code == 200, on.text
    assert on.json()["enabled"] is True
    assert 1 <= on.json()["retry_after"] <= 600

    for path in ("/api/v1/streams", "/api/v1/auth/me", "/api/streams", "/livestream/active"):
        closed = await client.get(path, headers=viewer.headers)
        assert closed.status_code == 503, path
        assert closed.headers["content-type"] == "application/problem+json"
        assert closed.json()["code"] == "MAINTENANCE"
        assert closed.json()["detail"] == "Upgrading the database"
        assert 1 <= int(closed.headers["retry-after"]) <= 600
    write = await client.post("/api/v1/channels", json={"slug": "nope"}, headers=viewer.headers)
    assert write.status_code == 503
    # Open: health, probes, the status page, the banner, admins (by token and on admin routes).
    for path in ("/api/v1/health", "/healthz", "/readyz", "/api/v1/status",
                 "/api/v1/announcements/active", "/api/v1/csrf-token"):  # fmt: skip
        assert (await client.get(path)).status_code == 200, path
    banner = (await client.get("/api/v1/announcements/active")).json()
    assert banner["maintenance"]["message"] == "Upgrading the database"
    assert (await client.get("/api/v1/status")).json()["status"] == "maintenance"
    assert (await client.get("/api/v1/admin/maintenance", headers=admin.headers)).json()["enabled"]
    # Sign-in: admins only (the password is checked first).
    login = await client.post(
        "/api/v1/auth/login", json={"email": viewer.email, "password": viewer.password}
    )
    assert login.status_code == 503
    assert login.json()["code"] == "MAINTENANCE"
    login = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
    )
    assert login.status_code == 200
    # An admin's token (its role claim) opens the rest of the API to them.
    signed_in = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/api/v1/streams", headers=signed_in)).status_code == 200
    # No new broadcast starts (RTMP and browser claims go through the same door).
    media = runtime_of(app).media
    assert media is not None

    async def disconnect(_reason: str) -> None:
        return None

    with pytest.raises(MaintenanceMode):
        await media.claim(kind="browser", disconnect=disconnect, owner_id=uuid.UUID(creator.id))

    off = await client.put(
        "/api/v1/admin/maintenance", json={"enabled": False}, headers=admin.headers
    )
    assert off.json() == {"enabled": False, "message": None, "ends_at": None,
                          "started_at": None, "retry_after": None}  # fmt: skip
    assert (await client.get("/api/v1/streams", headers=viewer.headers)).status_code == 200
    assert (await client.get("/api/v1/announcements/active")).json()["maintenance"] is None
    broadcast = await media.claim(
        kind="browser", disconnect=disconnect, owner_id=uuid.UUID(creator.id)
    )
    await media.release(broadcast, clean=True)


async def test_browser_broadcasting_flag(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    creator = await register(client)
    await make_channel(client, creator)
    await client.put(
        "/api/v1/admin/feature-flags/browser_broadcasting",
        json={"enabled": False},
        headers=admin.headers,
    )
    media = runtime_of(app).media
    assert media is not None

    async def disconnect(_reason: str) -> None:
        return None

    with pytest.raises(AppError) as refused:
        await media.claim(kind="browser", disconnect=disconnect, owner_id=uuid.UUID(creator.id))
    assert refused.value.code == "FEATURE_DISABLED"
    assert not media.broadcasts


async def test_maintenance_bad_input(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    for body in ({}, {"enabled": "yes"}, {"enabled": True, "message": "x" * 501},
                 {"enabled": True, "ends_at": "2030-01-01T00:00:00"}):  # fmt: skip
        bad = await client.put("/api/v1/admin/maintenance", json=body, headers=admin.headers)
        assert bad.status_code == 422, body
    state = await client.get("/api/v1/admin/maintenance", headers=admin.headers)
    assert state.json()["enabled"] is False


async def flush(app: FastAPI) -> None:
    writer = runtime_of(app).audit
    assert writer is not None
    await writer.flush()


async def test_audit_records_writes(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    creator = await register(client)
    channel = await make_channel(client, creator)
    other = await register(client)
    refused = await client.patch(
        f"/api/v1/channels/{channel['slug']}", json={"name": "mine"}, headers=other.headers
    )
    assert refused.status_code == 403
    await client.put(
        "/api/v1/admin/feature-flags/tips", json={"enabled": True}, headers=admin.headers
    )
    await client.get("/api/v1/streams")  # reads are not recorded
    await flush(app)

    def listing(**query: str) -> Any:
        return client.get("/api/v1/admin/audit", params=query, headers=admin.headers)

    mine = (await listing(actor=creator.id)).json()["data"]
    assert [e["action"] for e in mine] == ["create_channel", "register"]  # newest first
    made = mine[0]
    assert made["method"] == "POST"
    assert made["status"] == 201
    assert made["outcome"] == "success"
    assert made["route"] == "/api/v1/channels"
    assert made["request_id"]
    assert made["ip_hash"]
    assert made["ip_hash"] != "127.0.0.1"
    register_row = next(e for e in mine if e["action"] == "register")
    assert register_row["resource"] == "auth"

    denied = (await listing(actor=other.id, outcome="denied")).json()["data"]
    assert [e["action"] for e in denied] == ["update_channel"]
    assert denied[0]["resource_ids"] == {"channel_id": channel["slug"]}
    assert denied[0]["status"] == 403
    flag = (await listing(resource="admin/feature-flags")).json()["data"]
    assert flag[0]["actor_id"] == admin.id
    assert flag[0]["resource_ids"] == {"name": "tips"}
    assert flag[0]["action"] == "set_feature_flag"
    assert not (await listing(resource="streams", actor=admin.id)).json()["data"]
    by_ip = (await listing(ip="127.0.0.1")).json()["data"]
    assert len(by_ip) >= 5
    assert not (await listing(ip="10.9.9.9")).json()["data"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert not (await listing(**{"from": future})).json()["data"]
    assert (await listing(to=future)).json()["data"]
    page = (await listing(limit="2")).json()
    assert len(page["data"]) == 2
    assert page["has_more"]
    following = (await listing(limit="2", cursor=page["next_cursor"])).json()["data"]
    assert {e["id"] for e in following}.isdisjoint({e["id"] for e in page["data"]})


async def test_audit_bad_filters(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(client, app)
    queries: list[dict[str, str]] = [
        {"actor": "someone"}, {"outcome": "maybe"}, {"from": "yesterday"},
        {"from": "2026-01-01T00:00:00"}, {"cursor": "garbage"}, {"limit": "1000"},
    ]  # fmt: skip
    for query in queries:
        bad = await client.get("/api/v1/admin/audit", params=query, headers=admin.headers)
        assert bad.status_code == 422, query


async def test_audit_is_append_only_and_expires(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_admin(client, app)
    runtime = runtime_of(app)
    writer = runtime.audit
    assert writer is not None
    old = datetime.now(UTC) - timedelta(days=runtime.settings.admin.audit_retention_days + 1)
    writer.add(AuditRecord(action="old", resource="test", method="POST", route="/x",
                           status=200, outcome="success", occurred_at=old))  # fmt: skip
    await writer.flush()
    async with runtime.db.session() as session, session.begin():
        rows = list(await session.scalars(audit._filtered(audit.AuditFilters())))
        assert any(r.action == "old" for r in rows)
        row = next(r for r in rows if r.action == "register")
        row.action = "tampered"
        with pytest.raises(RuntimeError, match="append-only"):
            await session.flush()
        await session.rollback()
    assert await jobs.run_once(runtime) == 1
    async with runtime.db.session() as session, session.begin():
        left = list(await session.scalars(audit._filtered(audit.AuditFilters())))
    assert not any(r.action == "old" for r in left)
    assert any(r.action == "register" for r in left)


async def test_audit_write_failure_is_logged_not_lost_silently(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    writer = runtime_of(app).audit
    assert writer is not None
    account = await register(client)
    # A record the database cannot take (not JSON); the request behind it was answered.
    writer.add(AuditRecord(action="broken", resource="test", method="POST", route="/x",
                           status=200, outcome="success", details={"x": object()}))  # fmt: skip
    for _ in range(audit.MAX_TRIES):
        await writer.flush()
    dropped = logged(caplog, "audit_record_dropped")
    assert dropped
    assert dropped[0]["record"]["action"] == "broken"
    assert logged(caplog, "audit_write_failed")
    assert not writer.pending
    # The good record of the failed batch was written on its own.
    await writer.flush()
    admin = await make_admin(client, app)
    await writer.flush()
    rows = await client.get(
        "/api/v1/admin/audit", params={"actor": account.id}, headers=admin.headers
    )
    assert [e["action"] for e in rows.json()["data"]] == ["register"]


async def test_a_sensitive_read_is_recorded(app: FastAPI, client: httpx.AsyncClient) -> None:
    """The seam the KYC documents use: a route records its read after its checks."""

    async def read_document(request: Request, user: CurrentUser) -> dict[str, str]:
        audit.record_access(
            request,
            action="kyc_document_read",
            resource="kyc",
            resource_ids={"document_id": "d1"},
            details={"owner": user.username},
        )
        return {"ok": "yes"}

    app.add_api_route("/api/v1/test-read", read_document, methods=["GET"])
    admin = await make_admin(client, app)
    assert (await client.get("/api/v1/test-read", headers=admin.headers)).status_code == 200
    await flush(app)
    rows = await client.get(
        "/api/v1/admin/audit", params={"action": "kyc_document_read"}, headers=admin.headers
    )
    (row,) = rows.json()["data"]
    assert row["actor_id"] == admin.id
    assert row["method"] == "GET"
    assert row["resource"] == "kyc"
    assert row["resource_ids"] == {"document_id": "d1"}
    assert row["details"] == {"owner": admin.username}
    assert row["ip_hash"]
    assert row["request_id"]
