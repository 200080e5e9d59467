"""A socket lives only as long as its session: sign-outs, revocations, a password change, a
suspension and an erasure disconnect the user's open sockets, and only theirs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import socketio

from tests.factories import Account, login, make_admin, make_channel
from tests.realtime.conftest import Listener, LiveServer


async def _chatting(live: LiveServer, account: Account, token: str | None = None) -> Listener:
    """A signed-in socket in a channel's room, its first message sent."""
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    socket = await live.connect(account, **({"token": token} if token else {}))
    gone = asyncio.Event()
    socket.client.on("disconnect", lambda *_: gone.set())
    socket.gone = gone  # type: ignore[attr-defined]
    joined = await socket.call("stream:join", {"channelId": channel["id"]})
    assert joined["ok"], joined
    sent = await socket.call("chat:send", {"channelId": channel["id"], "message": "hello"})
    assert sent["ok"], sent
    socket.channel_id = channel["id"]  # type: ignore[attr-defined]
    return socket


async def _disconnected(socket: Listener, within: float = 5) -> None:
    await asyncio.wait_for(socket.gone.wait(), within)  # type: ignore[attr-defined]


Revoke = Callable[[LiveServer, Account], Awaitable[Any]]


async def _logout_all(live: LiveServer, account: Account) -> Any:
    return await live.http.post("/api/v1/sessions/logout-all", headers=account.headers)


async def _logout(live: LiveServer, account: Account) -> Any:
    return await live.http.post("/api/v1/auth/logout", headers=account.headers)


async def _refresh_reused(live: LiveServer, account: Account) -> Any:
    first = await live.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert first.status_code == 200, first.text
    live.http.cookies.clear()
    return await live.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )


async def _suspended(live: LiveServer, account: Account) -> Any:
    admin = await make_admin(live.http, live.app)
    return await live.http.patch(
        f"/api/v1/admin/users/{account.id}", json={"status": "suspended"}, headers=admin.headers
    )


async def _erased(live: LiveServer, account: Account) -> Any:
    return await live.http.request(
        "DELETE", "/api/v1/users/me", json={"password": account.password}, headers=account.headers
    )


async def _erased_by_admin(live: LiveServer, account: Account) -> Any:
    admin = await make_admin(live.http, live.app)
    return await live.http.delete(f"/api/v1/admin/users/{account.id}", headers=admin.headers)


@pytest.mark.parametrize(
    "revoke",
    [_logout_all, _logout, _refresh_reused, _suspended, _erased, _erased_by_admin],
    ids=lambda f: f.__name__,
)
async def test_a_revoked_session_loses_its_open_sockets(live: LiveServer, revoke: Revoke) -> None:
    account = await live.account()
    socket = await _chatting(live, account)
    bystander = await _chatting(live, await live.account())

    answer = await revoke(live, account)
    assert answer.status_code < 500, answer.text
    await _disconnected(socket)
    notices = socket.received("auth:revoked")
    assert len(notices) == 1
    assert notices[0]["payload"]["reason"]
    # Someone else's socket is untouched.
    assert bystander.client.connected
    still = await bystander.call(
        "chat:send",
        {"channelId": bystander.channel_id, "message": "still here"},  # type: ignore[attr-defined]
    )
    assert still["ok"], still


async def test_a_password_change_keeps_only_the_current_sessions_sockets(
    live: LiveServer,
) -> None:
    account = await live.account()
    other_device = await login(live.http, account)
    here = await _chatting(live, account)
    there = await _chatting(live, account, token=other_device["access_token"])
    changed = await live.http.post(
        "/api/v1/auth/password",
        json={"current_password": account.password, "new_password": "Another-Horse-8"},
        headers=account.headers,
    )
    assert changed.status_code == 200, changed.text
    await _disconnected(there)
    await asyncio.sleep(0.5)
    assert here.client.connected
    sent = await here.call(
        "chat:send",
        {"channelId": here.channel_id, "message": "mine"},  # type: ignore[attr-defined]
    )
    assert sent["ok"], sent


async def test_a_signed_out_user_reconnecting_with_the_old_token_is_refused(
    live: LiveServer,
) -> None:
    account = await live.account()
    socket = await _chatting(live, account)
    await _logout_all(live, account)
    await _disconnected(socket)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await live.connect(account)
