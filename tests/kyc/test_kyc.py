"""KYC (seed 002): submission checked by content, sealed at rest, reviewed by admins, and what
an approval unlocks (payouts by default; going live and tips when the settings say)."""

from __future__ import annotations

import asyncio
import struct
import sys
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select

from stagecast.accounts.models import Role
from stagecast.app import create_app
from stagecast.config import KycSettings
from stagecast.db.engine import Database
from stagecast.kyc import service as kyc
from stagecast.kyc.models import KycDocument, KycVerification
from stagecast.media.store import MediaStore
from stagecast.runtime import Runtime
from tests.admin.test_admin_routes import flush
from tests.conftest import make_settings
from tests.factories import (
    Account,
    make_admin,
    make_channel,
    register,
    set_role,
    verify_identity,
)
from tests.money.test_earnings import buy, earner


def png(width: int = 4, height: int = 3) -> bytes:
    """A real PNG (what a phone's photo of an ID would be, smaller)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )  # fmt: skip

    rows = b"".join(b"\x00" + bytes([200, 30, 30] * width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
ADULT = "1990-04-02"


def form(legal_name: str = "Ada Lovelace", born: str = ADULT) -> dict[str, str]:
    return {"legal_name": legal_name, "date_of_birth": born}


async def submit(
    client: httpx.AsyncClient,
    who: Account,
    files: list[tuple[str, bytes, str]] | None = None,
    **fields: str,
) -> httpx.Response:
    files = (
        files
        if files is not None
        else [("front.png", png(), "image/png"), ("id.pdf", PDF, "application/pdf")]
    )
    return await client.post(
        "/api/v1/kyc/submit",
        data=form(**fields),
        files=[("documents", f) for f in files],
        headers=who.headers,
    )


async def _state(app: FastAPI) -> tuple[int, list[str]]:
    runtime: Runtime = app.state.runtime
    assert runtime.private_store is not None
    async with runtime.db.session() as session, session.begin():
        rows = len((await session.scalars(select(KycVerification))).all())
    return rows, await runtime.private_store.list_keys("kyc/")


async def test_submit_review_approve_and_read_documents(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    performer = await register(client)
    admin = await make_admin(client, app)
    answer = await submit(client, performer)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["status"] == "pending"
    assert [d["content_type"] for d in made["documents"]] == ["image/png", "application/pdf"]
    # What the owner sees carries no decrypted name or date of birth.
    assert "legal_name" not in made

    status = await client.get(f"/api/v1/kyc/{made['id']}/status", headers=performer.headers)
    assert status.json()["status"] == "pending"
    history = await client.get("/api/v1/kyc/verifications", headers=performer.headers)
    assert [v["id"] for v in history.json()["data"]] == [made["id"]]

    # At rest: neither the name nor the picture is readable without the server secret.
    runtime: Runtime = app.state.runtime
    store = runtime.private_store
    assert store is not None
    async with runtime.db.session() as session, session.begin():
        row = await session.get_one(KycVerification, uuid.UUID(made["id"]))
        assert "Ada" not in row.legal_name_encrypted
        assert ADULT not in row.date_of_birth_encrypted
        docs = (await session.scalars(select(KycDocument).order_by(KycDocument.id))).all()
    sealed = await store.read(docs[0].storage_key)
    assert b"PNG" not in sealed
    assert b"IHDR" not in sealed
    # The private store is not the media store /hls serves.
    assert (runtime.settings.data_dir / "private" / docs[0].storage_key).is_file()

    queue = await client.get("/api/v1/admin/kyc?status=pending", headers=admin.headers)
    assert [(v["legal_name"], v["date_of_birth"]) for v in queue.json()["data"]] == [
        ("Ada Lovelace", ADULT)
    ]
    document = await client.get(
        f"/api/v1/admin/kyc/documents/{made['documents'][0]['id']}", headers=admin.headers
    )
    assert document.status_code == 200
    assert (document.content, document.headers["content-type"]) == (png(), "image/png")
    assert document.headers["cache-control"] == "no-store"

    approved = await client.post(f"/api/v1/admin/kyc/{made['id']}/approve", headers=admin.headers)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by_id"]) == ("approved", admin.id)
    me = (await client.get("/api/v1/auth/me", headers=performer.headers)).json()
    assert me["date_of_birth"] == ADULT  # the verified date of birth is the profile's
    notes = (await client.get("/api/v1/notifications", headers=performer.headers)).json()
    assert [n["kind"] for n in notes["data"]] == ["kyc.approved"]
    again = await client.post(f"/api/v1/admin/kyc/{made['id']}/approve", headers=admin.headers)
    assert (again.status_code, again.json()["code"]) == (409, "KYC_NOT_PENDING")
    twice = await submit(client, performer)
    assert (twice.status_code, twice.json()["code"]) == (409, "KYC_ALREADY_SUBMITTED")


async def test_reject_with_reason_then_submit_again(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    performer = await register(client)
    admin = await make_admin(client, app)
    first = (await submit(client, performer)).json()
    no_reason = await client.post(
        f"/api/v1/admin/kyc/{first['id']}/reject", json={}, headers=admin.headers
    )
    assert (no_reason.status_code, no_reason.json()["code"]) == (422, "VALIDATION_ERROR")
    rejected = await client.post(
        f"/api/v1/admin/kyc/{first['id']}/reject", json={"reason": "Blurry photo"},
        headers=admin.headers,
    )  # fmt: skip
    assert rejected.json()["status"] == "rejected"
    status = await client.get(f"/api/v1/kyc/{first['id']}/status", headers=performer.headers)
    assert status.json()["rejection_reason"] == "Blurry photo"
    notes = (await client.get("/api/v1/notifications", headers=performer.headers)).json()
    assert notes["data"][0]["payload"]["reason"] == "Blurry photo"
    second = await submit(client, performer)
    assert second.status_code == 201, second.text


async def test_bad_documents_and_ages_are_refused_and_change_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    performer = await register(client)
    # A real program (the Python running these tests), named as a photo of a passport.
    executable = await asyncio.to_thread(lambda: Path(sys.executable).resolve().read_bytes())
    today = datetime.now(UTC).date()
    minor_born = today.replace(year=today.year - 17).isoformat()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"files": [("passport.png", executable, "image/png")]}, 415, "DOCUMENT_TYPE_REFUSED"),
        ({"files": [("notes.png", b"just some text, not a picture", "image/png")]}, 415,
         "DOCUMENT_TYPE_REFUSED"),
        ({"files": [("big.png", png() + b"\0" * (10 * 1024 * 1024), "image/png")]}, 413,
         "DOCUMENT_TOO_LARGE"),
        ({"files": [("a.png", png(), "image/png")] * 4}, 422, "VALIDATION_ERROR"),
        ({"files": []}, 422, "VALIDATION_ERROR"),
        ({"born": minor_born}, 422, "VALIDATION_ERROR"),
        ({"born": (today + timedelta(days=1)).isoformat()}, 422, "VALIDATION_ERROR"),
        ({"born": "not-a-date"}, 422, "VALIDATION_ERROR"),
        ({"legal_name": " "}, 422, "VALIDATION_ERROR"),
    ]  # fmt: skip
    for fields, status, code in cases:
        answer = await submit(client, performer, **fields)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (fields, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    minor = await submit(client, performer, born=minor_born)
    assert minor.json()["errors"][0]["field"] == "date_of_birth"
    assert await _state(app) == (0, [])
    anonymous = await client.post(
        "/api/v1/kyc/submit", data=form(), files=[("documents", ("a.png", png()))]
    )
    assert anonymous.status_code == 401


async def test_a_request_over_every_document_limit_is_cut_off(app: FastAPI, tmp_path: Path) -> None:
    """The body limit of the route: the documents' allowance, not the API's 1 MB."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        performer = await register(client)
        huge = png() + b"\0" * (3 * 10 * 1024 * 1024 + 128 * 1024)
        answer = await submit(client, performer, files=[("huge.png", huge, "image/png")])
        assert (answer.status_code, answer.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
        fine = await submit(
            client, performer, files=[("p.png", png() + b"\0" * 2_000_000, "image/png")]
        )
        assert fine.status_code == 201, fine.text
    assert (await _state(app))[0] == 1


async def test_only_admins_review_and_owners_see_their_own(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    performer, other = await register(client), await register(client)
    moderator = await register(client)
    await set_role(app, moderator, Role.MODERATOR)
    made = (await submit(client, performer)).json()
    doc_id = made["documents"][0]["id"]
    for who in (performer, other, moderator):
        for method, path, body in [
            ("GET", "/api/v1/admin/kyc", None),
            ("GET", f"/api/v1/admin/kyc/{made['id']}", None),
            ("GET", f"/api/v1/admin/kyc/documents/{doc_id}", None),
            ("POST", f"/api/v1/admin/kyc/{made['id']}/approve", None),
            ("POST", f"/api/v1/admin/kyc/{made['id']}/reject", {"reason": "x"}),
        ]:
            answer = await client.request(method, path, json=body, headers=who.headers)
            assert (answer.status_code, answer.json()["code"]) == (403, "PERMISSION_DENIED")
    theirs = await client.get(f"/api/v1/kyc/{made['id']}/status", headers=other.headers)
    assert (theirs.status_code, theirs.json()["code"]) == (404, "KYC_NOT_FOUND")
    assert (await client.get("/api/v1/kyc/verifications", headers=other.headers)).json()[
        "data"
    ] == []
    assert (await _state(app))[0] == 1
    status = await client.get(f"/api/v1/kyc/{made['id']}/status", headers=performer.headers)
    assert status.json()["status"] == "pending"


async def test_payouts_need_an_approved_verification(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    creator, _ = await earner(client, app, 6000)
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        for row in (await session.scalars(select(KycVerification))).all():
            await session.delete(row)  # the earner factory verified them; undo it
    refused = await client.post(
        "/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "KYC_REQUIRED")
    balance = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert balance["available_tokens"] == 6000  # nothing moved
    admin = await make_admin(client, app)
    made = (await submit(client, creator)).json()
    pending = await client.post(
        "/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers
    )
    assert pending.json()["code"] == "KYC_REQUIRED"  # submitted is not approved
    await client.post(f"/api/v1/admin/kyc/{made['id']}/approve", headers=admin.headers)
    asked = await client.post(
        "/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers
    )
    assert asked.status_code == 201, asked.text


async def test_tips_need_a_verified_recipient_when_the_settings_say(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path, database_url, kyc=KycSettings(required_for=["payouts", "tips"])
    )
    application = create_app(settings, database=database)
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as client,
    ):
        creator, fan = await register(client), await register(client)
        channel = await make_channel(client, creator)
        await buy(client, fan, 1000)
        refused = await client.post(
            "/api/v1/donations", json={"channel_id": channel["id"], "tokens": 100},
            headers=fan.headers,
        )  # fmt: skip
        assert (refused.status_code, refused.json()["code"]) == (403, "KYC_REQUIRED"), refused.text
        wallet = (await client.get("/api/v1/wallet/balance", headers=fan.headers)).json()
        assert wallet["token_balance"] == 1000
        await verify_identity(application, creator)
        given = await client.post(
            "/api/v1/donations", json={"channel_id": channel["id"], "tokens": 100},
            headers=fan.headers,
        )  # fmt: skip
        assert given.status_code == 201, given.text


async def test_retention_job_deletes_decided_documents(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    performer, admin = await register(client), await make_admin(client, app)
    waiting = await register(client)
    made = (await submit(client, performer)).json()
    (await submit(client, waiting)).json()
    await client.post(f"/api/v1/admin/kyc/{made['id']}/approve", headers=admin.headers)
    runtime: Runtime = app.state.runtime
    store: MediaStore | None = runtime.private_store
    assert store is not None
    settings = runtime.settings.kyc
    soon = kyc.utcnow() + timedelta(days=settings.document_retention_days - 1)
    later = kyc.utcnow() + timedelta(days=settings.document_retention_days, seconds=1)
    async with runtime.db.session() as session, session.begin():
        assert await kyc.delete_expired_documents(session, store, settings, now=soon) == 0
    async with runtime.db.session() as session, session.begin():
        assert await kyc.delete_expired_documents(session, store, settings, now=later) == 1
    keys = await store.list_keys("kyc/")
    assert keys  # the pending one's stay
    assert not any(made["id"] in key for key in keys)
    gone = await client.get(
        f"/api/v1/admin/kyc/documents/{made['documents'][0]['id']}", headers=admin.headers
    )
    assert (gone.status_code, gone.json()["code"]) == (404, "KYC_DOCUMENTS_DELETED")
    status = await client.get(f"/api/v1/kyc/{made['id']}/status", headers=performer.headers)
    assert (status.json()["status"], status.json()["documents_deleted"]) == ("approved", True)


async def test_going_live_needs_a_verified_owner_when_the_settings_say(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    """The one claim every publish goes through (RTMP, browser) asks KYC first."""
    settings = make_settings(tmp_path, database_url, kyc=KycSettings(required_for=["going_live"]))
    application = create_app(settings, database=database)
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as client,
    ):
        creator = await register(client)
        await make_channel(client, creator)
        runtime: Runtime = application.state.runtime
        assert runtime.media is not None

        async def disconnect(reason: str) -> None:
            return None

        with pytest.raises(kyc.KycRequired):
            await runtime.media.claim(
                kind="browser", disconnect=disconnect, owner_id=uuid.UUID(creator.id)
            )
        assert not runtime.media.broadcasts
        await verify_identity(application, creator)
        broadcast = await runtime.media.claim(
            kind="browser", disconnect=disconnect, owner_id=uuid.UUID(creator.id)
        )
        await runtime.media.release(broadcast, clean=True)


async def test_reading_a_document_or_a_review_is_audited(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    performer, admin = await register(client), await make_admin(client, app)
    made = (await submit(client, performer)).json()
    document_id = made["documents"][0]["id"]
    assert (
        await client.get(f"/api/v1/admin/kyc/documents/{document_id}", headers=admin.headers)
    ).status_code == 200
    assert (
        await client.get(f"/api/v1/admin/kyc/{made['id']}", headers=admin.headers)
    ).status_code == 200
    refused = await client.get(
        f"/api/v1/admin/kyc/documents/{document_id}", headers=performer.headers
    )
    assert refused.status_code == 403
    await flush(app)
    reads = await client.get(
        "/api/v1/admin/audit", params={"resource": "kyc"}, headers=admin.headers
    )
    rows = {(r["action"], r["actor_id"]) for r in reads.json()["data"]}
    assert ("kyc_document_read", admin.id) in rows
    assert ("kyc_review_read", admin.id) in rows
    assert not any(
        r["action"] == "kyc_document_read" and r["actor_id"] == performer.id
        for r in reads.json()["data"]
    )
