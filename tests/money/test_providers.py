"""Payment and payout providers against local fakes of Stripe's and Hyperswitch's APIs, with
webhooks signed by Stripe's own SDK code (and by the HMAC Hyperswitch documents)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import stripe
from starlette.datastructures import Headers

from stagecast.config import MoneySettings
from stagecast.money.providers import (
    MAX_ATTEMPTS,
    HyperswitchProvider,
    PaymentEvent,
    PaymentProvider,
    PayoutProvider,
    ProviderError,
    SandboxPayouts,
    SandboxProvider,
    StripeConnectPayouts,
    StripeProvider,
    TransferFailed,
    WebhookRejected,
    build_payment_provider,
    build_payout_provider,
    retry_delay,
)
from tests.factories import register
from tests.money.conftest import API_KEY, WEBHOOK_SECRET
from tests.money.fakes import FakeApi, closed_port, connected_account, stripe_error

# The SDK's httpx client posts its form body with `data=`, which httpx deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

HASH_KEY = "hs_response_hash_key_0123456789"
PURCHASE_ID = "0190f0c2-7a6e-7cc1-9d35-0c1f6a2b3c4d"
CHECKOUT_KEY = f"checkout-{PURCHASE_ID}"
USER_ID = "0190f0c2-7a6e-7cc1-9d35-0c1f6a2b3c99"


# --- sandbox payments ----------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sandbox(clock: Clock | None = None, secret: bytes = b"sandbox-secret") -> SandboxProvider:
    return SandboxProvider(secret, "http://localhost:8000/", clock=clock or Clock())


async def test_sandbox_checkout_points_at_our_own_confirm_page_once_per_key() -> None:
    provider: PaymentProvider = sandbox()
    asked: dict[str, Any] = {
        "purchase_id": PURCHASE_ID, "user_id": USER_ID, "tokens": 500, "amount_cents": 500,
        "currency": "usd", "success_url": "http://localhost:8000/wallet?ok",
        "cancel_url": "http://localhost:8000/wallet",
    }  # fmt: skip
    first = await provider.create_checkout(**asked, idempotency_key=CHECKOUT_KEY)
    again = await provider.create_checkout(**asked, idempotency_key=CHECKOUT_KEY)
    other = await provider.create_checkout(**asked, idempotency_key="checkout-another")
    assert first.provider == "sandbox"
    assert first.redirect_url == (
        f"http://localhost:8000/api/v1/wallet/sandbox/checkout/{PURCHASE_ID}"
    )
    assert first.provider_ref.startswith("sbx_")
    assert again == first  # the same key: the same checkout, as a real provider answers
    assert other.provider_ref != first.provider_ref
    assert first.status == "open"


@pytest.mark.parametrize("kind", ["payment_succeeded", "payment_refunded", "payment_disputed"])
def test_sandbox_event_round_trip(kind: Any) -> None:
    provider = sandbox()
    payload, headers = provider.build_event(
        kind, purchase_id=PURCHASE_ID, provider_ref="sbx_ref", amount_cents=500, currency="usd"
    )
    event = provider.verify_webhook(payload, headers)
    assert event == PaymentEvent(
        event_id=json.loads(payload)["id"],
        kind=kind,
        purchase_id=PURCHASE_ID,
        provider_ref="sbx_ref",
        amount_cents=500,
        currency="usd",
        raw_type=f"sandbox.{kind}",
        payment_ref="sbx_ref",
    )
    assert event.event_id.startswith("sbx_evt_")


def test_sandbox_signature_is_stripes_scheme_under_its_own_header() -> None:
    clock = Clock()
    provider = sandbox(clock, secret=b"k")
    payload, headers = provider.build_event(
        "payment_succeeded", purchase_id="p", provider_ref="r", amount_cents=1, currency="usd"
    )
    ts = int(clock.now)
    digest = hmac.new(b"k", f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    assert headers["Stagecast-Sandbox-Signature"] == f"t={ts},v1={digest}"
    assert provider.sign(payload, ts) == f"t={ts},v1={digest}"
    # The same scheme as Stripe's: Stripe's verifier accepts it with the same secret.
    assert stripe.WebhookSignature.verify_header(
        payload, headers["Stagecast-Sandbox-Signature"], "k", tolerance=None
    )


def test_sandbox_reads_headers_in_any_case() -> None:
    provider = sandbox()
    payload, headers = provider.build_event(
        "payment_succeeded", purchase_id="p", provider_ref="r", amount_cents=1, currency="usd"
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    assert provider.verify_webhook(payload, lowered).kind == "payment_succeeded"
    assert provider.verify_webhook(payload, Headers(headers=lowered)).kind == "payment_succeeded"


def test_sandbox_rejects_a_tampered_body() -> None:
    provider = sandbox()
    payload, headers = provider.build_event(
        "payment_succeeded", purchase_id="p", provider_ref="r", amount_cents=1, currency="usd"
    )
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.verify_webhook(payload.replace(b'"amount_cents":1', b'"amount_cents":9'), headers)


def test_sandbox_rejects_a_missing_or_garbled_signature() -> None:
    provider = sandbox()
    payload, _ = provider.build_event(
        "payment_succeeded", purchase_id="p", provider_ref="r", amount_cents=1, currency="usd"
    )
    with pytest.raises(WebhookRejected, match="missing"):
        provider.verify_webhook(payload, {})
    for garbled in ("", "v1=abc", "t=123", "t=abc,v1=def", "nonsense"):
        with pytest.raises(WebhookRejected):
            provider.verify_webhook(payload, {"Stagecast-Sandbox-Signature": garbled})


def test_sandbox_rejects_another_secret() -> None:
    payload, headers = sandbox(secret=b"one").build_event(
        "payment_succeeded", purchase_id="p", provider_ref="r", amount_cents=1, currency="usd"
    )
    with pytest.raises(WebhookRejected, match="does not match"):
        sandbox(secret=b"two").verify_webhook(payload, headers)


@pytest.mark.parametrize("skew", [301, -301])
def test_sandbox_rejects_a_replay_outside_five_minutes(skew: int) -> None:
    clock = Clock()
    provider = sandbox(clock)
    payload, headers = provider.build_event(
        "payment_succeeded", purchase_id="p", provider_ref="r", amount_cents=1, currency="usd"
    )
    clock.now += 300
    assert provider.verify_webhook(payload, headers).kind == "payment_succeeded"
    clock.now += skew - 300
    with pytest.raises(WebhookRejected, match="tolerance"):
        provider.verify_webhook(payload, headers)


def test_sandbox_rejects_signed_garbage_and_reads_unknown_types_as_ignored() -> None:
    clock = Clock()
    provider = sandbox(clock)
    ts = int(clock.now)
    for garbage in (b"{not json", b"[1, 2]", b'{"type": "sandbox.payment_succeeded"}', b"\xff"):
        with pytest.raises(WebhookRejected):
            provider.verify_webhook(
                garbage, {"Stagecast-Sandbox-Signature": provider.sign(garbage, ts)}
            )
    odd = b'{"id": "sbx_evt_1", "type": "sandbox.payment_teleported", "data": {}}'
    event = provider.verify_webhook(odd, {"Stagecast-Sandbox-Signature": provider.sign(odd, ts)})
    assert event.kind == "ignored"
    assert event.purchase_id is None


# --- Stripe checkout -----------------------------------------------------------------------------


async def test_stripe_checkout_session_request_shape(
    fake_stripe: FakeApi, stripe_provider: StripeProvider
) -> None:
    checkout = await stripe_provider.create_checkout(
        purchase_id=PURCHASE_ID,
        user_id=USER_ID,
        tokens=500,
        amount_cents=500,
        currency="USD",
        success_url="https://stagecast.example/wallet?purchase=ok",
        cancel_url="https://stagecast.example/wallet",
        idempotency_key=CHECKOUT_KEY,
    )
    assert checkout.provider == "stripe"
    assert checkout.provider_ref == "cs_test_a1B2c3D4e5F6g7H8"
    assert checkout.redirect_url == "https://checkout.stripe.com/c/pay/cs_test_a1B2c3D4e5F6g7H8"
    assert checkout.status == "open"

    [request] = fake_stripe.received
    assert (request.method, request.path) == ("POST", "/v1/checkout/sessions")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert request.headers["Idempotency-Key"] == CHECKOUT_KEY
    assert "Stripe-Version" in request.headers
    assert request.form == {
        "mode": "payment",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "500",
        "line_items[0][price_data][product_data][name]": "500 tokens",
        "client_reference_id": PURCHASE_ID,
        "metadata[purchase_id]": PURCHASE_ID,
        "metadata[user_id]": USER_ID,
        "metadata[tokens]": "500",
        "payment_intent_data[metadata][purchase_id]": PURCHASE_ID,
        "payment_intent_data[metadata][user_id]": USER_ID,
        "payment_intent_data[metadata][tokens]": "500",
        "success_url": "https://stagecast.example/wallet?purchase=ok",
        "cancel_url": "https://stagecast.example/wallet",
    }


@pytest.mark.parametrize(
    "reply",
    [
        stripe_error(400, "invalid_request_error", "Invalid currency: xyz", "parameter_invalid"),
        stripe_error(401, "invalid_request_error", "Invalid API Key provided", "api_key_invalid"),
        stripe_error(500, "api_error", "Something went wrong on Stripe's end.", "internal"),
    ],
)
async def test_stripe_checkout_failure_is_a_provider_error(
    fake_stripe: FakeApi, stripe_provider: StripeProvider, reply: tuple[int, dict[str, Any]]
) -> None:
    fake_stripe.replies["/v1/checkout/sessions"] = [reply]
    with pytest.raises(ProviderError) as raised:
        await stripe_provider.create_checkout(
            purchase_id=PURCHASE_ID,
            user_id=USER_ID,
            tokens=100,
            amount_cents=100,
            currency="usd",
            success_url="https://stagecast.example/ok",
            cancel_url="https://stagecast.example/no",
            idempotency_key=CHECKOUT_KEY,
        )
    assert raised.value.status == 502
    assert raised.value.code == "PAYMENT_PROVIDER_ERROR"
    # Stripe's own words stay out of the client's answer (they may name our keys).
    assert raised.value.detail == "Stripe could not start the checkout; try again later"
    assert isinstance(raised.value.__cause__, stripe.StripeError)
    assert reply[1]["error"]["message"] in str(raised.value.__cause__)


# --- Stripe webhooks -----------------------------------------------------------------------------


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str = "evt_1Stagecast") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2025-06-30.basil",
            "created": int(time.time()),
            "type": event_type,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": obj},
        },
        indent=2,
    ).encode()


def stripe_signed(
    payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None
) -> dict[str, str]:
    """A `Stripe-Signature` header made by the SDK's own signing code."""
    timestamp = int(time.time()) if at is None else at
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


