"""Subscriptions, renewals, payouts, webhooks and refunds."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import stripe
from fastapi import FastAPI
from sqlalchemy import select

from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.chat import service as chat
from stagecast.chat.schemas import ChatMessageOut
from stagecast.db.base import utcnow
from stagecast.moderation.service import ChatRestricted
from stagecast.money import jobs
from stagecast.money.models import LedgerAccount, Subscription
from stagecast.money.providers import SandboxPayouts, StripeProvider
from stagecast.runtime import Runtime
from tests.factories import Account, go_live, make_admin, make_channel, register, verify_identity
from tests.money.test_wallet import assert_ledger_balanced, balance, buy


async def test_subscribe_gift_cancel_and_badge(client: httpx.AsyncClient, app: FastAPI) -> None:
    creator = await register(client)
    channel = await make_channel(client, creator)
    fan, friend = await register(client), await register(client)
    await buy(client, fan, 2500)

    tiers = (await client.get(f"/api/v1/channels/{channel['id']}/subscription-tiers")).json()
    assert [t["level"] for t in tiers["data"]] == [1, 2, 3]
    priced = await client.patch(
        f"/api/v1/channels/{channel['id']}/subscription-tiers/1",
        json={"tokens_per_month": 500},
        headers=creator.headers,
    )
    assert priced.status_code == 200, priced.text
    stranger_pricing = await client.patch(
        f"/api/v1/channels/{channel['id']}/subscription-tiers/1",
        json={"tokens_per_month": 1},
        headers=fan.headers,
    )
    assert stranger_pricing.status_code == 403

    made = await client.post(
        "/api/v1/subscriptions", json={"channel_id": channel["id"], "tier": 1}, headers=fan.headers
    )
    assert made.status_code == 201, made.text
    again = await client.post(
        "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
    )
    assert (again.status_code, again.json()["code"]) == (409, "ALREADY_SUBSCRIBED")
    gift = await client.post(
        "/api/v1/subscriptions",
        json={"channel_id": channel["id"], "tier": 1, "gift_to": friend.username},
        headers=fan.headers,
    )
    assert gift.status_code == 201, gift.text
    assert gift.json()["is_gift"] is True
    assert gift.json()["auto_renew"] is False
    own = await client.post(
        "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=creator.headers
    )
    assert own.json()["code"] == "CANNOT_SUBSCRIBE_SELF"
    assert (await balance(client, fan))["token_balance"] == 1500
    assert (await balance(client, creator))["earnings_balance"] == 800  # 2 x 500 - 20 %

    # The owner sees who subscribes (newest first, a page at a time); nobody else does.
    url = f"/api/v1/channels/{channel['slug']}/subscribers"
    listed = await client.get(url, params={"limit": 1}, headers=creator.headers)
    assert listed.status_code == 200, listed.text
    first = listed.json()
    assert [s["username"] for s in first["data"]] == [friend.username]
    assert first["data"][0]["is_gift"] is True
    assert first["data"][0]["tier"] == 1
    assert first["has_more"] is True
    rest = await client.get(
        url, params={"limit": 1, "cursor": first["next_cursor"]}, headers=creator.headers
    )
    assert [s["username"] for s in rest.json()["data"]] == [fan.username]
    assert rest.json()["has_more"] is False
    assert (await client.get(url, headers=fan.headers)).status_code == 403
    assert (await client.get(url)).status_code == 401

    mine = (await client.get("/api/v1/subscriptions/me", headers=fan.headers)).json()["data"]
    cancelled = await client.delete(f"/api/v1/subscriptions/{mine[0]['id']}", headers=fan.headers)
    assert cancelled.json()["auto_renew"] is False
    assert cancelled.json()["status"] == "active"  # until the paid month ends
    await assert_ledger_balanced(app)


async def test_renewals_charge_lapse_and_end(client: httpx.AsyncClient, app: FastAPI) -> None:
    runtime: Runtime = app.state.runtime
    creator = await register(client)
    channel = await make_channel(client, creator)
    rich, poor, leaving = await register(client), await register(client), await register(client)
    for account, tokens in ((rich, 1000), (poor, 500), (leaving, 500)):
        await buy(client, account, tokens)
        made = await client.post(
            "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=account.headers
        )
        assert made.status_code == 201, made.text  # tier 1: 499 tokens
    gone = (await client.get("/api/v1/subscriptions/me", headers=leaving.headers)).json()["data"][0]
    await client.delete(f"/api/v1/subscriptions/{gone['id']}", headers=leaving.headers)

    async with runtime.db.session() as session, session.begin():
        for subscription in (await session.scalars(select(Subscription))).all():
            subscription.current_period_end = utcnow() - timedelta(minutes=1)
    await jobs.run_once(runtime)

    def status_of(page: dict[str, Any]) -> tuple[str, int]:
        return page["data"][0]["status"], page["data"][0]["months"]

    rich_rows = (await client.get("/api/v1/subscriptions/me", headers=rich.headers)).json()
    poor_rows = (await client.get("/api/v1/subscriptions/me", headers=poor.headers)).json()
    gone_rows = (await client.get("/api/v1/subscriptions/me", headers=leaving.headers)).json()
    assert status_of(rich_rows) == ("active", 2)
    assert status_of(poor_rows) == ("lapsed", 1)
    assert status_of(gone_rows) == ("ended", 1)
    subscribers = await client.get(
        f"/api/v1/channels/{channel['id']}/subscribers", headers=creator.headers
    )
    assert [s["username"] for s in subscribers.json()["data"]] == [rich.username]
    assert (await balance(client, rich))["token_balance"] == 1000 - 2 * 499
    assert (await balance(client, poor))["token_balance"] == 1  # nothing taken on the lapse
    notes = (await client.get("/api/v1/notifications", headers=poor.headers)).json()["data"]
    assert [n["kind"] for n in notes] == ["subscription.lapsed"]
    await assert_ledger_balanced(app)


async def earner(
    client: httpx.AsyncClient, app: FastAPI, tokens: int
) -> tuple[Account, dict[str, Any]]:
    """A creator (and their channel) whose earnings hold `tokens` (a fan tipped them in),
    verified so that they may ask for payouts."""
    creator = await register(client)
    await verify_identity(app, creator)
    channel = await make_channel(client, creator)
    stream_id = await go_live(app, channel["slug"])
    fan = await register(client)
    tip_tokens = tokens * 100 // 80  # the creator keeps 80 %
    for _ in range(-(-tip_tokens // 10000)):
        await buy(client, fan, 10000)
    tip = await client.post(
        f"/api/v1/streams/{stream_id}/tips",
        json={"tokens": tip_tokens},
        headers=fan.headers,
    )
    assert tip.status_code == 201, tip.text
    return creator, channel


async def test_payouts_request_approve_reject(client: httpx.AsyncClient, app: FastAPI) -> None:
    creator, _ = await earner(client, app, 10000)
    admin = await make_admin(client, app)
    small = await client.post(
        "/api/v1/payouts/request", json={"tokens": 10}, headers=creator.headers
    )
    assert (small.status_code, small.json()["code"]) == (422, "VALIDATION_ERROR")
    too_much = await client.post(
        "/api/v1/payouts/request", json={"tokens": 11000}, headers=creator.headers
    )
    assert (too_much.status_code, too_much.json()["code"]) == (402, "INSUFFICIENT_BALANCE")

    first = await client.post(
        "/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers
    )
    assert first.status_code == 201, first.text
    seller = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert (seller["available_tokens"], seller["pending_tokens"]) == (5000, 5000)
    not_admin = await client.post(
        f"/api/v1/admin/payouts/{first.json()['id']}/approve", headers=creator.headers
    )
    assert not_admin.status_code == 403
    paid = await client.post(
        f"/api/v1/admin/payouts/{first.json()['id']}/approve", headers=admin.headers
    )
    assert paid.json()["status"] == "paid", paid.text
    twice = await client.post(
        f"/api/v1/admin/payouts/{first.json()['id']}/approve", headers=admin.headers
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "PAYOUT_NOT_PENDING")

    await client.post("/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers)
    mine = (await client.get("/api/v1/payouts", headers=creator.headers)).json()["data"]
    rejected_id = mine[0]["id"]
    rejected = await client.post(
        f"/api/v1/admin/payouts/{rejected_id}/reject", json={"reason": "check your details"},
        headers=admin.headers,
    )  # fmt: skip
    assert rejected.json()["status"] == "rejected"
    assert (await balance(client, creator))["earnings_balance"] == 5000  # back in earnings
    await assert_ledger_balanced(app)


async def test_failed_transfers_are_retried_then_returned(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    runtime.payout_provider = SandboxPayouts(flaky={"acct_flaky"})
    creator, _ = await earner(client, app, 6000)
    admin = await make_admin(client, app)
    asked = await client.post(
        "/api/v1/payouts/request", json={"tokens": 5000, "destination": "acct_flaky"},
        headers=creator.headers,
    )  # fmt: skip
    payout_id = asked.json()["id"]
    first = await client.post(f"/api/v1/admin/payouts/{payout_id}/approve", headers=admin.headers)
    assert first.json()["status"] == "retrying", first.text
    assert first.json()["next_attempt_at"] is not None
    transfers = (await client.get("/api/v1/admin/transfers", headers=admin.headers)).json()
    assert payout_id in [t["id"] for t in transfers["transfers"]]
    status = "retrying"
    for _ in range(10):
        answer = await client.post(
            f"/api/v1/admin/transfers/{payout_id}/retry", headers=admin.headers
        )
        status = answer.json().get("status", answer.json().get("code"))
        if status != "retrying":
            break
    assert status == "failed"
    assert (await balance(client, creator))["earnings_balance"] == 6000  # returned, whole
    await assert_ledger_balanced(app)


async def test_sandbox_webhooks_credit_once_and_check_signatures(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    sandbox = runtime.webhook_providers["sandbox"]
    buyer = await register(client)
    started = (
        await client.post("/api/v1/wallet/buy", json={"tokens": 500}, headers=buyer.headers)
    ).json()
    payload, headers = sandbox.build_event(  # type: ignore[attr-defined]
        "payment_succeeded", purchase_id=started["purchase_id"], provider_ref="sbx_x",
        amount_cents=500, currency="usd",
    )  # fmt: skip
    for _ in range(2):  # the second is a replay
        answer = await client.post("/api/v1/webhooks/sandbox", content=payload, headers=headers)
        assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "replay"
    assert (await balance(client, buyer))["token_balance"] == 500
    forged = {**headers, "Stagecast-Sandbox-Signature": f"t={int(time.time())},v1={'0' * 64}"}
    bad = await client.post("/api/v1/webhooks/sandbox", content=payload, headers=forged)
    assert (bad.status_code, bad.json()["code"]) == (400, "WEBHOOK_SIGNATURE_INVALID")
    unconfigured = await client.post("/api/v1/webhooks/stripe", content=b"{}")
    assert unconfigured.status_code == 404
    await assert_ledger_balanced(app)


def _stripe_signed(payload: bytes, secret: str) -> dict[str, str]:
    """A `Stripe-Signature` header made by the Stripe SDK's own signing code."""
    header = stripe.WebhookSignature.generate_signature_header(
        payload=payload.decode(), secret=secret, timestamp=int(time.time())
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


async def test_stripe_payments_and_refunds_post_reversals(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    secret = "whsec_test_secret"
    runtime.webhook_providers["stripe"] = StripeProvider("sk_test_x", secret)
    buyer = await register(client)
    creator = await register(client)
    channel = await make_channel(client, creator)
    started = (
        await client.post("/api/v1/wallet/buy", json={"tokens": 1000}, headers=buyer.headers)
    ).json()
    purchase_id = started["purchase_id"]
    session_event = {
        "id": "evt_paid_1",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": "cs_test_1",
                "object": "checkout.session",
                "client_reference_id": purchase_id,
                "payment_status": "paid",
                "payment_intent": "pi_1",
                "amount_total": 1000,
                "currency": "usd",
                "metadata": {"purchase_id": purchase_id},
            }
        },
    }
    payload = json.dumps(session_event).encode()
    paid = await client.post(
        "/api/v1/webhooks/stripe", content=payload, headers=_stripe_signed(payload, secret)
    )
    assert paid.status_code == 200, paid.text
    assert (await balance(client, buyer))["token_balance"] == 1000
    wrong = await client.post(
        "/api/v1/webhooks/stripe", content=payload, headers=_stripe_signed(payload, "whsec_other")
    )
    assert wrong.status_code == 400

    # Spend most of it, then the payment is refunded: what is left is taken back, the rest
    # is written off; no wallet goes negative.
    donated = await client.post(
        "/api/v1/donations",
        json={"channel_id": channel["id"], "tokens": 700},
        headers=buyer.headers,
    )
    assert donated.status_code == 201

    async def refund(event_id: str, refunded_so_far: int) -> str:
        event = {
            "id": event_id,
            "object": "event",
            "type": "charge.refunded",
            "data": {
                "object": {
                    "id": "ch_1",
                    "object": "charge",
                    "payment_intent": "pi_1",  # the purchase is found by its payment
                    "amount": 1000,
                    "amount_refunded": refunded_so_far,  # Stripe's running total
                    "currency": "usd",
                    "metadata": {},
                }
            },
        }
        payload = json.dumps(event).encode()
        answer = await client.post(
            "/api/v1/webhooks/stripe", content=payload, headers=_stripe_signed(payload, secret)
        )
        assert answer.status_code == 200, answer.text
        purchase = await client.get(
            f"/api/v1/wallet/purchases/{purchase_id}", headers=buyer.headers
        )
        return str(purchase.json()["status"])

    # 3 USD back first: 300 of the 300 tokens left are taken back.
    assert await refund("evt_refund_1", 300) == "partially_refunded"
    assert (await balance(client, buyer))["token_balance"] == 0
    # Then the rest: 700 tokens were already spent, so they are written off, not owed.
    assert await refund("evt_refund_2", 1000) == "refunded"
    assert (await balance(client, buyer))["token_balance"] == 0
    assert await refund("evt_refund_2", 1000) == "refunded"  # a replay moves nothing
    async with runtime.db.session() as session, session.begin():
        losses = await session.scalar(
            select(LedgerAccount.balance).where(LedgerAccount.key == "chargeback_losses")
        )
    assert losses == -700
    await assert_ledger_balanced(app)


async def test_subscribers_only_chat_lets_subscribers_in(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The realtime issue's subscribers-only mode and badge, opened by a subscription."""
    runtime: Runtime = app.state.runtime
    creator = await register(client)
    channel = await make_channel(client, creator)
    modes = await client.patch(
        f"/api/v1/channels/{channel['id']}/settings",
        json={"chat": {"subscribers_only": True}},
        headers=creator.headers,
    )
    assert modes.status_code == 200, modes.text
    fan, lurker = await register(client), await register(client)
    await buy(client, fan, 500)
    await client.post(
        "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
    )

    async def send(account_id: str) -> ChatMessageOut:
        async with runtime.db.session() as session, session.begin():
            found = await channels.get_channel(session, channel["id"])
            user = await session.get_one(User, uuid.UUID(account_id))
            return await chat.send_message(
                session, user=user, channel=found, stream_id=None, raw="hello", reply_to=None
            )

    assert "subscriber" in (await send(fan.id)).author.badges
    with pytest.raises(ChatRestricted):
        await send(lurker.id)
