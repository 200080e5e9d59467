"""Sessions (devices) and API keys: listing, ending, scopes, revocation."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories import login, make_admin, register


async def test_sessions_record_client_and_mark_the_current_one(client: httpx.AsyncClient) -> None:
    account = await register(client)
    second = await login(client, account, **{"User-Agent": "OBS/30.1 (Linux)"})
    response = await client.get(
        "/api/v1/sessions", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert response.status_code == 200
    page = response.json()
    assert page["has_more"] is False
    assert page["next_cursor"] is None
    sessions = {s["id"]: s for s in page["data"]}
    assert set(sessions) == {account.session_id, second["session_id"]}
    current = sessions[second["session_id"]]
    assert current["current"] is True
    assert current["user_agent"] == "OBS/30.1 (Linux)"
    assert current["ip"] == "127.0.0.1"
    assert sessions[account.session_id]["current"] is False
    # Newest first: ids are time-ordered.
    assert page["data"][0]["id"] == second["session_id"]


async def test_sessions_paginate_with_a_cursor(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for _ in range(3):
        await login(client, account)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/sessions", headers=account.headers, params=params)).json()
        seen.extend(s["id"] for s in page["data"])
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 4
    bad = await client.get(
        "/api/v1/sessions", headers=account.headers, params={"cursor": "!!notacursor"}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"
    too_many = await client.get("/api/v1/sessions", headers=account.headers, params={"limit": 500})
    assert too_many.status_code == 422


async def test_logout_one_session_by_id(client: httpx.AsyncClient) -> None:
    account = await register(client)
    other = await login(client, account)
    response = await client.post(
        "/api/v1/sessions/logout", headers=account.headers, json={"session_id": other["session_id"]}
    )
    assert response.status_code == 204
    gone = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert gone.status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=account.headers)).status_code == 200
    # Without a body the current session ends.
    assert (
        await client.post("/api/v1/sessions/logout", headers=account.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=account.headers)).status_code == 401


async def test_cannot_end_someone_elses_session(client: httpx.AsyncClient) -> None:
    alice = await register(client)
    bob = await register(client)
    response = await client.post(
        "/api/v1/sessions/logout", headers=alice.headers, json={"session_id": bob.session_id}
    )
    assert response.status_code == 404
    assert (await client.get("/api/v1/auth/me", headers=bob.headers)).status_code == 200


async def test_logout_all_ends_every_session(client: httpx.AsyncClient) -> None:
    account = await register(client)
    others = [await login(client, account) for _ in range(2)]
    response = await client.post("/api/v1/sessions/logout-all", headers=account.headers)
    assert response.status_code == 200
    assert response.json() == {"revoked": 3}
    for token in [account.access_token, *(o["access_token"] for o in others)]:
        me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
    for refresh in [account.refresh_token, *(o["refresh_token"] for o in others)]:
        assert (
            await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        ).status_code == 401


async def test_changing_the_password_signs_every_other_session_out(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    other = await login(client, account)
    new_password = "Another-Horse-8"
    wrong = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it", "new_password": new_password},
        headers=account.headers,
    )
    assert wrong.status_code == 401, wrong.text
    weak = await client.post(
        "/api/v1/auth/password",
        json={"current_password": account.password, "new_password": "short"},
        headers=account.headers,
    )
    assert weak.status_code == 422, weak.text
    assert weak.json()["code"] == "VALIDATION_ERROR"
    for body in ({"current_password": None, "new_password": new_password}, {}):
        refused = await client.post("/api/v1/auth/password", json=body, headers=account.headers)
        assert refused.status_code == 422
    # Nothing changed yet: both sessions work, the old password too.
    assert (await login(client, account))["access_token"]

    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": account.password, "new_password": new_password},
        headers=account.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"revoked": 2}  # the other device and the check login above
    assert (await client.get("/api/v1/auth/me", headers=account.headers)).status_code == 200
    stale = {"Authorization": f"Bearer {other['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=stale)).status_code == 401
    old_login = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert old_login.status_code == 401
    new_login = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": new_password}
    )
    assert new_login.status_code == 200


async def test_sessions_refresh_alias(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await client.post(
        "/api/v1/sessions/refresh", json={"refresh_token": account.refresh_token}
    )
    assert response.status_code == 200
    assert response.json()["session_id"] == account.session_id


async def test_api_key_lifecycle(client: httpx.AsyncClient) -> None:
    account = await register(client)
    created = await client.post(
        "/api/v1/developer/api-keys",
        headers=account.headers,
        json={"name": "chat bot", "scopes": ["write", "read", "read"], "expires_in_days": 30},
    )
    assert created.status_code == 201
    key = created.json()
    raw = key["key"]
    assert raw.startswith("sc_")
    assert key["prefix"] == raw[:11]
    assert key["scopes"] == ["read", "write"]
    assert key["expires_at"] is not None

    listed = await client.get("/api/v1/developer/api-keys", headers=account.headers)
    assert listed.status_code == 200
    [entry] = listed.json()["data"]
    assert entry["id"] == key["id"]
    assert "key" not in entry  # the raw key is shown once only
    assert raw not in listed.text

    me = await client.get("/api/v1/auth/me", headers={"X-API-Key": raw})
    assert me.status_code == 200
    assert me.json()["id"] == account.id
    patched = await client.patch(
        f"/api/v1/users/{account.id}", headers={"X-API-Key": raw}, json={"bio": "by key"}
    )
    assert patched.status_code == 200

    revoked = await client.delete(
        f"/api/v1/developer/api-keys/{key['id']}", headers=account.headers
    )
    assert revoked.status_code == 204
    after = await client.get("/api/v1/auth/me", headers={"X-API-Key": raw})
    assert after.status_code == 401
    assert after.json()["code"] == "INVALID_API_KEY"
    again = await client.delete(f"/api/v1/developer/api-keys/{key['id']}", headers=account.headers)
    assert again.status_code == 404


async def test_read_only_key_cannot_write(client: httpx.AsyncClient) -> None:
    account = await register(client)
    raw = (
        await client.post(
            "/api/v1/developer/api-keys", headers=account.headers, json={"name": "reader"}
        )
    ).json()["key"]
    assert (await client.get("/api/v1/auth/me", headers={"X-API-Key": raw})).status_code == 200
    response = await client.patch(
        f"/api/v1/users/{account.id}", headers={"X-API-Key": raw}, json={"bio": "nope"}
    )
    assert response.status_code == 403
    assert "write" in response.json()["detail"]
    profile = await client.get(f"/api/v1/users/{account.id}", headers=account.headers)
    assert profile.json()["bio"] is None


async def test_api_keys_cannot_manage_keys_or_sessions(client: httpx.AsyncClient) -> None:
    account = await register(client)
    raw = (
        await client.post(
            "/api/v1/developer/api-keys",
            headers=account.headers,
            json={"name": "all", "scopes": ["read", "write"]},
        )
    ).json()["key"]
    key_headers = {"X-API-Key": raw}
    for method, path in [
        ("POST", "/api/v1/developer/api-keys"),
        ("GET", "/api/v1/developer/api-keys"),
        ("GET", "/api/v1/sessions"),
        ("POST", "/api/v1/sessions/logout-all"),
    ]:
        response = await client.request(method, path, headers=key_headers, json={"name": "x"})
        assert response.status_code == 403, path
        assert response.json()["code"] == "PERMISSION_DENIED"


async def test_unknown_key_and_key_with_token_are_refused(client: httpx.AsyncClient) -> None:
    account = await register(client)
    unknown = await client.get("/api/v1/auth/me", headers={"X-API-Key": "sc_" + "x" * 43})
    assert unknown.status_code == 401
    both = await client.get(
        "/api/v1/auth/me", headers={**account.headers, "X-API-Key": "sc_whatever"}
    )
    assert both.status_code == 401


async def test_cannot_revoke_someone_elses_key(client: httpx.AsyncClient) -> None:
    alice = await register(client)
    bob = await register(client)
    key = (
        await client.post("/api/v1/developer/api-keys", headers=alice.headers, json={"name": "a"})
    ).json()
    response = await client.delete(f"/api/v1/developer/api-keys/{key['id']}", headers=bob.headers)
    assert response.status_code == 404
    assert (
        await client.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]})
    ).status_code == 200


async def test_api_key_validation(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for body in [
        {"name": ""},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["admin"]},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "owner": "someone"},
    ]:
        response = await client.post(
            "/api/v1/developer/api-keys", headers=account.headers, json=body
        )
        assert response.status_code == 422, body
    listed = await client.get("/api/v1/developer/api-keys", headers=account.headers)
    assert listed.json()["data"] == []


async def test_require_role_guards_admin_routes(client: httpx.AsyncClient, app: FastAPI) -> None:
    viewer = await register(client)
    admin = await make_admin(client, app)
    assert (await client.get("/api/v1/admin/users", headers=viewer.headers)).status_code == 403
    assert (await client.get("/api/v1/admin/users")).status_code == 401
    assert (await client.get("/api/v1/admin/users", headers=admin.headers)).status_code == 200
