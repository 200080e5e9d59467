"""Stripe: Checkout for payments, Connect transfers for payouts (the official SDK, async over
httpx)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import stripe

from stagecast.money.providers.base import (
    PROVIDER_TIMEOUT_SECONDS,
    WEBHOOK_TOLERANCE_SECONDS,
    Checkout,
    OnboardingLink,
    PaymentEvent,
    PaymentKind,
    TransferFailed,
    TransferResult,
    WebhookRejected,
    cents_of,
    currency_of,
    header_of,
    mapping_of,
    provider_failed,
    text_of,
)


def _stripe_client(
    api_key: str, api_base: str | None, max_network_retries: int, timeout: float
) -> tuple[stripe.StripeClient, stripe.HTTPXClient]:
    # The SDK's async methods need an async HTTP client; httpx is the one it prefers.
    http_client = stripe.HTTPXClient(timeout=timeout)
    client = stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=http_client,
    )
    return client, http_client


def _stripe_errortext_field(error: stripe.StripeError) -> str:
    return error.user_message or str(error) or type(error).__name__


class StripeProvider:
    """Stripe Checkout: a hosted payment page per purchase; webhooks verified with the SDK."""

    name = "stripe"
    SIGNATURE_HEADER: Final = "Stripe-Signature"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout: float = PROVIDER_TIMEOUT_SECONDS,
        tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
    ) -> None:
        self._client, self._http = _stripe_client(api_key, api_base, max_network_retries, timeout)
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_checkout(
        self,
        *,
        purchase_id: str,
        user_id: str,
        tokens: int,
        amount_cents: int,
        currency: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> Checkout:
        """Create a Checkout Session in payment mode for one package of tokens; Stripe answers
        a repeated `Idempotency-Key` with the session it made the first time."""
        metadata = {"purchase_id": purchase_id, "user_id": user_id, "tokens": str(tokens)}
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                {
                    "mode": "payment",
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": currency.lower(),
                                "unit_amount": amount_cents,
                                "product_data": {"name": f"{tokens} tokens"},
                            },
                        }
                    ],
                    "client_reference_id": purchase_id,
                    "metadata": metadata,
                    # Copied onto the PaymentIntent so that its own events name the purchase.
                    "payment_intent_data": {"metadata": metadata},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                },
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise provider_failed("Stripe", "start the checkout", str(error)) from error
        if not session.url:
            raise provider_failed("Stripe", "start the checkout", "a session without a URL")
        return Checkout(
            provider=self.name,
            provider_ref=session.id,
            redirect_url=session.url,
            status=session.status or "open",
        )

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Verify `Stripe-Signature` with the SDK and map the event to a payment kind."""
        signature = header_of(headers, self.SIGNATURE_HEADER)
        if not signature:
            raise WebhookRejected(f"missing {self.SIGNATURE_HEADER} header")
        try:
            event = self._client.construct_event(
                payload, signature, self._webhook_secret, tolerance=self._tolerance
            )
        except stripe.SignatureVerificationError as error:
            raise WebhookRejected(f"Stripe signature: {error.user_message or error}") from error
        except ValueError as error:  # signed, but not a Stripe event's JSON
            raise WebhookRejected("the webhook body is not a Stripe event") from error
        return stripe_payment_event(event.to_dict())


def stripe_payment_event(event: Mapping[str, Any]) -> PaymentEvent:
    """Map a verified Stripe event (as a dict) to what the ledger acts on."""
    event_id, raw_type = text_of(event, "id"), text_of(event, "type")
    if not event_id or not raw_type:
        raise WebhookRejected("the Stripe event has no id or type")
    obj = mapping_of(mapping_of(event, "data"), "object")
    metadata = mapping_of(obj, "metadata")
    purchase_id = text_of(metadata, "purchase_id")
    kind: PaymentKind = "ignored"
    provider_ref = payment_ref = None
    amount: int | None = None
    if raw_type in {"checkout.session.completed", "checkout.session.async_payment_succeeded"}:
        # A completed session may still be unpaid (delayed methods): that is not money yet.
        if obj.get("payment_status") == "paid":
            kind = "payment_succeeded"
        purchase_id = text_of(obj, "client_reference_id") or purchase_id
        provider_ref, payment_ref = text_of(obj, "id"), text_of(obj, "payment_intent")
        amount = cents_of(obj, "amount_total")
    elif raw_type == "payment_intent.succeeded":
        kind, payment_ref = "payment_succeeded", text_of(obj, "id")
        amount = cents_of(obj, "amount_received") or cents_of(obj, "amount")
    elif raw_type == "charge.refunded":
        kind, payment_ref = "payment_refunded", text_of(obj, "payment_intent")
        amount = cents_of(obj, "amount_refunded")
    elif raw_type == "charge.dispute.created":
        kind, payment_ref = "payment_disputed", text_of(obj, "payment_intent")
        amount = cents_of(obj, "amount")
    return PaymentEvent(
        event_id=event_id,
        kind=kind,
        purchase_id=purchase_id,
        provider_ref=provider_ref,
        amount_cents=amount,
        currency=currency_of(obj),
        raw_type=raw_type,
        payment_ref=payment_ref,
    )


