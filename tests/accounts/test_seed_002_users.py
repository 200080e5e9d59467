"""Seed 002's user fields and values: `profile_image_url` beside `avatar_url`, and the
`performer` role, which is our `creator`."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import make_admin, register

USERS = "/api/v1/users"
ADMIN_USERS = "/api/v1/admin/users"
IMAGE = "https://cdn.example/avatars/johndoe.png"


async def test_profile_image_url_is_the_avatar(client: httpx.AsyncClient) -> None:
    account = await register(client)
    patched = await client.patch(
        f"{USERS}/me", headers=account.headers, json={"profile_image_url": IMAGE}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["avatar_url"] == IMAGE
    assert patched.json()["profile_image_url"] == IMAGE
    public = (await client.get(f"{USERS}/{account.username}")).json()
    assert (public["avatar_url"], public["profile_image_url"]) == (IMAGE, IMAGE)
    # Our name works as before and shows under both.
    ours = await client.patch(
        f"{USERS}/me", headers=account.headers, json={"avatar_url": f"{IMAGE}?v=2"}
    )
    assert ours.json()["profile_image_url"] == f"{IMAGE}?v=2"
    cleared = await client.patch(
        f"{USERS}/me", headers=account.headers, json={"profile_image_url": None}
    )
    assert (cleared.json()["avatar_url"], cleared.json()["profile_image_url"]) == (None, None)


@pytest.mark.parametrize(
    "body",
    [
        {"profile_image_url": "http://cdn.example/a.png"},  # https only, as avatar_url
        {"profile_image_url": 42},
        {"profile_image_url": IMAGE, "avatar_url": "https://other.example/b.png"},
    ],
)
async def test_a_bad_profile_image_url_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    account = await register(client)
    await client.patch(f"{USERS}/me", headers=account.headers, json={"avatar_url": IMAGE})
    refused = await client.patch(f"{USERS}/me", headers=account.headers, json=body)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"{USERS}/me", headers=account.headers)).json()["avatar_url"] == IMAGE


async def test_performer_is_the_creator_role(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(client, app)
    performer, viewer = await register(client), await register(client)
    promoted = await client.patch(
        f"{ADMIN_USERS}/{performer.id}", headers=admin.headers, json={"role": "performer"}
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "creator"  # answered in our name

    for role in ("performer", "creator", "Performer"):
        listed = await client.get(f"{ADMIN_USERS}?role={role}&limit=100", headers=admin.headers)
        assert listed.status_code == 200, listed.text
        ids = {u["id"] for u in listed.json()["data"]}
        assert performer.id in ids
        assert viewer.id not in ids
        assert {u["role"] for u in listed.json()["data"]} == {"creator"}

    refused = await client.get(f"{ADMIN_USERS}?role=performers", headers=admin.headers)
    assert refused.status_code == 422
    bad = await client.patch(
        f"{ADMIN_USERS}/{viewer.id}", headers=admin.headers, json={"role": "star"}
    )
    assert bad.status_code == 422
    assert (await client.get(f"{USERS}/{viewer.id}")).json()["role"] == "viewer"


async def test_the_openapi_document_names_the_alias(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    parameters = document["paths"][ADMIN_USERS]["get"]["parameters"]
    role = next(p for p in parameters if p["name"] == "role")
    assert "performer" in str(role["schema"])
    user = document["components"]["schemas"]["UserPublic"]
    assert "profile_image_url" in user["properties"]
