"""The principal cache: nothing that would make a remembered caller wrong survives to the next
request (accounts/principals.py). What it saves: tests/db/test_statement_counts.py; across
nodes: tests/realtime/test_two_nodes.py."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from stagecast.accounts.models import Role, User
from stagecast.accounts.principals import PrincipalCache
from stagecast.db.base import utcnow
from stagecast.runtime import Runtime
from tests.factories import Account, login, make_admin, register, set_role

ME = "/api/v1/auth/me"


def _cache(app: FastAPI) -> PrincipalCache:
    runtime: Runtime = app.state.runtime
    return runtime.principals


async def _me_from_cache(client: httpx.AsyncClient, app: FastAPI, headers: dict[str, str]) -> None:
    """Ask twice: the second answer must come from the cache (or the test proves nothing)."""
    assert (await client.get(ME, headers=headers)).status_code == 200
    hits = _cache(app).hits
    assert (await client.get(ME, headers=headers)).status_code == 200
    assert _cache(app).hits == hits + 1


async def test_logout_refuses_the_very_next_request(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    await _me_from_cache(client, app, account.headers)
    assert (await client.post("/api/v1/auth/logout", headers=account.headers)).status_code == 204
    refused = await client.get(ME, headers=account.headers)
    assert refused.status_code == 401
    assert refused.json()["code"] == "SESSION_REVOKED"


async def _two_remembered_sessions(
    client: httpx.AsyncClient, app: FastAPI
) -> tuple[Account, dict[str, str]]:
    """An account signed in twice, both sessions remembered: the account, the other's headers."""
    account = await register(client)
    other = await login(client, account)
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    for headers in (account.headers, other_headers):
        await _me_from_cache(client, app, headers)
    return account, other_headers