METADATA = {"purchase_id": PURCHASE_ID, "user_id": USER_ID, "tokens": "500"}
SESSION_PAID = {
    "id": "cs_test_a1B2c3D4e5F6g7H8",
    "object": "checkout.session",
    "client_reference_id": PURCHASE_ID,
    "metadata": METADATA,
    "payment_intent": "pi_3Stagecast",
    "payment_status": "paid",
    "status": "complete",
    "amount_total": 500,
    "currency": "usd",
}
PAYMENT_INTENT = {
    "id": "pi_3Stagecast",
    "object": "payment_intent",
    "amount": 500,
    "amount_received": 500,
    "currency": "usd",
    "metadata": METADATA,
    "status": "succeeded",
}
CHARGE_REFUNDED = {
    "id": "ch_3Stagecast",
    "object": "charge",
    "amount": 500,
    "amount_refunded": 500,
    "currency": "usd",
    "metadata": METADATA,
    "payment_intent": "pi_3Stagecast",
    "refunded": True,
}
DISPUTE = {
    "id": "du_1Stagecast",
    "object": "dispute",
    "amount": 500,
    "currency": "usd",
    "charge": "ch_3Stagecast",
    "payment_intent": "pi_3Stagecast",
    "metadata": {},
    "reason": "fraudulent",
    "status": "needs_response",
}


