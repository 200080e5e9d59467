"""Privacy: the data export (seed 003), erasure with the books still balanced, Do Not Sell and
Global Privacy Control, retention."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from stagecast.accounts.models import AuthSession, User
from stagecast.channels import service as channels
from stagecast.chat import service as chat
from stagecast.config import PrivacySettings
from stagecast.db.base import utcnow
from stagecast.errors import AppError
from stagecast.money.providers import StripeConnectPayouts
from stagecast.privacy import jobs
from stagecast.privacy import service as privacy
from stagecast.privacy.models import DataExport
from stagecast.runtime import Runtime
from stagecast.streams import service as streams_service
from tests.conftest import make_settings
from tests.factories import (
    PASSWORD,
    Account,
    go_live,
    login,
    make_admin,
    make_channel,
    register,
)
from tests.money.books import check_books
from tests.money.conftest import API_KEY
from tests.money.fakes import fake_stripe_server
from tests.money.test_wallet import buy
from tests.realtime.conftest import serving


async def _fan_of_a_live_channel(
    client: httpx.AsyncClient, app: FastAPI
) -> tuple[Account, Account, str]:
    """A fan who follows a live channel, chatted in it and tipped it."""
    creator, fan = await register(client), await register(client)
    channel = await make_channel(client, creator)
    stream_id = await go_live(app, channel["slug"])
    followed = await client.post(f"/api/v1/channels/{channel['slug']}/follow", headers=fan.headers)
    assert followed.status_code in (200, 201, 204), followed.text
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        user = await session.get_one(User, uuid.UUID(fan.id))
        found = await channels.get_channel(session, channel["slug"])
        await chat.send_message(
            session, user=user, channel=found, stream_id=uuid.UUID(stream_id),
            raw="hello from the fan", reply_to=None,
        )  # fmt: skip
    await buy(client, fan, 1000)
    tipped = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 250}, headers=fan.headers
    )
    assert tipped.status_code == 201, tipped.text
    return creator, fan, stream_id


async def _export_link(client: httpx.AsyncClient, app: FastAPI, who: Account) -> str:
    asked = await client.post("/api/v1/users/me/export", headers=who.headers)
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "pending"
    await jobs.run_once(app.state.runtime)
    notes = (await client.get("/api/v1/notifications", headers=who.headers)).json()["data"]
    ready = [n for n in notes if n["kind"] == privacy.EXPORT_READY]
    assert len(ready) == 1
    return str(ready[0]["payload"]["download_url"])


async def test_export_archive_holds_the_users_rows(client: httpx.AsyncClient, app: FastAPI) -> None:
    _creator, fan, stream_id = await _fan_of_a_live_channel(client, app)
    born = await client.patch(
        "/api/v1/users/me", headers=fan.headers, json={"date_of_birth": "1990-05-17"}
    )
    assert born.status_code == 200, born.text
    link = await _export_link(client, app, fan)
    download = await client.get(link, headers=fan.headers)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    files: dict[str, Any] = {
        name.removesuffix(".json"): json.loads(archive.read(name))
        for name in archive.namelist()
        if name.endswith(".json")
    }
    assert files["profile"][0]["id"] == fan.id
    assert files["profile"][0]["email"] == fan.email
    assert files["profile"][0]["date_of_birth"] == "1990-05-17"  # decrypted for them
    assert [f["user_id"] for f in files["channel_follows"]] == [fan.id]
    assert [m["body"] for m in files["chat_messages"]] == ["hello from the fan"]
    assert [c["tokens"] for c in files["contributions"]] == [250]
    assert files["contributions"][0]["stream_id"] == stream_id
    assert {s["user_id"] for s in files["auth_sessions"]} == {fan.id}
    assert {s["ip"] for s in files["auth_sessions"]} == {"127.0.0.1"}  # decrypted for them
    assert {p["user_id"] for p in files["purchases"]} == {fan.id}
    kinds = sorted(t["kind"] for t in files["ledger_transactions"])
    assert "tip" in kinds
    amounts = sorted(e["amount"] for e in files["ledger_entries"])
    assert amounts == [-250, 1000]  # bought 1000, tipped 250 out of the wallet
    raw = b"".join(archive.read(name) for name in archive.namelist())
    assert b"password_hash" not in raw
    assert b"_encrypted" not in raw
    assert b"argon2" not in raw
    listed = (await client.get("/api/v1/users/me/exports", headers=fan.headers)).json()
    assert [e["status"] for e in listed["data"]] == ["ready"]


async def test_export_link_is_refused_to_others_forged_or_expired(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, other = await register(client), await register(client)
    link = await _export_link(client, app, owner)
    runtime: Runtime = app.state.runtime
    path = urlsplit(link).path
    token = parse_qs(urlsplit(link).query)["token"][0]
    export_id = uuid.UUID(path.split("/")[-2])

    async def fetch(who: Account, url: str) -> tuple[int, str]:
        answer = await client.get(url, headers=who.headers)
        return answer.status_code, answer.json().get(
            "code", ""
        ) if answer.status_code != 200 else ""

    assert await fetch(other, link) == (403, "EXPORT_LINK_INVALID")
    other_link = await _export_link(client, app, other)
    other_token = parse_qs(urlsplit(other_link).query)["token"][0]
    # Another user's token on this export, and this token with one character changed.
    assert await fetch(owner, f"{path}?token={other_token}") == (403, "EXPORT_LINK_INVALID")
    assert await fetch(owner, f"{path}?token={token[:-1]}{'A' if token[-1] != 'A' else 'B'}") == (
        403, "EXPORT_LINK_INVALID",
    )  # fmt: skip
    anonymous = await client.get(link)
    assert anonymous.status_code == 401
    # A token the server signed whose time is up.
    async with runtime.db.session() as session, session.begin():
        export = await session.get_one(DataExport, export_id)
        stale = privacy.export_token(runtime.secrets, export, utcnow() - timedelta(seconds=1))
    assert await fetch(owner, f"{path}?token={stale}") == (403, "EXPORT_LINK_INVALID")
    assert (await client.get(link, headers=owner.headers)).status_code == 200
    # After its expiry the retention job deletes the archive: the link stops working.
    later = utcnow() + timedelta(hours=runtime.settings.privacy.export_link_hours, seconds=1)
    await jobs.run_once(runtime, now=later)
    assert await fetch(owner, link) == (403, "EXPORT_LINK_INVALID")
    assert runtime.private_store is not None
    assert not [k for k in await runtime.private_store.list_keys("exports/") if owner.id in k]


async def test_erasure_keeps_the_books_and_locks_the_account(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    creator, fan, stream_id = await _fan_of_a_live_channel(client, app)
    key = await client.post(
        "/api/v1/developer/api-keys", json={"name": "bot", "scopes": ["read"]},
        headers=fan.headers,
    )  # fmt: skip
    raw_key = key.json()["key"]
    wrong = await client.request(
        "DELETE", "/api/v1/users/me", json={"password": "not-it-at-all"}, headers=fan.headers
    )
    assert (wrong.status_code, wrong.json()["code"]) == (401, "INVALID_CREDENTIALS")
    assert (await client.get("/api/v1/auth/me", headers=fan.headers)).status_code == 200

    erased = await client.request(
        "DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=fan.headers
    )
    assert erased.status_code == 204, erased.text
    assert (await client.get("/api/v1/auth/me", headers=fan.headers)).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers={"X-API-Key": raw_key})).status_code == 401
    refused = await client.post(
        "/api/v1/auth/login", json={"email": fan.email, "password": PASSWORD}
    )
    assert (refused.status_code, refused.json()["code"]) == (401, "INVALID_CREDENTIALS")
    by_name = await client.post(
        "/api/v1/auth/login", json={"username": fan.username, "password": PASSWORD}
    )
    assert by_name.status_code == 401
    again = await client.post(
        "/api/v1/auth/register",
        json={"username": fan.username, "email": "new@example.com", "password": PASSWORD},
    )
    assert (again.status_code, again.json()["code"]) == (409, "USERNAME_TAKEN")

    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        user = await session.get_one(User, uuid.UUID(fan.id))
        assert (user.status, user.display_name, user.date_of_birth_encrypted) == (
            "deleted",
            "Deleted user",
            None,
        )
        assert fan.username not in (user.username, user.email)
        assert fan.email != user.email
        sessions = (
            await session.scalars(select(AuthSession).where(AuthSession.user_id == user.id))
        ).all()
        assert all(s.revoked_at is not None and s.ip is None for s in sessions)
        await check_books(session)  # the tip's entries stay, attributed to the erased row
    history = (await client.get(f"/api/v1/streams/{stream_id}/chat")).json()["data"]
    assert [(m["body"], m["author"]["display_name"]) for m in history] == [
        ("hello from the fan", "Deleted user")
    ]
    earnings = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert earnings["available_tokens"] == 200  # the creator keeps what the tip earned

    # An erased creator's channel keeps its content but loses its stream key.
    key = (await client.get("/api/v1/live/streams/me/key", headers=creator.headers)).json()
    gone = await client.request(
        "DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=creator.headers
    )
    assert gone.status_code == 204
    async with runtime.db.session() as session, session.begin():
        with pytest.raises(AppError):
            await streams_service.verify_stream_key(session, runtime.secrets, key["stream_key"])
        await check_books(session)

    # The name is free again once the hold ends.
    later = utcnow() + timedelta(days=runtime.settings.privacy.username_hold_days, seconds=1)
    await jobs.run_once(runtime, now=later)
    await register(client, username=fan.username)


async def test_admin_erasure_and_who_may_erase(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin, target, bystander = (
        await make_admin(client, app),
        await register(client),
        await register(client),
    )
    denied = await client.delete(f"/api/v1/admin/users/{target.id}", headers=bystander.headers)
    assert (denied.status_code, denied.json()["code"]) == (403, "PERMISSION_DENIED")
    own = await client.delete(f"/api/v1/admin/users/{admin.id}", headers=admin.headers)
    assert own.status_code == 403
    missing = await client.delete(f"/api/v1/admin/users/{uuid.uuid4()}", headers=admin.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "USER_NOT_FOUND")
    assert (await client.get("/api/v1/auth/me", headers=target.headers)).status_code == 200
    done = await client.delete(f"/api/v1/admin/users/{target.id}", headers=admin.headers)
    assert done.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=target.headers)).status_code == 401
    twice = await client.delete(f"/api/v1/admin/users/{target.id}", headers=admin.headers)
    assert twice.status_code == 404
    no_body = await client.request("DELETE", "/api/v1/users/me", headers=bystander.headers)
    assert (no_body.status_code, no_body.json()["code"]) == (422, "VALIDATION_ERROR")


async def test_opt_out_and_global_privacy_control(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await register(client)
    start = await client.get("/api/v1/users/me/privacy", headers=user.headers)
    assert start.json() == {"do_not_sell": False, "global_privacy_control": False}
    gpc = await client.get("/api/v1/users/me/privacy", headers={**user.headers, "Sec-GPC": "1"})
    assert gpc.json()["global_privacy_control"] is True
    assert gpc.headers["gpc"] == "1"
    opted = await client.post(
        "/api/v1/users/me/privacy/opt-out", json={"do_not_sell": True}, headers=user.headers
    )
    assert opted.json()["do_not_sell"] is True
    bad = await client.post(
        "/api/v1/users/me/privacy/opt-out", json={"do_not_sell": "maybe"}, headers=user.headers
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR")
    assert (await client.get("/api/v1/users/me/privacy", headers=user.headers)).json()[
        "do_not_sell"
    ] is True


async def test_retention_removes_old_ips_sessions_and_chat(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    settings = runtime.settings.privacy.model_copy(update={"chat_days": 30})
    user = await register(client)
    await login(client, user)
    assert runtime.private_store is not None
    soon = utcnow() + timedelta(days=settings.session_ip_days - 1)
    async with runtime.db.session() as session, session.begin():
        first = await privacy.apply_retention(session, runtime.private_store, settings, now=soon)
    assert first["session_ips"] == 0
    later = utcnow() + timedelta(days=settings.session_ip_days + 1)
    async with runtime.db.session() as session, session.begin():
        done = await privacy.apply_retention(session, runtime.private_store, settings, now=later)
        rows = (
            await session.scalars(
                select(AuthSession).where(AuthSession.user_id == uuid.UUID(user.id))
            )
        ).all()
    assert done["session_ips"] == 2
    assert all(r.ip is None and r.user_agent is None for r in rows)
    past_all = utcnow() + timedelta(days=settings.ended_session_days + 31)
    async with runtime.db.session() as session, session.begin():
        done = await privacy.apply_retention(session, runtime.private_store, settings, now=past_all)
    assert done["sessions"] == 2  # expired 30 days after sign-in, then kept 90 more


async def test_do_not_sell_and_gpc_keep_the_email_from_stripe(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """What is shared with providers: Stripe Connect gets the creator's email to prefill its
    onboarding, unless they opted out or their browser sends Global Privacy Control."""
    runtime: Runtime = app.state.runtime
    async with fake_stripe_server() as fake:
        provider = StripeConnectPayouts(API_KEY, api_base=fake.base_url, max_network_retries=0)
        runtime.payout_provider = provider
        try:
            shared, opted, gpc = (
                await register(client),
                await register(client),
                await register(client),
            )
            await client.post(
                "/api/v1/users/me/privacy/opt-out", json={"do_not_sell": True},
                headers=opted.headers,
            )  # fmt: skip
            for who, extra in ((shared, {}), (opted, {}), (gpc, {"Sec-GPC": "1"})):
                answer = await client.post(
                    "/api/v1/sell/connect/onboard", headers={**who.headers, **extra}
                )
                assert answer.status_code == 200, answer.text
        finally:
            await provider.aclose()
    accounts = [r.form for r in fake.received if r.path == "/v1/accounts"]
    assert [form.get("email") for form in accounts] == [shared.email, None, None]
    assert [form["metadata[user_id]"] for form in accounts] == [shared.id, opted.id, gpc.id]


async def test_session_addresses_are_encrypted_at_rest(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register(client)
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stored = await session.scalar(
            select(AuthSession.ip).where(AuthSession.user_id == uuid.UUID(user.id))
        )
    assert stored
    assert "127.0.0.1" not in stored
    listed = (await client.get("/api/v1/sessions", headers=user.headers)).json()["data"]
    assert [s["ip"] for s in listed] == ["127.0.0.1"]


async def test_the_routes_are_in_the_openapi_with_their_errors(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    expected = {
        ("post", "/api/v1/kyc/submit"): {"401", "409", "413", "415", "422"},
        ("get", "/api/v1/kyc/{verification_id}/status"): {"401", "404"},
        ("get", "/api/v1/kyc/verifications"): {"401"},
        ("post", "/api/v1/admin/kyc/{verification_id}/approve"): {"401", "403", "404", "409"},
        ("post", "/api/v1/admin/kyc/{verification_id}/reject"): {"401", "403", "404", "409", "422"},
        ("get", "/api/v1/admin/kyc/documents/{document_id}"): {"401", "403", "404"},
        ("post", "/api/v1/users/me/export"): {"401"},
        ("get", "/api/v1/users/me/exports/{export_id}/download"): {"401", "403", "404"},
        ("post", "/api/v1/users/me/privacy/opt-out"): {"401", "422"},
        ("delete", "/api/v1/users/me"): {"401", "403", "422"},
        ("delete", "/api/v1/admin/users/{user_id}"): {"401", "403", "404"},
        ("post", "/api/v1/payouts/request"): {"403"},
    }
    for (method, path), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (method, path, sorted(responses))
        for status in statuses:
            schema = responses[status]["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}
    upload = paths["/api/v1/kyc/submit"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


async def test_a_served_export_is_built_in_the_background_and_announced_on_the_socket(
    tmp_path: Path, committed_database_url: str
) -> None:
    """As production runs it: the request's background task builds the archive, and the
    notification reaches the user's open socket."""
    settings = make_settings(
        tmp_path, committed_database_url, privacy=PrivacySettings(jobs_interval_seconds=3600)
    )
    async with serving(settings) as live:
        user = await live.account()
        socket = await live.connect(user)
        asked = await live.http.post("/api/v1/users/me/export", headers=user.headers)
        assert asked.status_code == 202, asked.text
        note = await socket.wait_for("notification:new", within=30)
        assert note["payload"]["kind"] == privacy.EXPORT_READY
        link = note["payload"]["payload"]["download_url"]
        archive = await live.http.get(link, headers=user.headers)
        assert archive.status_code == 200, archive.text
        profile = json.loads(zipfile.ZipFile(io.BytesIO(archive.content)).read("profile.json"))
        assert profile[0]["id"] == user.id
