"""The sandbox: development payments and payouts that MOVE NO REAL MONEY."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from typing import Final

from stagecast.money.providers.base import (
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
    json_object,
    mapping_of,
    text_of,
)

_KINDS: Final[Mapping[str, PaymentKind]] = {
    "payment_succeeded": "payment_succeeded",
    "payment_refunded": "payment_refunded",
    "payment_disputed": "payment_disputed",
}


class SandboxProvider:
    """Development payments: MOVES NO REAL MONEY.

    The checkout "redirect" is our own confirm page; confirming it builds an event signed like
    Stripe's (`t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`) that the app posts to itself and
    verifies exactly like a real provider's, so the whole purchase path runs without a provider.
    """

    name = "sandbox"
    SIGNATURE_HEADER: Final = "Stagecast-Sandbox-Signature"

    def __init__(
        self,
        secret: bytes,
        base_url: str,
        *,
        tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the sandbox needs a signing secret")
        self._secret = secret
        self._base_url = base_url.rstrip("/")
        self._tolerance = tolerance
        self._clock = clock
        # Like a real provider, a repeated idempotency key answers the first checkout again.
        self.checkouts: dict[str, Checkout] = {}

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
        """A checkout whose page is our own sandbox confirm URL (no money moves)."""
        if idempotency_key not in self.checkouts:
            self.checkouts[idempotency_key] = Checkout(
                provider=self.name,
                provider_ref=f"sbx_{secrets.token_hex(12)}",
                redirect_url=f"{self._base_url}/api/v1/wallet/sandbox/checkout/{purchase_id}",
                status="open",
            )
        return self.checkouts[idempotency_key]

    def sign(self, payload: bytes, timestamp: int) -> str:
        """The signature header value for `payload` sent at `timestamp` (Unix seconds)."""
        return f"t={timestamp},v1={self._digest(payload, timestamp)}"

    def _digest(self, payload: bytes, timestamp: int) -> str:
        return hmac.new(self._secret, b"%d." % timestamp + payload, hashlib.sha256).hexdigest()

    def build_event(
        self,
        kind: PaymentKind,
        *,
        purchase_id: str,
        provider_ref: str,
        amount_cents: int,
        currency: str,
    ) -> tuple[bytes, dict[str, str]]:
        """A signed sandbox webhook (body and headers) saying `kind` happened to a purchase."""
        now = int(self._clock())
        payload = json.dumps(
            {
                "id": f"sbx_evt_{secrets.token_hex(12)}",
                "type": f"sandbox.{kind}",
                "created": now,
                "data": {
                    "purchase_id": purchase_id,
                    "provider_ref": provider_ref,
                    "amount_cents": amount_cents,
                    "currency": currency,
                },
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            self.SIGNATURE_HEADER: self.sign(payload, now),
        }
        return payload, headers

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Check the signature and age of a sandbox event and read it."""
        header = header_of(headers, self.SIGNATURE_HEADER)
        if not header:
            raise WebhookRejected(f"missing {self.SIGNATURE_HEADER} header")
        timestamp, signatures = _parse_signatureheader_value(header)
        expected = self._digest(payload, timestamp)
        # Constant-time comparison: a timing oracle would let anyone forge a signature.
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise WebhookRejected("the signature does not match")
        if abs(self._clock() - timestamp) > self._tolerance:
            raise WebhookRejected("the signature timestamp is outside the tolerance")
        body = json_object(payload)
        event_id, raw_type, data = (
            text_of(body, "id"),
            text_of(body, "type"),
            mapping_of(body, "data"),
        )
        if not event_id or not raw_type:
            raise WebhookRejected("the event has no id or type")
        return PaymentEvent(
            event_id=event_id,
            kind=_KINDS.get(raw_type.removeprefix("sandbox."), "ignored"),
            purchase_id=text_of(data, "purchase_id"),
            provider_ref=text_of(data, "provider_ref"),
            amount_cents=cents_of(data, "amount_cents"),
            currency=currency_of(data),
            raw_type=raw_type,
            payment_ref=text_of(data, "provider_ref"),
        )


def _parse_signatureheader_value(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRejected("the signature header has no timestamp or no v1 signature")
    return timestamp, signatures


class SandboxPayouts:
    """Development payouts: MOVES NO REAL MONEY. Every transfer is "paid" at once, except to
    `flaky` destinations (a retryable failure) and `refused` ones (a permanent failure), which
    tests use to drive retries; both sets can be changed between attempts."""

    name = "sandbox"

    def __init__(self, *, flaky: Collection[str] = (), refused: Collection[str] = ()) -> None:
        self.flaky = set(flaky)
        self.refused = set(refused)
        # Like a real provider, a repeated idempotency key answers the first transfer again.
        self.transfers: dict[str, TransferResult] = {}
        self._by_payout: dict[str, TransferResult] = {}

    async def transfer(
        self,
        *,
        payout_id: str,
        destination: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
    ) -> TransferResult:
        """Pretend to send `amount_cents` to `destination`."""
        if idempotency_key in self.transfers:
            return self.transfers[idempotency_key]
        if amount_cents <= 0:
            raise TransferFailed("the amount must be positive", retryable=False)
        if destination in self.refused:
            raise TransferFailed(f"{destination} refuses transfers", retryable=False)
        if destination in self.flaky:
            raise TransferFailed(f"{destination} is unreachable (sandbox)", retryable=True)
        result = TransferResult(provider_ref=f"sbx_tr_{secrets.token_hex(12)}", status="paid")
        self.transfers[idempotency_key] = self._by_payout[payout_id] = result
        return result

    async def find_transfer(self, *, payout_id: str) -> TransferResult | None:
        """The transfer this sandbox made for the payout, if it made one."""
        return self._by_payout.get(payout_id)

    async def onboarding_link(
        self,
        *,
        account_ref: str | None,
        user_id: str,
        email: str | None,
        return_url: str,
        refresh_url: str,
    ) -> OnboardingLink:
        """No onboarding in the sandbox: the link leads straight back to `return_url`."""
        return OnboardingLink(account_ref=account_ref or f"sbx_acct_{user_id}", url=return_url)

    async def account_ready(self, *, account_ref: str) -> bool:
        """Every sandbox account is ready: there is nothing to fill in."""
        return True