@pytest.mark.parametrize(
    ("event_type", "obj", "expected"),
    [
        (
            "checkout.session.completed",
            SESSION_PAID,
            ("payment_succeeded", PURCHASE_ID, "cs_test_a1B2c3D4e5F6g7H8", "pi_3Stagecast", 500),
        ),
        (
            "checkout.session.completed",
            {**SESSION_PAID, "payment_status": "unpaid"},
            ("ignored", PURCHASE_ID, "cs_test_a1B2c3D4e5F6g7H8", "pi_3Stagecast", 500),
        ),
        (
            "checkout.session.async_payment_succeeded",
            SESSION_PAID,
            ("payment_succeeded", PURCHASE_ID, "cs_test_a1B2c3D4e5F6g7H8", "pi_3Stagecast", 500),
        ),
        (
            "payment_intent.succeeded",
            PAYMENT_INTENT,
            ("payment_succeeded", PURCHASE_ID, None, "pi_3Stagecast", 500),
        ),
        (
            "charge.refunded",
            CHARGE_REFUNDED,
            ("payment_refunded", PURCHASE_ID, None, "pi_3Stagecast", 500),
        ),
        (
            "charge.dispute.created",
            DISPUTE,
            ("payment_disputed", None, None, "pi_3Stagecast", 500),
        ),
        (
            "customer.created",
            {"id": "cus_1", "object": "customer", "metadata": {}},
            ("ignored", None, None, None, None),
        ),
    ],
)
def test_stripe_event_mapping(
    stripe_provider: StripeProvider,
    event_type: str,
    obj: dict[str, Any],
    expected: tuple[str, str | None, str | None, str | None, int | None],
) -> None:
    payload = stripe_event(event_type, obj, event_id="evt_1Mapping")
    event = stripe_provider.verify_webhook(payload, stripe_signed(payload))
    kind, purchase_id, provider_ref, payment_ref, amount = expected
    assert event.event_id == "evt_1Mapping"
    assert event.raw_type == event_type
    assert (event.kind, event.purchase_id, event.provider_ref) == (kind, purchase_id, provider_ref)
    assert (event.payment_ref, event.amount_cents) == (payment_ref, amount)
    if amount is not None:
        assert event.currency == "usd"


def test_stripe_accepts_starlette_headers(stripe_provider: StripeProvider) -> None:
    payload = stripe_event("payment_intent.succeeded", PAYMENT_INTENT)
    raw = [(k.lower().encode(), v.encode()) for k, v in stripe_signed(payload).items()]
    assert stripe_provider.verify_webhook(payload, Headers(raw=raw)).kind == "payment_succeeded"


def test_stripe_rejects_a_bad_signature(stripe_provider: StripeProvider) -> None:
    payload = stripe_event("checkout.session.completed", SESSION_PAID)
    headers = stripe_signed(payload)
    tampered = payload.replace(b'"amount_total": 500', b'"amount_total": 50000')
    with pytest.raises(WebhookRejected):
        stripe_provider.verify_webhook(tampered, headers)
    with pytest.raises(WebhookRejected, match="missing"):
        stripe_provider.verify_webhook(payload, {})
    timestamp = int(time.time())
    for forged in (f"t={timestamp},v1={'0' * 64}", "garbage", f"t={timestamp}"):
        with pytest.raises(WebhookRejected):
            stripe_provider.verify_webhook(payload, {"Stripe-Signature": forged})


