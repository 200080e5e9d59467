"""Factories: make users and sign them in over the API, as a client would."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from stagecast.accounts.models import Role, User
from stagecast.runtime import Runtime

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
