"""Calls to payment providers happen outside database transactions, and a call whose outcome
was never recorded is completed later, once (DESIGN: commit the intent, call with an
idempotency key, record the outcome, resume what a crash left in flight).

The provider is Stripe's own SDK talking to the local fake of Stripe's API (tests/money/fakes.py),
which stores and replays idempotent requests as Stripe does and counts the objects it made.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.engine import make_url

from stagecast.app import create_app
from stagecast.db.base import utcnow
from stagecast.money import jobs, payouts
from stagecast.money.ledger import earnings_of
from stagecast.money.models import (
    AccountKind,
    LedgerAccount,
    LedgerTransaction,
    Payout,
    Purchase,
)
from stagecast.money.providers import (
    Checkout,
    PaymentProvider,
    PayoutProvider,
    SandboxPayouts,
    StripeConnectPayouts,
    StripeProvider,
    TransferFailed,
    TransferResult,
)
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import Account, make_admin, register
from tests.money.books import check_books
from tests.money.conftest import API_KEY, WEBHOOK_SECRET
from tests.money.fakes import FIRST_SESSION, FIRST_TRANSFER, FakeApi, Received, stripe_error
from tests.money.test_earnings import earner

# The SDK's httpx client posts its form body with `data=`, which httpx deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

CONNECTED = "acct_1StagecastCreator"
LATER = timedelta(minutes=10)  # past the resume delay (5 min) and the first retry (1 min)


# --- is a transaction open? ----------------------------------------------------------------------


class TransactionProbe:
    """Asks the database, from a connection of its own, whether any other connection holds a
    transaction open right now. On SQLite: can this connection take the write lock at once
    (`BEGIN IMMEDIATE`, no waiting)? The app begins every writing transaction IMMEDIATE, so
    an open one holds the lock. On PostgreSQL: is any client session inside a transaction?"""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.seen: list[tuple[str, bool]] = []  # (provider path, free of transactions)

    async def free(self) -> bool:
        if self.url.get_backend_name() == "sqlite":
            connection = sqlite3.connect(str(self.url.database), timeout=0, isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # "database is locked"
                return False
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                connection.close()
            return True
        connection = await asyncpg.connect(
            host=self.url.host, port=self.url.port or 5432, user=self.url.username,
            password=self.url.password, database=self.url.database,
        )  # fmt: skip
        try:
            open_elsewhere = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND xact_start IS NOT NULL"
            )
        finally:
            await connection.close()
        return bool(open_elsewhere == 0)

    async def during(self, request: Received) -> None:
        """The fake provider's hook: runs while the app waits for the provider's answer."""
        self.seen.append((request.path, await self.free()))


@dataclass
class Live:
    app: FastAPI
    client: httpx.AsyncClient
    runtime: Runtime
    probe: TransactionProbe


@pytest.fixture
async def live(
    tmp_path: Path, committed_database_url: str, fake_stripe: FakeApi
) -> AsyncIterator[Live]:
    """An app on a database whose transactions really commit (a rolled-back test connection
    would hold one open all along), paying and paying out through the fake Stripe."""
    app = create_app(make_settings(tmp_path, committed_database_url))
    async with LifespanManager(app):
        runtime: Runtime = app.state.runtime
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Live(app, http, runtime, TransactionProbe(committed_database_url))


def _stripe_payouts(live: Live, fake: FakeApi) -> StripeConnectPayouts:
    provider = StripeConnectPayouts(API_KEY, api_base=fake.base_url, max_network_retries=0)
    live.runtime.payout_provider = provider
    return provider


async def _requested_payout(client: httpx.AsyncClient, app: FastAPI) -> tuple[Account, str]:
    """A creator with 6000 tokens of earnings who asked for 5000 to their Stripe account."""
    creator, _ = await earner(client, app, 6000)
    asked = await client.post(
        "/api/v1/payouts/request", json={"tokens": 5000, "destination": CONNECTED},
        headers=creator.headers,
    )  # fmt: skip
    assert asked.status_code == 201, asked.text
    return creator, str(asked.json()["id"])


async def test_payout_approval_calls_stripe_outside_any_transaction(
    live: Live, fake_stripe: FakeApi
) -> None:
    provider = _stripe_payouts(live, fake_stripe)
    _, payout_id = await _requested_payout(live.client, live.app)
    admin = await make_admin(live.client, live.app)
    fake_stripe.during = live.probe.during
    try:
        sent = await live.client.post(
            f"/api/v1/admin/payouts/{payout_id}/approve", headers=admin.headers
        )
    finally:
        await provider.aclose()
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "paid"
    assert live.probe.seen == [("/v1/transfers", True)]
    async with live.runtime.db.session() as session, session.begin():
        await check_books(session)


async def test_purchase_checkout_calls_stripe_outside_any_transaction(
    live: Live, fake_stripe: FakeApi
) -> None:
    provider = StripeProvider(
        API_KEY, WEBHOOK_SECRET, api_base=fake_stripe.base_url, max_network_retries=0
    )
    live.runtime.payments = provider
    buyer = await register(live.client)
    fake_stripe.during = live.probe.during
    try:
        started = await live.client.post(
            "/api/v1/wallet/buy", json={"tokens": 1000},
            headers={**buyer.headers, "Idempotency-Key": "buy-1"},
        )  # fmt: skip
    finally:
        await provider.aclose()
    assert started.status_code == 201, started.text
    assert started.json()["checkout_url"] == f"https://checkout.stripe.com/c/pay/{FIRST_SESSION}"
    assert live.probe.seen == [("/v1/checkout/sessions", True)]


async def test_payout_job_calls_stripe_outside_any_transaction(
    live: Live, fake_stripe: FakeApi
) -> None:
    provider = _stripe_payouts(live, fake_stripe)
    _, payout_id = await _requested_payout(live.client, live.app)
    admin = await make_admin(live.client, live.app)
    fake_stripe.replies["/v1/transfers"] = [stripe_error(500, "api_error", "Try again", "x")]
    try:
        first = await live.client.post(
            f"/api/v1/admin/payouts/{payout_id}/approve", headers=admin.headers
        )
        assert first.json()["status"] == "retrying", first.text
        async with live.runtime.db.session() as session, session.begin():  # its retry is due
            payout = await session.get_one(Payout, uuid.UUID(payout_id))
            payout.next_attempt_at = utcnow() - timedelta(seconds=1)
        fake_stripe.during = live.probe.during
        await jobs.run_once(live.runtime)
    finally:
        await provider.aclose()
    assert ("/v1/transfers", True) in live.probe.seen
    assert all(free for _, free in live.probe.seen), live.probe.seen
    async with live.runtime.db.session() as session, session.begin():
        assert (await session.get_one(Payout, uuid.UUID(payout_id))).status == "paid"
        await check_books(session)


# --- a crash between the call and its outcome ----------------------------------------------------


class Crashed(Exception):
    """What the server dying right after the provider answered looks like to the flow."""


class CrashAfterTransfer:
    """The real payout provider, and then the process dies before the outcome is recorded."""

    def __init__(self, provider: PayoutProvider) -> None:
        self.name = provider.name
        self._provider = provider

    async def transfer(self, **kwargs: Any) -> TransferResult:
        await self._provider.transfer(**kwargs)
        raise Crashed

    async def find_transfer(self, *, payout_id: str) -> TransferResult | None:
        return await self._provider.find_transfer(payout_id=payout_id)

    async def onboarding_link(self, **kwargs: Any) -> Any:
        return await self._provider.onboarding_link(**kwargs)

    async def account_ready(self, *, account_ref: str) -> bool:
        return await self._provider.account_ready(account_ref=account_ref)


class CrashAfterCheckout:
    """The real payment provider, and then the process dies before the checkout is recorded."""

    def __init__(self, provider: PaymentProvider) -> None:
        self.name = provider.name
        self._provider = provider

    async def create_checkout(self, **kwargs: Any) -> Checkout:
        await self._provider.create_checkout(**kwargs)
        raise Crashed

    def verify_webhook(self, payload: bytes, headers: Any) -> Any:
        return self._provider.verify_webhook(payload, headers)


async def _account_balance(runtime: Runtime, key: str) -> int:
    async with runtime.db.session() as session, session.begin():
        balance = await session.scalar(
            select(LedgerAccount.balance).where(LedgerAccount.key == key)
        )
        await check_books(session)
    return int(balance or 0)


async def test_a_transfer_stripe_made_before_a_crash_is_recorded_once_by_the_job(
    client: httpx.AsyncClient, app: FastAPI, fake_stripe: FakeApi,
    connect_payouts: StripeConnectPayouts,
) -> None:  # fmt: skip
    runtime: Runtime = app.state.runtime
    runtime.payout_provider = CrashAfterTransfer(connect_payouts)
    creator, payout_id = await _requested_payout(client, app)
    admin = await make_admin(client, app)
    sent_before = await _account_balance(runtime, AccountKind.PAYOUTS_SENT.value)
    crashed = await client.post(f"/api/v1/admin/payouts/{payout_id}/approve", headers=admin.headers)
    assert crashed.status_code == 500  # the flow died after Stripe answered
    assert len(fake_stripe.made("/v1/transfers")) == 1  # Stripe paid; we never wrote it down
    runtime.payout_provider = connect_payouts  # the server restarted

    # The attempt is in flight: the job leaves it alone until it can no longer be running.
    await jobs.run_once(runtime)
    assert len(fake_stripe.to("/v1/transfers")) == 1
    listed = await client.get("/api/v1/admin/payouts?status=approved", headers=admin.headers)
    assert [p["id"] for p in listed.json()["data"]] == [payout_id]
    assert await _account_balance(runtime, earnings_of(uuid.UUID(creator.id))) == 1000

    await jobs.run_once(runtime, now=utcnow() + LATER)
    await jobs.run_once(runtime, now=utcnow() + 2 * LATER)  # nothing left to do
    requests = fake_stripe.to("/v1/transfers")
    assert [r.headers["Idempotency-Key"] for r in requests] == [f"payout-{payout_id}"] * 2
    assert len(fake_stripe.made("/v1/transfers")) == 1  # one transfer: the retry was a replay
    mine = (await client.get("/api/v1/sell/transfers", headers=creator.headers)).json()
    (shown,) = mine["transfers"]
    assert (shown["id"], shown["status"], shown["retry_count"]) == (payout_id, "paid", 1)
    async with runtime.db.session() as session, session.begin():
        assert (await session.get_one(Payout, uuid.UUID(payout_id))).provider_ref == (
            FIRST_TRANSFER
        )
    assert await _account_balance(runtime, AccountKind.PAYOUTS_SENT.value) == sent_before + 5000
    assert await _account_balance(runtime, earnings_of(uuid.UUID(creator.id))) == 1000


async def test_a_checkout_stripe_made_before_a_crash_is_recorded_once(
    client: httpx.AsyncClient, app: FastAPI, fake_stripe: FakeApi, stripe_provider: StripeProvider
) -> None:
    runtime: Runtime = app.state.runtime
    runtime.payments = CrashAfterCheckout(stripe_provider)
    buyer = await register(client)
    headers = {**buyer.headers, "Idempotency-Key": "buy-crash"}
    crashed = await client.post("/api/v1/wallet/buy", json={"tokens": 500}, headers=headers)
    assert crashed.status_code == 500  # the flow died after Stripe answered
    runtime.payments = stripe_provider
    async with runtime.db.session() as session, session.begin():
        (purchase,) = (
            await session.scalars(select(Purchase).where(Purchase.user_id == uuid.UUID(buyer.id)))
        ).all()
        assert (purchase.status, purchase.provider_ref, purchase.attempts) == ("pending", None, 1)

    await jobs.run_once(runtime, now=utcnow() + LATER)
    sessions = fake_stripe.to("/v1/checkout/sessions")
    assert [r.headers["Idempotency-Key"] for r in sessions] == [f"checkout-{purchase.id}"] * 2
    assert sessions[0].form == sessions[1].form  # the same request again, as Stripe requires
    assert len(fake_stripe.made("/v1/checkout/sessions")) == 1
    # The buyer repeating the request gets the checkout, and Stripe is not asked again.
    again = await client.post("/api/v1/wallet/buy", json={"tokens": 500}, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["purchase_id"] == str(purchase.id)
    assert again.json()["checkout_url"] == f"https://checkout.stripe.com/c/pay/{FIRST_SESSION}"
    assert len(fake_stripe.to("/v1/checkout/sessions")) == 2
    shown = await client.get(f"/api/v1/wallet/purchases/{purchase.id}", headers=buyer.headers)
    assert shown.json()["checkout_url"] == again.json()["checkout_url"]


# --- a failing provider --------------------------------------------------------------------------


@pytest.fixture
async def slow_payouts(fake_stripe: FakeApi) -> AsyncIterator[StripeConnectPayouts]:
    """Stripe Connect with a client that gives up after half a second."""
    provider = StripeConnectPayouts(
        API_KEY, api_base=fake_stripe.base_url, max_network_retries=0, timeout=0.5
    )
    yield provider
    await provider.aclose()


@pytest.mark.parametrize("failure", ["http 500", "timeout"])
async def test_a_failing_stripe_leaves_the_payout_to_retry_with_no_token_lost(
    client: httpx.AsyncClient, app: FastAPI, fake_stripe: FakeApi,
    slow_payouts: StripeConnectPayouts, failure: str,
) -> None:  # fmt: skip
    runtime: Runtime = app.state.runtime
    runtime.payout_provider = slow_payouts
    creator, payout_id = await _requested_payout(client, app)
    admin = await make_admin(client, app)
    if failure == "timeout":  # Stripe makes the transfer, its answer comes too late
        fake_stripe.delays["/v1/transfers"] = [2.0]
    else:
        fake_stripe.replies["/v1/transfers"] = [
            stripe_error(500, "api_error", "Something went wrong on Stripe's end.", "internal")
        ]
    first = await client.post(f"/api/v1/admin/payouts/{payout_id}/approve", headers=admin.headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "retrying"
    assert first.json()["next_attempt_at"] is not None
    creator_earnings = earnings_of(uuid.UUID(creator.id))
    assert await _account_balance(runtime, creator_earnings) == 1000  # the 5000 stay held
    held = await client.get("/api/v1/sell/balance", headers=creator.headers)
    assert held.json()["pending_tokens"] == 5000

    await jobs.run_once(runtime, now=utcnow() + LATER)
    mine = (await client.get("/api/v1/payouts", headers=creator.headers)).json()["data"]
    assert [(p["id"], p["status"]) for p in mine] == [(payout_id, "paid")]
    assert len(fake_stripe.to("/v1/transfers")) == 2
    assert len(fake_stripe.made("/v1/transfers")) == 1
    assert await _account_balance(runtime, creator_earnings) == 1000


async def test_a_failing_stripe_checkout_answers_502_and_the_same_key_resumes_it(
    client: httpx.AsyncClient, app: FastAPI, fake_stripe: FakeApi, stripe_provider: StripeProvider
) -> None:
    runtime: Runtime = app.state.runtime
    runtime.payments = stripe_provider
    buyer = await register(client)
    headers = {**buyer.headers, "Idempotency-Key": "buy-flaky"}
    fake_stripe.replies["/v1/checkout/sessions"] = [
        stripe_error(500, "api_error", "Something went wrong on Stripe's end.", "internal")
    ]
    failed = await client.post("/api/v1/wallet/buy", json={"tokens": 500}, headers=headers)
    assert (failed.status_code, failed.json()["code"]) == (502, "PAYMENT_PROVIDER_ERROR")
    async with runtime.db.session() as session, session.begin():
        (purchase,) = (
            await session.scalars(select(Purchase).where(Purchase.user_id == uuid.UUID(buyer.id)))
        ).all()
        assert (purchase.status, purchase.provider_ref) == ("pending", None)
        assert purchase.next_attempt_at is not None  # the jobs would ask again in a minute

    again = await client.post("/api/v1/wallet/buy", json={"tokens": 500}, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["purchase_id"] == str(purchase.id)
    assert again.json()["checkout_url"] == f"https://checkout.stripe.com/c/pay/{FIRST_SESSION}"
    assert len(fake_stripe.made("/v1/checkout/sessions")) == 1
    other = await client.post(
        "/api/v1/wallet/buy", json={"tokens": 1000}, headers={**headers}
    )  # the same key for another body: refused, nothing made
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert len(fake_stripe.to("/v1/checkout/sessions")) == 2
    await jobs.run_once(runtime, now=utcnow() + LATER)  # made: nothing is due
    assert len(fake_stripe.to("/v1/checkout/sessions")) == 2


async def test_a_checkout_that_never_works_fails_after_the_last_attempt(
    client: httpx.AsyncClient, app: FastAPI, fake_stripe: FakeApi, stripe_provider: StripeProvider
) -> None:
    runtime: Runtime = app.state.runtime
    runtime.payments = stripe_provider
    buyer = await register(client)
    fake_stripe.replies["/v1/checkout/sessions"] = [
        stripe_error(503, "api_error", "Service unavailable", "unavailable")
    ] * 10
    headers = {**buyer.headers, "Idempotency-Key": "buy-never"}
    failed = await client.post("/api/v1/wallet/buy", json={"tokens": 500}, headers=headers)
    assert failed.status_code == 502
    now = utcnow()
    for _ in range(8):
        now += timedelta(hours=13)  # past every retry delay
        await jobs.run_once(runtime, now=now)
    assert len(fake_stripe.to("/v1/checkout/sessions")) == 6  # MAX_ATTEMPTS, then no more
    shown = await client.post("/api/v1/wallet/buy", json={"tokens": 500}, headers=headers)
    assert (shown.status_code, shown.json()["code"]) == (502, "PAYMENT_PROVIDER_ERROR")
    async with runtime.db.session() as session, session.begin():
        purchase = await session.scalar(
            select(Purchase).where(Purchase.user_id == uuid.UUID(buyer.id))
        )
        assert purchase is not None
        assert (purchase.status, purchase.next_attempt_at) == ("failed", None)


# --- attempts that cross ------------------------------------------------------------------------


async def test_a_late_failure_of_an_older_attempt_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Two attempts at one transfer (a slow call taken up again by the jobs): a paid answer is
    booked whichever brings it, once; a failure only by the latest attempt."""
    runtime: Runtime = app.state.runtime
    _, payout_id = await _requested_payout(client, app)
    admin = await make_admin(client, app)
    settings, now = runtime.settings.money, utcnow()
    async with runtime.db.session() as session, session.begin():
        first = await payouts.approve(
            session, settings, admin_id=uuid.UUID(admin.id), payout_id=uuid.UUID(payout_id),
            now=now,
        )  # fmt: skip
    later = now + timedelta(seconds=settings.resume_after_seconds)
    async with runtime.db.session() as session, session.begin():
        second = await payouts.begin_transfer(
            session, settings, uuid.UUID(payout_id), now=later, due_only=True
        )
        assert second is not None
        assert second.number == first.number + 1
        # Taken: not due again until this attempt's time runs out.
        taken = await payouts.begin_transfer(
            session, settings, uuid.UUID(payout_id), now=later, due_only=True
        )
        assert taken is None

    lost = TransferFailed("connection reset", retryable=True)
    async with runtime.db.session() as session, session.begin():
        stale = await payouts.record_transfer(session, first, lost, now=later)
        assert (stale.status, stale.failure_reason) == ("approved", None)
    paid = await payouts.call_transfer(SandboxPayouts(), first)  # the first's answer, late
    async with runtime.db.session() as session, session.begin():
        assert (await payouts.record_transfer(session, first, paid, now=later)).status == "paid"
    same = await payouts.call_transfer(SandboxPayouts(), second)
    async with runtime.db.session() as session, session.begin():
        assert (await payouts.record_transfer(session, second, same, now=later)).status == "paid"
        await check_books(session)
        booked = (
            await session.scalars(
                select(LedgerTransaction).where(LedgerTransaction.kind == "payout_paid")
            )
        ).all()
        assert [t.details["payout_id"] for t in booked].count(payout_id) == 1


