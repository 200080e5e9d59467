"""Seed 000's clients call `/api/<route>` with its query strings: the same routes answer."""

from __future__ import annotations

import httpx

from tests.factories import PASSWORD, unique_name


async def test_seed_000_paths_reach_the_versioned_routes(client: httpx.AsyncClient) -> None:
    name = unique_name("seed")
    registered = await client.post(
        "/api/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["access_token"]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == name
    browse = await client.get("/api/browse", params={"page": 1, "limit": 20})
    assert browse.status_code == 200, browse.text
    assert {"data", "total", "page", "limit", "hasMore"} <= set(browse.json())
    missing = await client.get("/api/no-such-route")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    # The versioned paths are untouched.
    assert (await client.get("/api/v1/browse")).status_code == 200