def test_stripe_rejects_another_secret(stripe_provider: StripeProvider) -> None:
    payload = stripe_event("checkout.session.completed", SESSION_PAID)
    with pytest.raises(WebhookRejected):
        stripe_provider.verify_webhook(payload, stripe_signed(payload, secret="whsec_other"))


def test_stripe_rejects_a_replay_older_than_the_tolerance(stripe_provider: StripeProvider) -> None:
    payload = stripe_event("checkout.session.completed", SESSION_PAID)
    recent = stripe_signed(payload, at=int(time.time()) - 240)
    assert stripe_provider.verify_webhook(payload, recent).kind == "payment_succeeded"
    with pytest.raises(WebhookRejected, match="tolerance"):
        stripe_provider.verify_webhook(payload, stripe_signed(payload, at=int(time.time()) - 600))


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b'{"id": "evt_1", "object": "event"', b"\xff\xfe", b'{"object": "event"}'],
)
def test_stripe_rejects_signed_malformed_bodies(
    stripe_provider: StripeProvider, payload: bytes
) -> None:
    timestamp = int(time.time())
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(errors="replace"), WEBHOOK_SECRET, timestamp
    )
    with pytest.raises(WebhookRejected):
        stripe_provider.verify_webhook(payload, {"Stripe-Signature": header})


# --- Stripe Connect payouts ----------------------------------------------------------------------


async def test_stripe_transfer_request_shape(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts
) -> None:
    provider: PayoutProvider = connect_payouts
    result = await provider.transfer(
        payout_id="po-1",
        destination="acct_1StagecastCreator",
        amount_cents=5000,
        currency="USD",
        idempotency_key="payout-po-1",
    )
    assert (result.provider_ref, result.status, result.failure_reason) == (
        "tr_1StagecastTransfer",
        "paid",
        None,
    )
    [request] = fake_stripe.received
    assert request.path == "/v1/transfers"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Idempotency-Key"] == "payout-po-1"
    assert request.form == {
        "amount": "5000",
        "currency": "usd",
        "destination": "acct_1StagecastCreator",
        "transfer_group": "payout-po-1",
        "metadata[payout_id]": "po-1",
    }


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        (stripe_error(500, "api_error", "Something went wrong on Stripe's end.", "internal"), True),
        (stripe_error(503, "api_error", "Service unavailable", "unavailable"), True),
        (stripe_error(429, "invalid_request_error", "Too many requests", "rate_limit"), True),
        (
            stripe_error(
                400,
                "invalid_request_error",
                "You have insufficient available funds in your Stripe account.",
                "balance_insufficient",
            ),
            False,
        ),
        (
            stripe_error(
                400,
                "invalid_request_error",
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers",
                "insufficient_capabilities_for_transfer",
            ),
            False,
        ),
        (
            stripe_error(404, "invalid_request_error", "No such destination", "resource_missing"),
            False,
        ),
    ],
)
async def test_stripe_transfer_failures(
    fake_stripe: FakeApi,
    connect_payouts: StripeConnectPayouts,
    reply: tuple[int, dict[str, Any]],
    retryable: bool,
) -> None:
    fake_stripe.replies["/v1/transfers"] = [reply]
    with pytest.raises(TransferFailed) as raised:
        await connect_payouts.transfer(
            payout_id="po-2",
            destination="acct_1StagecastCreator",
            amount_cents=5000,
            currency="usd",
            idempotency_key="payout-po-2",
        )
    assert raised.value.retryable is retryable
    assert raised.value.code == reply[1]["error"]["code"]
    assert reply[1]["error"]["message"] in str(raised.value)


async def test_stripe_transfer_network_failure_is_retryable() -> None:
    payouts = StripeConnectPayouts(
        API_KEY, api_base=f"http://127.0.0.1:{closed_port()}", max_network_retries=0
    )
    try:
        with pytest.raises(TransferFailed) as raised:
            await payouts.transfer(
                payout_id="po-3",
                destination="acct_1StagecastCreator",
                amount_cents=100,
                currency="usd",
                idempotency_key="payout-po-3",
            )
    finally:
        await payouts.aclose()
    assert raised.value.retryable is True


async def test_stripe_sdk_retries_reuse_our_idempotency_key(fake_stripe: FakeApi) -> None:
    payouts = StripeConnectPayouts(API_KEY, api_base=fake_stripe.base_url, max_network_retries=1)
    fake_stripe.replies["/v1/transfers"] = [stripe_error(500, "api_error", "Try again", "x")]
    try:
        result = await payouts.transfer(
            payout_id="po-4",
            destination="acct_1StagecastCreator",
            amount_cents=100,
            currency="usd",
            idempotency_key="payout-po-4",
        )
    finally:
        await payouts.aclose()
    assert result.status == "paid"
    keys = [r.headers["Idempotency-Key"] for r in fake_stripe.to("/v1/transfers")]
    assert keys == ["payout-po-4", "payout-po-4"]


