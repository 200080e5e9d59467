"""Wallet, purchases, tips, donations and gifts through the API, bad input included."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stagecast.runtime import Runtime
from tests.factories import Account, end_live, go_live, make_channel, register
from tests.money.books import check_books


async def buy(client: httpx.AsyncClient, account: Account, tokens: int) -> dict[str, Any]:
    """Buy a package through the sandbox: a checkout, then its signed webhook."""
    started = await client.post(
        "/api/v1/wallet/buy", json={"tokens": tokens}, headers=account.headers
    )
    assert started.status_code == 201, started.text
    purchase = started.json()
    assert purchase["status"] == "pending"
    assert purchase["checkout_url"]
    paid = await client.post(
        f"/api/v1/wallet/sandbox/checkout/{purchase['purchase_id']}", headers=account.headers
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "completed"
    return purchase


async def balance(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    answer = await client.get("/api/v1/wallet/balance", headers=account.headers)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


async def live_room(client: httpx.AsyncClient, app: FastAPI) -> tuple[Account, dict[str, Any], str]:
    creator = await register(client)
    channel = await make_channel(client, creator)
    return creator, channel, await go_live(app, channel["slug"])


async def assert_ledger_balanced(app: FastAPI) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        await check_books(session)


async def test_buy_then_tip_a_live_stream(client: httpx.AsyncClient, app: FastAPI) -> None:
    creator, channel, stream_id = await live_room(client, app)
    viewer = await register(client)
    await buy(client, viewer, 1000)
    assert (await balance(client, viewer))["token_balance"] == 1000

    tip = await client.post(
        f"/api/v1/streams/{stream_id}/tips",
        json={"tokens": 100, "message": "great show"},
        headers=viewer.headers,
    )
    assert tip.status_code == 201, tip.text
    assert tip.json()["fee_tokens"] == 20  # 20 % by default

    assert (await balance(client, viewer))["token_balance"] == 900
    assert (await balance(client, creator))["earnings_balance"] == 80
    history = (await client.get("/api/v1/wallet/transactions", headers=viewer.headers)).json()
    assert [
        (t["transaction_type"], t["amount_tokens"], t["balance_after"]) for t in history["data"]
    ] == [
        ("tip_sent", -100, 900),
        ("purchase", 1000, 1000),
    ]
    earned = (await client.get("/api/v1/wallet/transactions", headers=creator.headers)).json()
    assert earned["data"][0]["transaction_type"] == "tip_received"
    assert earned["data"][0]["fee_tokens"] == 20
    tips = (await client.get(f"/api/v1/streams/{stream_id}/tips")).json()["data"]
    assert [(t["tokens"], t["message"], t["from_username"]) for t in tips] == [
        (100, "great show", viewer.username)
    ]
    stream = (await client.get(f"/api/v1/streams/{stream_id}")).json()
    assert stream["total_tokens_received"] == 100
    revenue = await client.get(f"/api/v1/channels/{channel['id']}/revenue", headers=creator.headers)
    assert revenue.json()["by_source"] == {"tip": 80}
    await assert_ledger_balanced(app)


@pytest.mark.parametrize(
    ("tokens", "status", "code"),
    [
        (0, 422, "VALIDATION_ERROR"),
        (-5, 422, "VALIDATION_ERROR"),
        (1.5, 422, "VALIDATION_ERROR"),
        ("10", 422, "VALIDATION_ERROR"),
        (True, 422, "VALIDATION_ERROR"),
        (10**12, 422, "VALIDATION_ERROR"),
        (501, 402, "INSUFFICIENT_BALANCE"),
    ],
)
async def test_bad_amounts_move_nothing(
    client: httpx.AsyncClient, app: FastAPI, tokens: Any, status: int, code: str
) -> None:
    _, _, stream_id = await live_room(client, app)
    viewer = await register(client)
    await buy(client, viewer, 500)
    answer = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": tokens}, headers=viewer.headers
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert (await balance(client, viewer))["token_balance"] == 500
    await assert_ledger_balanced(app)


async def test_tipping_yourself_or_an_ended_stream_is_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    creator, channel, stream_id = await live_room(client, app)
    await buy(client, creator, 500)
    own = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 10}, headers=creator.headers
    )
    assert (own.status_code, own.json()["code"]) == (422, "CANNOT_TIP_SELF")

    viewer = await register(client)
    await buy(client, viewer, 500)
    await end_live(app, stream_id)
    ended = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 10}, headers=viewer.headers
    )
    assert (ended.status_code, ended.json()["code"]) == (409, "STREAM_NOT_LIVE")
    missing = await client.post(
        f"/api/v1/streams/{uuid.uuid4()}/tips", json={"tokens": 10}, headers=viewer.headers
    )
    assert missing.status_code == 404
    # A donation reaches the channel whether or not it is live.
    donation = await client.post(
        "/api/v1/donations",
        json={
            "channel_id": channel["id"],
            "tokens": 50,
            "message": "for next time",
            "is_private": True,
        },
        headers=viewer.headers,
    )
    assert donation.status_code == 201, donation.text
    mine = (await client.get("/api/v1/donations/me", headers=viewer.headers)).json()["data"]
    assert [(d["tokens"], d["message"]) for d in mine] == [(50, "for next time")]
    assert (await balance(client, viewer))["token_balance"] == 450
    await assert_ledger_balanced(app)


async def test_idempotency_keys_move_money_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, _, stream_id = await live_room(client, app)
    viewer = await register(client)
    await buy(client, viewer, 500)
    headers = {**viewer.headers, "Idempotency-Key": "tip-1"}
    first = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 30}, headers=headers
    )
    again = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 30}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 31}, headers=headers
    )
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert (await balance(client, viewer))["token_balance"] == 470


async def test_gifts_come_from_the_catalogue(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, _, stream_id = await live_room(client, app)
    viewer = await register(client)
    await buy(client, viewer, 500)
    gifts = (await client.get("/api/v1/gifts")).json()["data"]
    catalogue = {g["slug"]: g["tokens"] for g in gifts}
    sent = await client.post(
        "/api/v1/gifts",
        json={"gift": "rose", "quantity": 3, "stream_id": stream_id},
        headers=viewer.headers,
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["tokens"] == 3 * catalogue["rose"]
    unknown = await client.post(
        "/api/v1/gifts", json={"gift": "yacht", "stream_id": stream_id}, headers=viewer.headers
    )
    assert unknown.status_code == 404
    assert (await balance(client, viewer))["token_balance"] == 500 - 3 * catalogue["rose"]
    await assert_ledger_balanced(app)


async def test_only_packages_are_sold(client: httpx.AsyncClient) -> None:
    viewer = await register(client)
    odd = await client.post("/api/v1/wallet/buy", json={"tokens": 123}, headers=viewer.headers)
    assert (odd.status_code, odd.json()["code"]) == (422, "VALIDATION_ERROR")
    packages = (await client.get("/api/v1/wallet/packages")).json()["packages"]
    assert {"tokens": 100, "amount_cents": 100} in packages  # seed 002: 100 tokens = 1 USD