async def test_logout_all_refuses_every_remembered_session(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account, other_headers = await _two_remembered_sessions(client, app)
    answer = await client.post("/api/v1/sessions/logout-all", headers=account.headers)
    assert answer.json() == {"revoked": 2}
    for headers in (account.headers, other_headers):
        assert (await client.get(ME, headers=headers)).status_code == 401


async def test_a_password_change_keeps_this_session_and_ends_the_others(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account, other_headers = await _two_remembered_sessions(client, app)
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": account.password, "new_password": "Battery-Staple-9"},
        headers=account.headers,
    )
    assert changed.json() == {"revoked": 1}
    assert (await client.get(ME, headers=other_headers)).status_code == 401
    assert (await client.get(ME, headers=account.headers)).status_code == 200


async def test_refresh_token_reuse_refuses_the_remembered_access_token(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    await _me_from_cache(client, app, account.headers)
    body = {"refresh_token": account.refresh_token}
    assert (await client.post("/api/v1/auth/refresh", json=body)).status_code == 200
    reused = await client.post("/api/v1/auth/refresh", json=body)
    assert reused.json()["code"] == "REFRESH_TOKEN_REUSED"
    assert (await client.get(ME, headers=account.headers)).status_code == 401


async def _changed_by_an_admin(
    client: httpx.AsyncClient, app: FastAPI, change: dict[str, str]
) -> tuple[Account, httpx.Response]:
    """A remembered caller, changed by an admin: what the caller's very next request gets."""
    admin = await make_admin(client, app)
    account = await register(client)
    await _me_from_cache(client, app, account.headers)
    changed = await client.patch(
        f"/api/v1/admin/users/{account.id}", json=change, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    return account, await client.get(ME, headers=account.headers)


async def test_a_role_change_shows_on_the_very_next_request(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account, after = await _changed_by_an_admin(client, app, {"role": "moderator"})
    assert after.json()["role"] == "moderator"
    # A change made by any code through the ORM is seen too (the flush hook).
    await set_role(app, account, Role.VIEWER)
    assert (await client.get(ME, headers=account.headers)).json()["role"] == "viewer"


async def test_a_suspension_refuses_the_very_next_request(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, after = await _changed_by_an_admin(client, app, {"status": "suspended"})
    assert after.status_code == 401


async def test_a_profile_change_shows_on_the_very_next_request(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    await _me_from_cache(client, app, account.headers)
    edited = await client.patch(
        "/api/v1/users/me", json={"display_name": "Cached Once"}, headers=account.headers
    )
    assert edited.status_code == 200, edited.text
    assert (await client.get(ME, headers=account.headers)).json()["display_name"] == "Cached Once"


class _Refused(Exception):
    pass


async def test_a_change_rolled_back_leaves_the_remembered_user_as_it_was(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    await _me_from_cache(client, app, account.headers)
    runtime: Runtime = app.state.runtime
    cache = _cache(app)

    async def change_then_refuse() -> None:
        async with runtime.db.session() as session, session.begin():
            user = cache.lookup(
                session.sync_session,
                user_id=uuid.UUID(account.id),
                session_id=uuid.UUID(account.session_id),
            )
            assert user is not None
            user.display_name = "Never Committed"
            await session.flush()
            raise _Refused

    with pytest.raises(_Refused):
        await change_then_refuse()
    hits = cache.hits
    me = await client.get(ME, headers=account.headers)
    assert cache.hits == hits + 1
    assert me.json()["display_name"] != "Never Committed"


# --- the cache itself -------------------------------------------------------------------------


def _user() -> User:
    return User(id=uuid.uuid4(), username="cached", role="viewer", status="active")


def test_an_entry_never_outlives_the_token_or_the_session() -> None:
    cache = PrincipalCache(ttl_seconds=60)
    user, session_id = _user(), uuid.uuid4()
    cache.remember(
        user,
        session_id=session_id,
        session_expires_at=utcnow() + timedelta(days=1),
        token_expires_at=utcnow() - timedelta(seconds=1),
        read_at_epoch=cache.epoch,
    )
    assert len(cache) == 0
    cache.remember(
        user,
        session_id=session_id,
        session_expires_at=utcnow() - timedelta(seconds=1),
        token_expires_at=utcnow() + timedelta(minutes=5),
        read_at_epoch=cache.epoch,
    )
    assert len(cache) == 0


def test_a_read_that_began_before_a_forget_is_not_remembered() -> None:
    cache = PrincipalCache(ttl_seconds=60)
    user, session_id = _user(), uuid.uuid4()
    read_at = cache.epoch
    # Meanwhile a change commits (here, or on another node) and is followed...
    cache.follow({"user_id": str(user.id)})
    # ...so what the earlier read saw may predate it.
    cache.remember(
        user,
        session_id=session_id,
        session_expires_at=utcnow() + timedelta(days=1),
        token_expires_at=utcnow() + timedelta(minutes=5),
        read_at_epoch=read_at,
    )
    assert len(cache) == 0


def test_forgetting_one_session_a_user_or_everything() -> None:
    cache = PrincipalCache(ttl_seconds=60, max_entries=3)
    alice, bob = _user(), _user()
    sessions = [uuid.uuid4() for _ in range(4)]
    for user, session_id in zip((alice, alice, bob, bob), sessions, strict=True):
        cache.remember(
            user,
            session_id=session_id,
            session_expires_at=utcnow() + timedelta(days=1),
            token_expires_at=utcnow() + timedelta(minutes=5),
            read_at_epoch=cache.epoch,
        )
    assert len(cache) == 3  # bounded: the oldest made room
    cache.follow({"user_id": str(bob.id), "session_id": str(sessions[2])})
    assert len(cache) == 2
    cache.follow({"user_id": str(alice.id), "keep_session_id": str(sessions[1])})
    assert len(cache) == 2  # alice's first was already gone; her kept one stays
    cache.follow({"user_id": "not a uuid"})  # unreadable: forget everything
    assert len(cache) == 0