async def test_stripe_finds_a_payouts_transfer_by_its_group(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts
) -> None:
    assert await connect_payouts.find_transfer(payout_id="po-6") is None
    made = await connect_payouts.transfer(
        payout_id="po-6", destination="acct_1StagecastCreator", amount_cents=100,
        currency="usd", idempotency_key="payout-po-6",
    )  # fmt: skip
    assert await connect_payouts.find_transfer(payout_id="po-6") == made
    assert await connect_payouts.find_transfer(payout_id="po-7") is None
    lookups = [r for r in fake_stripe.to("/v1/transfers") if r.method == "GET"]
    assert [r.query for r in lookups] == [
        {"transfer_group": "payout-po-6", "limit": "1"},
        {"transfer_group": "payout-po-6", "limit": "1"},
        {"transfer_group": "payout-po-7", "limit": "1"},
    ]
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in lookups)
    fake_stripe.replies["/v1/transfers"] = [stripe_error(500, "api_error", "Try again", "x")]
    with pytest.raises(TransferFailed) as raised:
        await connect_payouts.find_transfer(payout_id="po-6")
    assert raised.value.retryable is True


async def test_stripe_transfer_needs_a_connected_account(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts
) -> None:
    with pytest.raises(TransferFailed) as raised:
        await connect_payouts.transfer(
            payout_id="po-5",
            destination="user:0190f0c2",
            amount_cents=100,
            currency="usd",
            idempotency_key="payout-po-5",
        )
    assert raised.value.retryable is False
    assert fake_stripe.received == []


async def test_stripe_onboarding_creates_an_express_account_then_a_link(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts
) -> None:
    link = await connect_payouts.onboarding_link(
        account_ref=None,
        user_id=USER_ID,
        email="creator@example.com",
        return_url="https://stagecast.example/dashboard/payouts",
        refresh_url="https://stagecast.example/dashboard/payouts?retry=1",
    )
    assert link.account_ref == "acct_1StagecastCreator"
    assert link.url == "https://connect.stripe.com/setup/e/acct_1StagecastCreator/onboard"
    account, account_link = fake_stripe.received
    assert account.path == "/v1/accounts"
    assert account.headers["Idempotency-Key"] == f"connect-account-{USER_ID}"
    assert account.form == {
        "type": "express",
        "email": "creator@example.com",
        "capabilities[transfers][requested]": "true",
        "metadata[user_id]": USER_ID,
    }
    assert account_link.path == "/v1/account_links"
    assert account_link.form == {
        "account": "acct_1StagecastCreator",
        "type": "account_onboarding",
        "return_url": "https://stagecast.example/dashboard/payouts",
        "refresh_url": "https://stagecast.example/dashboard/payouts?retry=1",
    }


async def test_stripe_onboarding_reuses_a_known_account(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts
) -> None:
    link = await connect_payouts.onboarding_link(
        account_ref="acct_1Existing",
        user_id=USER_ID,
        email="creator@example.com",
        return_url="https://stagecast.example/r",
        refresh_url="https://stagecast.example/f",
    )
    assert link.account_ref == "acct_1Existing"
    assert [r.path for r in fake_stripe.received] == ["/v1/account_links"]


async def test_stripe_onboarding_failure_is_a_provider_error(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts
) -> None:
    fake_stripe.replies["/v1/accounts"] = [
        stripe_error(400, "invalid_request_error", "Connect is not enabled", "platform_not_enabled")
    ]
    with pytest.raises(ProviderError, match="could not start the onboarding") as raised:
        await connect_payouts.onboarding_link(
            account_ref=None,
            user_id=USER_ID,
            email="creator@example.com",
            return_url="https://stagecast.example/r",
            refresh_url="https://stagecast.example/f",
        )
    assert "Connect is not enabled" in str(raised.value.__cause__)


@pytest.mark.parametrize(
    ("transfers", "ready"), [("active", True), ("inactive", False), ("pending", False)]
)
async def test_stripe_account_is_ready_when_transfers_are_active(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts, transfers: str, ready: bool
) -> None:
    path = "/v1/accounts/acct_1Stagecast"
    fake_stripe.replies[path] = [(200, connected_account("acct_1Stagecast", transfers=transfers))]
    assert await connect_payouts.account_ready(account_ref="acct_1Stagecast") is ready
    (asked,) = fake_stripe.received
    assert (asked.method, asked.path) == ("GET", path)


async def test_stripe_account_check_failure_is_a_provider_error(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts
) -> None:
    fake_stripe.replies["/v1/accounts/acct_gone"] = [
        stripe_error(404, "invalid_request_error", "No such account", "resource_missing")
    ]
    with pytest.raises(ProviderError, match="could not read the connected account"):
        await connect_payouts.account_ready(account_ref="acct_gone")


