"""Money's lists answer objects (seed 000: no list is a bare array) and filter for real."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.factories import make_admin, make_channel, register
from tests.money.test_earnings import earner
from tests.money.test_wallet import buy


async def test_money_lists_are_pages_not_arrays(client: httpx.AsyncClient, app: FastAPI) -> None:
    creator, channel = await earner(client, app, 10000)
    admin = await make_admin(client, app)
    fan = await register(client)
    await buy(client, fan, 1000)
    subscribed = await client.post(
        "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
    )
    assert subscribed.status_code == 201, subscribed.text
    for _ in range(2):
        asked = await client.post(
            "/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers
        )
        assert asked.status_code == 201, asked.text
    lists = {
        "/api/v1/subscriptions/me": (fan, 1),
        "/api/v1/payouts": (creator, 2),
        "/api/v1/payouts/requests": (creator, 2),
        "/api/v1/gifts": (None, 6),
        "/api/v1/admin/payouts": (admin, 2),
        f"/api/v1/channels/{channel['slug']}/subscription-tiers": (None, 3),
    }
    for path, (who, count) in lists.items():
        headers = who.headers if who else {}
        page = (await client.get(path, headers=headers)).json()
        assert isinstance(page, dict), path
        assert (len(page["data"]), page["has_more"], page["next_cursor"]) == (count, False, None)
        seed = (await client.get(f"{path}?page=1&limit=1", headers=headers)).json()
        assert (seed["total"], seed["page"], seed["limit"]) == (count, 1, 1), path
        assert seed["hasMore"] is (count > 1)
        assert seed["data"] == page["data"][:1], path
    gifts = (await client.get("/api/v1/gifts")).json()["data"]
    assert [g["slug"] for g in gifts][:2] == ["heart", "rose"]


async def test_my_subscriptions_filter_by_channel(client: httpx.AsyncClient, app: FastAPI) -> None:
    fan = await register(client)
    await buy(client, fan, 1000)
    channels = [await make_channel(client, await register(client)) for _ in range(2)]
    for channel in channels:
        made = await client.post(
            "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
        )
        assert made.status_code == 201, made.text
    mine = await client.get(
        "/api/v1/subscriptions/me", params={"channel_id": channels[0]["id"]}, headers=fan.headers
    )
    assert [s["channel_id"] for s in mine.json()["data"]] == [channels[0]["id"]]
    everything = (await client.get("/api/v1/subscriptions/me", headers=fan.headers)).json()
    assert [s["channel_id"] for s in everything["data"]] == [c["id"] for c in reversed(channels)]
    none = await client.get(
        "/api/v1/subscriptions/me", params={"channel_id": str(uuid.uuid4())}, headers=fan.headers
    )
    assert none.json()["data"] == []
    bad = await client.get("/api/v1/subscriptions/me?channel_id=chan1", headers=fan.headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR")
    assert (await client.get("/api/v1/subscriptions/me")).status_code == 401


async def test_admin_payouts_filter_by_status(client: httpx.AsyncClient, app: FastAPI) -> None:
    creator, _ = await earner(client, app, 10000)
    admin = await make_admin(client, app)
    ids = []
    for _ in range(2):
        asked = await client.post(
            "/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers
        )
        ids.append(asked.json()["id"])
    paid = await client.post(f"/api/v1/admin/payouts/{ids[0]}/approve", headers=admin.headers)
    assert paid.json()["status"] == "paid", paid.text

    async def listed(query: str) -> list[str]:
        answer = await client.get(f"/api/v1/admin/payouts{query}", headers=admin.headers)
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()["data"]]

    assert await listed("?status=requested") == [ids[1]]
    assert await listed("?status=paid") == [ids[0]]
    assert await listed("?status=failed") == []
    assert await listed("") == list(reversed(ids))
    unknown = await client.get("/api/v1/admin/payouts?status=lost", headers=admin.headers)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "VALIDATION_ERROR")
    assert unknown.json()["errors"][0]["field"] == "status"
    refused = await client.get("/api/v1/admin/payouts", headers=creator.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "PERMISSION_DENIED")
