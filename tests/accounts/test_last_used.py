""" "Last used" of sessions and API keys: noted by requests, written in batches."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
from fastapi import FastAPI

from stagecast.accounts.models import ApiKey, AuthSession
from stagecast.runtime import Runtime
from tests.factories import register


async def _last_used(
    app: FastAPI, model: type[AuthSession] | type[ApiKey], row_id: str
) -> datetime:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        row = await session.get_one(model, uuid.UUID(row_id), populate_existing=True)
        assert row.last_used_at is not None
        return row.last_used_at


async def test_requests_note_use_and_the_flush_writes_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    account = await register(client)
    created = await client.post(
        "/api/v1/developer/api-keys",
        headers=account.headers,
        json={"name": "ci", "scopes": ["read"]},
    )
    assert created.status_code == 201, created.text
    key = created.json()
    await runtime.touches.flush(runtime.db)
    session_before = await _last_used(app, AuthSession, account.session_id)

    assert (await client.get("/api/v1/auth/me", headers=account.headers)).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]})).is_success
    # Not written by the requests themselves: a read stays a read.
    assert await _last_used(app, AuthSession, account.session_id) == session_before
    assert uuid.UUID(account.session_id) in runtime.touches.sessions
    assert uuid.UUID(key["id"]) in runtime.touches.api_keys

    assert await runtime.touches.flush(runtime.db) == 2
    assert await _last_used(app, AuthSession, account.session_id) > session_before
    assert await _last_used(app, ApiKey, key["id"]) is not None
    assert not runtime.touches.sessions
    assert await runtime.touches.flush(runtime.db) == 0  # nothing new: nothing written