async def test_onboarding_keeps_the_stripe_account_and_balance_sees_it_connected(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts, client: Any, app: Any
) -> None:
    """Seed 003 over HTTP with Stripe Connect: the onboarding answer has `onboarding_url`,
    the account is created once and reused, and `/sell/balance` says `connected` once
    Stripe made its transfers active (the creator came back from onboarding)."""
    app.state.runtime.payout_provider = connect_payouts
    creator = await register(client)
    balance = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert balance["connected"] is False  # no account yet: Stripe is not even asked
    assert fake_stripe.received == []

    first = await client.post("/api/v1/sell/connect/onboard", headers=creator.headers)
    assert first.status_code == 200, first.text
    answer = first.json()
    onboard_url = "https://connect.stripe.com/setup/e/acct_1StagecastCreator/onboard"
    assert answer == {
        "onboarding_url": onboard_url, "url": onboard_url,
        "account_ref": "acct_1StagecastCreator", "connected": False,
    }  # fmt: skip
    assert [r.path for r in fake_stripe.received] == [
        "/v1/accounts", "/v1/account_links", "/v1/accounts/acct_1StagecastCreator",
    ]  # fmt: skip

    still = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert still["connected"] is False  # Stripe still says inactive
    path = "/v1/accounts/acct_1StagecastCreator"
    active = connected_account("acct_1StagecastCreator", transfers="active")
    fake_stripe.replies[path] = [(200, active), (200, active)]  # the balance, then onboarding
    done = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert done["connected"] is True
    asked = len(fake_stripe.received)
    again = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert again["connected"] is True
    assert len(fake_stripe.received) == asked  # recorded: Stripe is not asked again

    second = await client.post("/api/v1/sell/connect/onboard", headers=creator.headers)
    assert second.json()["account_ref"] == "acct_1StagecastCreator"
    assert second.json()["connected"] is True
    assert len(fake_stripe.to("/v1/accounts")) == 1  # the account was reused, not made again


async def test_a_failing_stripe_does_not_fail_the_balance(
    fake_stripe: FakeApi, connect_payouts: StripeConnectPayouts, client: Any, app: Any
) -> None:
    app.state.runtime.payout_provider = connect_payouts
    creator = await register(client)
    assert (await client.post("/api/v1/sell/connect/onboard", headers=creator.headers)).is_success
    fake_stripe.replies["/v1/accounts/acct_1StagecastCreator"] = [
        stripe_error(500, "api_error", "Something went wrong", "internal")
    ]
    balance = await client.get("/api/v1/sell/balance", headers=creator.headers)
    assert balance.status_code == 200, balance.text
    assert balance.json()["connected"] is False
    fake_stripe.replies["/v1/account_links"] = [
        stripe_error(500, "api_error", "Something went wrong", "internal")
    ]
    failed = await client.post("/api/v1/sell/connect/onboard", headers=creator.headers)
    assert (failed.status_code, failed.json()["code"]) == (502, "PAYMENT_PROVIDER_ERROR")


# --- sandbox payouts and retry schedule ----------------------------------------------------------


async def test_sandbox_payouts_succeed_fail_and_answer_repeats_once() -> None:
    payouts = SandboxPayouts(flaky={"acct_flaky"}, refused={"acct_closed"})
    kwargs: dict[str, Any] = {"payout_id": "po", "amount_cents": 100, "currency": "usd"}
    paid = await payouts.transfer(destination="acct_ok", idempotency_key="k1", **kwargs)
    assert paid.status == "paid"
    assert paid.provider_ref.startswith("sbx_tr_")
    assert await payouts.transfer(destination="acct_ok", idempotency_key="k1", **kwargs) == paid

    with pytest.raises(TransferFailed) as flaky:
        await payouts.transfer(destination="acct_flaky", idempotency_key="k2", **kwargs)
    assert flaky.value.retryable is True
    with pytest.raises(TransferFailed) as refused:
        await payouts.transfer(destination="acct_closed", idempotency_key="k3", **kwargs)
    assert refused.value.retryable is False

    payouts.flaky.clear()  # the network came back
    retried = await payouts.transfer(destination="acct_flaky", idempotency_key="k2", **kwargs)
    assert retried.status == "paid"
    assert len(payouts.transfers) == 2
    assert await payouts.find_transfer(payout_id="po") == retried
    assert await payouts.find_transfer(payout_id="another") is None


async def test_sandbox_onboarding_goes_straight_back() -> None:
    provider: PayoutProvider = SandboxPayouts()
    link = await provider.onboarding_link(
        account_ref=None,
        user_id="u1",
        email="c@example.com",
        return_url="http://localhost/back",
        refresh_url="http://localhost/again",
    )
    assert (link.account_ref, link.url) == ("sbx_acct_u1", "http://localhost/back")


def test_retry_delay_backs_off_and_caps() -> None:
    delays = [retry_delay(attempt) for attempt in range(1, 9)]
    assert delays[:5] == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=12),
    ]
    assert delays[5:] == [timedelta(hours=12)] * 3
    assert delays == sorted(delays)
    assert MAX_ATTEMPTS == 6
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(0)


# --- Hyperswitch ---------------------------------------------------------------------------------


