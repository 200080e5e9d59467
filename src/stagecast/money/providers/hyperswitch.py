"""Hyperswitch: payments through its REST API (payment links), webhooks signed with
HMAC-SHA512."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

import httpx

from stagecast.money.providers.base import (
    PROVIDER_TIMEOUT_SECONDS,
    Checkout,
    PaymentEvent,
    PaymentKind,
    WebhookRejected,
    cents_of,
    currency_of,
    header_of,
    json_object,
    mapping_of,
    provider_failed,
    text_of,
)

_HYPERSWITCH_KINDS: Final[Mapping[str, PaymentKind]] = {
    "payment_succeeded": "payment_succeeded",
    "refund_succeeded": "payment_refunded",
    "dispute_opened": "payment_disputed",
}


# Hyperswitch's error code for a `payment_id` it already has ("The payment with the specified
# payment_id already exists in our records").
DUPLICATE_PAYMENT: Final = "HE_01"


class HyperswitchProvider:
    """Hyperswitch payments: a payment link per purchase. Webhooks carry the hex HMAC-SHA512 of
    the raw body under the profile's `payment_response_hash_key` in `X-Webhook-Signature-512`.
    They sign no timestamp, so a replay is caught by `event_id` alone (the caller's job)."""

    name = "hyperswitch"
    SIGNATURE_HEADER: Final = "X-Webhook-Signature-512"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str = "https://sandbox.hyperswitch.io",
        profile_id: str | None = None,
        timeout: float = PROVIDER_TIMEOUT_SECONDS,
    ) -> None:
        if not webhook_secret:
            raise ValueError("Hyperswitch webhooks need the payment response hash key")
        self._api_key = api_key
        self._webhook_secret = webhook_secret.encode()
        self._profile_id = profile_id
        self._http = httpx.AsyncClient(base_url=api_base.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

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
        """Create a payment with a hosted payment link (`POST /payments`, `payment_link: true`).

        Hyperswitch's idempotency is the `payment_id` we choose (the idempotency key): a second
        create with it is refused as a duplicate (`HE_01`), and the payment made the first time
        is read back instead. Hyperswitch has one `return_url` and reports the outcome on it, so
        `cancel_url` is not sent."""
        body: dict[str, Any] = {
            "payment_id": idempotency_key,
            "amount": amount_cents,
            "currency": currency.upper(),
            "payment_link": True,
            "return_url": success_url,
            "description": f"{tokens} tokens",
            "metadata": {"purchase_id": purchase_id, "user_id": user_id, "tokens": str(tokens)},
        }
        if self._profile_id:
            body["profile_id"] = self._profile_id
        payment = await self._request("POST", "/payments", json=body)
        if payment is None:  # made by an earlier attempt with this key
            payment = await self._request("GET", f"/payments/{idempotency_key}")
        if payment is None:
            raise provider_failed("Hyperswitch", "start the checkout", "duplicate, then missing")
        payment_id = text_of(payment, "payment_id")
        link = text_of(mapping_of(payment, "payment_link"), "link")
        if not payment_id or not link:
            reason = "no payment_id or payment_link.link in the answer"
            raise provider_failed("Hyperswitch", "start the checkout", reason)
        return Checkout(
            provider=self.name,
            provider_ref=payment_id,
            redirect_url=link,
            status=text_of(payment, "status") or "requires_payment_method",
        )

    async def _request(
        self, method: str, path: str, *, json: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The JSON object Hyperswitch answered; None when it refused a duplicate `payment_id`."""
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                headers={"api-key": self._api_key, "Accept": "application/json"},
            )
        except httpx.HTTPError as error:
            raise provider_failed("Hyperswitch", "start the checkout", repr(error)) from error
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            refusal = mapping_of(answer, "error") if isinstance(answer, dict) else {}
            if response.status_code == 400 and text_of(refusal, "code") == DUPLICATE_PAYMENT:
                return None
            reason = f"HTTP {response.status_code}: {response.text[:500]}"
            raise provider_failed("Hyperswitch", "start the checkout", reason)
        if not isinstance(answer, dict):
            raise provider_failed("Hyperswitch", "start the checkout", "not a JSON object")
        return answer

    def sign(self, payload: bytes) -> str:
        """The `X-Webhook-Signature-512` value Hyperswitch sends with `payload`."""
        return hmac.new(self._webhook_secret, payload, hashlib.sha512).hexdigest()

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Check the HMAC-SHA512 signature and map the event to a payment kind."""
        signature = header_of(headers, self.SIGNATURE_HEADER)
        if not signature:
            raise WebhookRejected(f"missing {self.SIGNATURE_HEADER} header")
        if not hmac.compare_digest(self.sign(payload), signature.strip().lower()):
            raise WebhookRejected("the signature does not match")
        body = json_object(payload)
        event_id, raw_type = text_of(body, "event_id"), text_of(body, "event_type")
        if not event_id or not raw_type:
            raise WebhookRejected("the Hyperswitch event has no event_id or event_type")
        obj = mapping_of(mapping_of(body, "content"), "object")
        payment_id = text_of(obj, "payment_id")
        kind = _HYPERSWITCH_KINDS.get(raw_type, "ignored")
        amount = cents_of(obj, "amount")
        if kind == "payment_succeeded":
            amount = cents_of(obj, "amount_received") or amount
        return PaymentEvent(
            event_id=event_id,
            kind=kind,
            purchase_id=text_of(mapping_of(obj, "metadata"), "purchase_id"),
            provider_ref=payment_id,
            amount_cents=amount,
            currency=currency_of(obj),
            raw_type=raw_type,
            payment_ref=payment_id,
        )