@pytest.mark.parametrize("stripe_made_it", [True, False])
async def test_before_giving_a_payout_up_stripe_is_asked_whether_it_made_it(
    client: httpx.AsyncClient, app: FastAPI, fake_stripe: FakeApi,
    connect_payouts: StripeConnectPayouts, stripe_made_it: bool,
) -> None:  # fmt: skip
    """Stripe stores a 500 answered by a request that began to run and replays it for the key,
    whatever happened behind it: every retry fails alike. Before the last attempt gives the
    payout up, the transfer group is looked up: paid if Stripe made it, else back to earnings."""
    runtime: Runtime = app.state.runtime
    runtime.payout_provider = connect_payouts
    creator, payout_id = await _requested_payout(client, app)
    admin = await make_admin(client, app)
    broken = stripe_error(500, "api_error", "Something went wrong on Stripe's end.", "internal")
    if stripe_made_it:
        fake_stripe.lost["/v1/transfers"] = [broken]
    else:
        fake_stripe.replies["/v1/transfers"] = [broken] * 6
    first = await client.post(f"/api/v1/admin/payouts/{payout_id}/approve", headers=admin.headers)
    assert first.json()["status"] == "retrying", first.text
    now = utcnow()
    for _ in range(6):
        now += timedelta(hours=13)  # past every retry delay
        await jobs.run_once(runtime, now=now)
    posted = [r for r in fake_stripe.to("/v1/transfers") if r.method == "POST"]
    assert len(posted) == 6  # MAX_ATTEMPTS, all with the payout's key
    assert {r.headers["Idempotency-Key"] for r in posted} == {f"payout-{payout_id}"}
    (looked_up,) = [r for r in fake_stripe.to("/v1/transfers") if r.method == "GET"]
    assert looked_up.query == {"transfer_group": f"payout-{payout_id}", "limit": "1"}
    mine = (await client.get("/api/v1/payouts", headers=creator.headers)).json()["data"]
    earnings = await _account_balance(runtime, earnings_of(uuid.UUID(creator.id)))
    if stripe_made_it:
        assert [(p["id"], p["status"]) for p in mine] == [(payout_id, "paid")]
        assert len(fake_stripe.made("/v1/transfers")) == 1
        assert earnings == 1000
    else:
        assert [(p["id"], p["status"]) for p in mine] == [(payout_id, "failed")]
        assert fake_stripe.made("/v1/transfers") == []
        assert earnings == 6000  # returned, whole