@pytest.fixture
async def hyperswitch(fake_hyperswitch: FakeApi) -> AsyncIterator[HyperswitchProvider]:
    provider = HyperswitchProvider(
        "snd_test_api_key", HASH_KEY, api_base=fake_hyperswitch.base_url, profile_id="pro_1"
    )
    yield provider
    await provider.aclose()


async def test_hyperswitch_checkout_request_shape(
    fake_hyperswitch: FakeApi, hyperswitch: HyperswitchProvider
) -> None:
    checkout = await hyperswitch.create_checkout(
        purchase_id=PURCHASE_ID,
        user_id=USER_ID,
        tokens=1000,
        amount_cents=1000,
        currency="usd",
        success_url="https://stagecast.example/wallet?purchase=done",
        cancel_url="https://stagecast.example/wallet",
        idempotency_key=CHECKOUT_KEY,
    )
    assert checkout.provider == "hyperswitch"
    assert checkout.provider_ref == CHECKOUT_KEY  # our payment_id: Hyperswitch's idempotency
    assert checkout.redirect_url.endswith(f"/payment_link/merchant_stagecast/{CHECKOUT_KEY}")
    assert checkout.status == "requires_payment_method"
    [request] = fake_hyperswitch.received
    assert request.headers["api-key"] == "snd_test_api_key"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {
        "payment_id": CHECKOUT_KEY,
        "amount": 1000,
        "currency": "USD",
        "payment_link": True,
        "return_url": "https://stagecast.example/wallet?purchase=done",
        "description": "1000 tokens",
        "metadata": {"purchase_id": PURCHASE_ID, "user_id": USER_ID, "tokens": "1000"},
        "profile_id": "pro_1",
    }


async def test_hyperswitch_checkout_again_reads_back_the_payment_its_key_made(
    fake_hyperswitch: FakeApi, hyperswitch: HyperswitchProvider
) -> None:
    """A second create with the same payment_id is Hyperswitch's duplicate (HE_01): the
    payment the first made is read back, so a resumed checkout is the same payment."""
    asked: dict[str, Any] = {
        "purchase_id": PURCHASE_ID, "user_id": USER_ID, "tokens": 1000, "amount_cents": 1000,
        "currency": "usd", "success_url": "https://stagecast.example/ok",
        "cancel_url": "https://stagecast.example/no", "idempotency_key": CHECKOUT_KEY,
    }  # fmt: skip
    first = await hyperswitch.create_checkout(**asked)
    again = await hyperswitch.create_checkout(**asked)
    assert again == first
    assert [(r.method, r.path) for r in fake_hyperswitch.received] == [
        ("POST", "/payments"), ("POST", "/payments"), ("GET", f"/payments/{CHECKOUT_KEY}"),
    ]  # fmt: skip
    assert len(fake_hyperswitch.made("/payments")) == 1


@pytest.mark.parametrize(
    "reply",
    [
        (401, {"error": {"type": "invalid_request", "message": "API key not provided"}}),
        (500, {"error": {"type": "api", "message": "Something went wrong"}}),
        (200, {"payment_id": "pay_1", "status": "requires_payment_method"}),  # no payment link
    ],
)
async def test_hyperswitch_checkout_failure_is_a_provider_error(
    fake_hyperswitch: FakeApi, hyperswitch: HyperswitchProvider, reply: tuple[int, dict[str, Any]]
) -> None:
    fake_hyperswitch.replies["/payments"] = [reply]
    with pytest.raises(ProviderError):
        await hyperswitch.create_checkout(
            purchase_id=PURCHASE_ID,
            user_id=USER_ID,
            tokens=100,
            amount_cents=100,
            currency="usd",
            success_url="https://stagecast.example/ok",
            cancel_url="https://stagecast.example/no",
            idempotency_key=CHECKOUT_KEY,
        )


async def test_hyperswitch_unreachable_is_a_provider_error() -> None:
    provider = HyperswitchProvider("k", HASH_KEY, api_base=f"http://127.0.0.1:{closed_port()}")
    try:
        with pytest.raises(ProviderError, match="Hyperswitch could not start the checkout"):
            await provider.create_checkout(
                purchase_id=PURCHASE_ID,
                user_id=USER_ID,
                tokens=100,
                amount_cents=100,
                currency="usd",
                success_url="https://stagecast.example/ok",
                cancel_url="https://stagecast.example/no",
                idempotency_key=CHECKOUT_KEY,
            )
    finally:
        await provider.aclose()


def hyperswitch_event(event_type: str, content_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "merchant_id": "merchant_stagecast",
            "event_id": f"evt_{event_type}_1",
            "event_type": event_type,
            "content": {"type": content_type, "object": obj},
            "timestamp": "2025-06-01T12:00:00.000Z",
        }
    ).encode()


def hyperswitch_signed(payload: bytes, key: str = HASH_KEY) -> dict[str, str]:
    # As Hyperswitch documents it: hex HMAC-SHA512 of the body under payment_response_hash_key.
    return {"x-webhook-signature-512": hmac.new(key.encode(), payload, hashlib.sha512).hexdigest()}