class StripeConnectPayouts:
    """Payouts as Stripe Connect transfers to the creator's Express account."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout: float = PROVIDER_TIMEOUT_SECONDS,
    ) -> None:
        self._client, self._http = _stripe_client(api_key, api_base, max_network_retries, timeout)

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def transfer(
        self,
        *,
        payout_id: str,
        destination: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
    ) -> TransferResult:
        """Transfer to a connected account; the idempotency key makes retries pay once."""
        if not destination.startswith("acct_"):
            raise TransferFailed("the creator has no connected Stripe account yet", retryable=False)
        try:
            transfer = await self._client.v1.transfers.create_async(
                {
                    "amount": amount_cents,
                    "currency": currency.lower(),
                    "destination": destination,
                    "transfer_group": _transfer_group(payout_id),
                    "metadata": {"payout_id": payout_id},
                },
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise _transfer_failed(error) from error
        return _transfer_result(transfer)

    async def find_transfer(self, *, payout_id: str) -> TransferResult | None:
        """The transfer of the payout's transfer group, if Stripe made one."""
        try:
            found = await self._client.v1.transfers.list_async(
                {"transfer_group": _transfer_group(payout_id), "limit": 1}
            )
        except stripe.StripeError as error:
            raise _transfer_failed(error) from error
        return _transfer_result(found.data[0]) if found.data else None

    async def onboarding_link(
        self,
        *,
        account_ref: str | None,
        user_id: str,
        email: str | None,
        return_url: str,
        refresh_url: str,
    ) -> OnboardingLink:
        """An Express account (created on first use) and its hosted onboarding link."""
        try:
            if account_ref is None:
                account = await self._client.v1.accounts.create_async(
                    {
                        "type": "express",
                        # Left out under Do Not Sell: Stripe's page asks the creator.
                        **({"email": email} if email else {}),
                        "capabilities": {"transfers": {"requested": True}},
                        "metadata": {"user_id": user_id},
                    },
                    # A double click must not open two accounts for one creator.
                    {"idempotency_key": f"connect-account-{user_id}"},
                )
                account_ref = account.id
            link = await self._client.v1.account_links.create_async(
                {
                    "account": account_ref,
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                    "type": "account_onboarding",
                }
            )
        except stripe.StripeError as error:
            raise provider_failed("Stripe", "start the onboarding", str(error)) from error
        return OnboardingLink(account_ref=account_ref, url=link.url)

    async def account_ready(self, *, account_ref: str) -> bool:
        """Onboarding is done when Stripe made the transfers capability active."""
        try:
            account = await self._client.v1.accounts.retrieve_async(account_ref)
        except stripe.StripeError as error:
            raise provider_failed("Stripe", "read the connected account", str(error)) from error
        capabilities = account.capabilities
        return capabilities is not None and capabilities.transfers == "active"


def _transfer_group(payout_id: str) -> str:
    # Every attempt at one payout names the same group: what find_transfer looks for.
    return f"payout-{payout_id}"


def _transfer_result(transfer: stripe.Transfer) -> TransferResult:
    if transfer.reversed:
        return TransferResult(transfer.id, "failed", "the transfer was reversed")
    return TransferResult(provider_ref=transfer.id, status="paid")


def _transfer_failed(error: stripe.StripeError) -> TransferFailed:
    status = error.http_status
    retryable = (
        isinstance(error, stripe.APIConnectionError | stripe.RateLimitError)
        or status is None
        or status >= 500
        or (status == 409 and not isinstance(error, stripe.IdempotencyError))
    )
    code = error.code or (error.error.code if error.error else None)
    return TransferFailed(_stripe_errortext_field(error), retryable=retryable, code=code)
