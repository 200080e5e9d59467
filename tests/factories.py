"""Factories: make users and sign them in over the API, as a client would."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from stagecast.accounts.models import Role, User
from stagecast.channels import service as channels
from stagecast.db.base import utcnow
from stagecast.kyc import service as kyc
from stagecast.kyc.models import KycStatus, KycVerification
from stagecast.runtime import Runtime
from stagecast.streams import service as streams

PASSWORD = "Correct-Horse-7"
_counter = itertools.count(1)


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}{next(_counter)}"


async def register(client: httpx.AsyncClient, **overrides: Any) -> Account:
    """Register a new account through the API and return its credentials."""
    username = overrides.pop("username", None) or unique_name()
    body = {
        "username": username,
        "email": overrides.pop("email", None) or f"{username}@example.com",
        "password": overrides.pop("password", PASSWORD),
        **overrides,
    }
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    return Account(
        id=data["user"]["id"],
        username=username,
        email=data["user"]["email"],
        password=body["password"],
        access_token=data["access_token"],
        refresh_token=data["refresh_token"],
        session_id=data["session_id"],
    )


async def set_role(app: FastAPI, account: Account, role: Role) -> None:
    """Give an account a role directly in the database (what an admin would do)."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        user = await session.get_one(User, uuid.UUID(account.id))
        user.role = role.value


async def make_admin(client: httpx.AsyncClient, app: FastAPI) -> Account:
    account = await register(client, username=unique_name("admin"))
    await set_role(app, account, Role.ADMIN)
    return account


async def login(client: httpx.AsyncClient, account: Account, **headers: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": account.email, "password": account.password},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def make_channel(
    client: httpx.AsyncClient, account: Account, **fields: Any
) -> dict[str, Any]:
    """Create the account's channel through the API."""
    body = {"slug": fields.pop("slug", None) or unique_name("chan"), **fields}
    response = await client.post("/api/v1/channels", headers=account.headers, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def make_stream(client: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": fields.pop("title", None) or unique_name("Stream "), **fields}
    response = await client.post("/api/v1/streams", headers=account.headers, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def go_live(app: FastAPI, channel_ref: str, *, viewers: int = 0) -> str:
    """Put a channel on air the way the media pipeline will; returns the live stream's id."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        channel = await channels.get_channel(session, channel_ref)
        stream, _ = await streams.mark_stream_live(session, channel=channel)
        if viewers:
            await streams.record_viewer_count(session, stream=stream, count=viewers)
        return str(stream.id)


async def end_live(app: FastAPI, stream_id: str) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stream = await streams.get_stream(session, uuid.UUID(stream_id))
        await streams.mark_stream_ended(session, stream=stream)


async def verify_identity(app: FastAPI, account: Account, *, born: str = "1990-01-01") -> None:
    """Leave the account with an approved KYC verification, as an admin's approval would
    (tests/kyc/ go through the submission and review themselves)."""
    runtime: Runtime = app.state.runtime
    box = runtime.secrets
    async with runtime.db.session() as session, session.begin():
        session.add(
            KycVerification(
                user_id=uuid.UUID(account.id),
                status=KycStatus.APPROVED.value,
                legal_name_encrypted=box.encrypt(kyc.PII_PURPOSE, account.username),
                date_of_birth_encrypted=box.encrypt(kyc.PII_PURPOSE, born),
                decided_at=utcnow(),
            )
        )