HS_PAYMENT = {
    "payment_id": "pay_Stagecast0001",
    "status": "succeeded",
    "amount": 1000,
    "amount_received": 1000,
    "currency": "USD",
    "metadata": {"purchase_id": PURCHASE_ID, "user_id": USER_ID, "tokens": "1000"},
}


@pytest.mark.parametrize(
    ("event_type", "content_type", "obj", "expected"),
    [
        (
            "payment_succeeded",
            "payment_details",
            HS_PAYMENT,
            ("payment_succeeded", PURCHASE_ID, 1000),
        ),
        (
            "refund_succeeded",
            "refund_details",
            {
                "refund_id": "ref_1",
                "payment_id": "pay_Stagecast0001",
                "amount": 1000,
                "currency": "USD",
                "status": "succeeded",
                "metadata": None,
            },
            ("payment_refunded", None, 1000),
        ),
        (
            "dispute_opened",
            "dispute_details",
            {
                "dispute_id": "dp_1",
                "payment_id": "pay_Stagecast0001",
                "amount": "1000",
                "currency": "USD",
                "dispute_stage": "dispute",
                "dispute_status": "dispute_opened",
            },
            ("payment_disputed", None, 1000),
        ),
        (
            "payment_failed",
            "payment_details",
            {**HS_PAYMENT, "status": "failed", "amount_received": None},
            ("ignored", PURCHASE_ID, 1000),
        ),
    ],
)
def test_hyperswitch_event_mapping(
    hyperswitch: HyperswitchProvider,
    event_type: str,
    content_type: str,
    obj: dict[str, Any],
    expected: tuple[str, str | None, int],
) -> None:
    payload = hyperswitch_event(event_type, content_type, obj)
    event = hyperswitch.verify_webhook(payload, hyperswitch_signed(payload))
    kind, purchase_id, amount = expected
    assert event.event_id == f"evt_{event_type}_1"
    assert event.raw_type == event_type
    assert (event.kind, event.purchase_id, event.amount_cents) == (kind, purchase_id, amount)
    assert event.provider_ref == event.payment_ref == "pay_Stagecast0001"
    assert event.currency == "usd"


def test_hyperswitch_rejects_bad_signatures(hyperswitch: HyperswitchProvider) -> None:
    payload = hyperswitch_event("payment_succeeded", "payment_details", HS_PAYMENT)
    headers = hyperswitch_signed(payload)
    assert hyperswitch.sign(payload) == headers["x-webhook-signature-512"]
    with pytest.raises(WebhookRejected, match="missing"):
        hyperswitch.verify_webhook(payload, {})
    with pytest.raises(WebhookRejected, match="does not match"):
        hyperswitch.verify_webhook(payload.replace(b"1000", b"9000"), headers)
    with pytest.raises(WebhookRejected, match="does not match"):
        hyperswitch.verify_webhook(payload, hyperswitch_signed(payload, key="another-key"))
    sha256 = hmac.new(HASH_KEY.encode(), payload, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejected, match="does not match"):
        hyperswitch.verify_webhook(payload, {"X-Webhook-Signature-512": sha256})


@pytest.mark.parametrize("payload", [b"{not json", b"[]", b'{"event_type": "payment_succeeded"}'])
def test_hyperswitch_rejects_signed_malformed_bodies(
    hyperswitch: HyperswitchProvider, payload: bytes
) -> None:
    with pytest.raises(WebhookRejected):
        hyperswitch.verify_webhook(payload, hyperswitch_signed(payload))


# --- choosing providers from settings ------------------------------------------------------------


async def test_build_providers_from_settings() -> None:
    default = MoneySettings()
    assert isinstance(
        build_payment_provider(default, sandbox_secret=b"s", base_url="http://x"), SandboxProvider
    )
    assert isinstance(build_payout_provider(default), SandboxPayouts)

    with pytest.raises(ValueError, match="STRIPE_API_KEY"):
        build_payment_provider(
            MoneySettings(payment_provider="stripe"), sandbox_secret=b"s", base_url="http://x"
        )
    with pytest.raises(ValueError, match="STRIPE_API_KEY"):
        build_payout_provider(MoneySettings(payout_provider="stripe"))
    with pytest.raises(ValueError, match="HYPERSWITCH_API_KEY"):
        build_payment_provider(
            MoneySettings(payment_provider="hyperswitch"), sandbox_secret=b"s", base_url="x"
        )

    configured = MoneySettings(
        payment_provider="stripe",
        payout_provider="stripe",
        stripe_api_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        hyperswitch_api_key="snd_k",
        hyperswitch_webhook_secret=HASH_KEY,
    )
    payments = build_payment_provider(configured, sandbox_secret=b"s", base_url="http://x")
    payouts = build_payout_provider(configured)
    hyper = build_payment_provider(
        configured.model_copy(update={"payment_provider": "hyperswitch"}),
        sandbox_secret=b"s",
        base_url="http://x",
    )
    assert isinstance(payments, StripeProvider)
    assert isinstance(payouts, StripeConnectPayouts)
    assert isinstance(hyper, HyperswitchProvider)
    for closable in (payments, payouts, hyper):
        await closable.aclose()
