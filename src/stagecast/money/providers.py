"""Payment and payout providers: where money enters (checkouts, verified webhooks) and leaves
(transfers to creators). No database here: purchases and payouts call these and keep the books.

- `SandboxProvider` / `SandboxPayouts`: development only, they move no real money.
- `StripeProvider` / `StripeConnectPayouts`: the official `stripe` SDK, async over httpx.
- `HyperswitchProvider`: payments through Hyperswitch's REST API (payment links).

Every webhook is verified (signature, and age where the provider signs a timestamp) before a
byte of it is trusted; `PaymentEvent.event_id` is the provider's own id so that the caller can
act on each event exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal, Protocol

import httpx
import stripe
import structlog

from stagecast.config import MoneySettings
from stagecast.errors import AppError

log = structlog.get_logger(__name__)

PaymentKind = Literal["payment_succeeded", "payment_refunded", "payment_disputed", "ignored"]
_KINDS: Final[Mapping[str, PaymentKind]] = {
    "payment_succeeded": "payment_succeeded",
    "payment_refunded": "payment_refunded",
    "payment_disputed": "payment_disputed",
}
TransferStatus = Literal["paid", "pending", "failed"]

# How old a signed webhook may be; Stripe's own default tolerance.
WEBHOOK_TOLERANCE_SECONDS: Final = 300

# Waits before each retry of a transfer that failed for a passing reason.
TRANSFER_RETRY_DELAYS: Final = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
MAX_TRANSFER_ATTEMPTS: Final = len(TRANSFER_RETRY_DELAYS) + 1


class WebhookRejected(Exception):
    """A webhook that is not provably the provider's: bad or missing signature, too old, or
    not the JSON the provider sends."""


class ProviderError(AppError):
    """The payment or payout provider failed or refused a request we made."""

    status, code, title = 502, "PAYMENT_PROVIDER_ERROR", "The payment provider failed"


def _provider_failed(provider: str, action: str, reason: str) -> ProviderError:
    # The provider's own words go to the log: they may name our account or keys.
    log.warning("payment_provider_failed", provider=provider, action=action, reason=reason)
    return ProviderError(f"{provider} could not {action}; try again later")


class TransferFailed(Exception):
    """A payout transfer the provider did not make; `retryable` when trying later may work."""

    def __init__(self, reason: str, *, retryable: bool, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.code = code


@dataclass(frozen=True, slots=True)
class Checkout:
    provider: str
    provider_ref: str
    redirect_url: str
    status: str


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A verified provider event, reduced to what the ledger needs.

    `provider_ref` is the reference `create_checkout` returned when the event names it;
    `payment_ref` is the provider's id of the payment itself (Stripe's PaymentIntent), which
    later refunds and disputes name when they carry no purchase id.
    """

    event_id: str
    kind: PaymentKind
    purchase_id: str | None
    provider_ref: str | None
    amount_cents: int | None
    currency: str | None
    raw_type: str
    payment_ref: str | None = None


@dataclass(frozen=True, slots=True)
class TransferResult:
    provider_ref: str
    status: TransferStatus
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OnboardingLink:
    account_ref: str
    url: str


class PaymentProvider(Protocol):
    name: str

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
    ) -> Checkout: ...

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> PaymentEvent: ...


class PayoutProvider(Protocol):
    name: str

    async def transfer(
        self,
        *,
        payout_id: str,
        destination: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
    ) -> TransferResult: ...

    async def onboarding_link(
        self,
        *,
        account_ref: str | None,
        user_id: str,
        email: str,
        return_url: str,
        refresh_url: str,
    ) -> OnboardingLink: ...

    async def account_ready(self, *, account_ref: str) -> bool:
        """Whether the account finished onboarding and can receive transfers."""
        ...


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after failed attempt number `attempt` (1-based) before the next."""
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    return TRANSFER_RETRY_DELAYS[min(attempt, len(TRANSFER_RETRY_DELAYS)) - 1]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Starlette's Headers ignore case; a plain dict (tests, the sandbox) may not.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise WebhookRejected("the webhook body is not JSON") from error
    if not isinstance(body, dict):
        raise WebhookRejected("the webhook body is not a JSON object")
    return body


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):  # an expanded Stripe object in place of its id
        return _text(value, "id")
    return None


def _cents(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():  # Hyperswitch sends dispute amounts as text
        return int(value)
    return None


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _currency(data: Mapping[str, Any]) -> str | None:
    value = _text(data, "currency")
    return value.lower() if value else None


# --- sandbox -----------------------------------------------------------------------------------


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
    ) -> Checkout:
        """A checkout whose page is our own sandbox confirm URL (no money moves)."""
        return Checkout(
            provider=self.name,
            provider_ref=f"sbx_{secrets.token_hex(12)}",
            redirect_url=f"{self._base_url}/api/v1/wallet/sandbox/checkout/{purchase_id}",
            status="open",
        )

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
        header = _header(headers, self.SIGNATURE_HEADER)
        if not header:
            raise WebhookRejected(f"missing {self.SIGNATURE_HEADER} header")
        timestamp, signatures = _parse_signature_header(header)
        expected = self._digest(payload, timestamp)
        # Constant-time comparison: a timing oracle would let anyone forge a signature.
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise WebhookRejected("the signature does not match")
        if abs(self._clock() - timestamp) > self._tolerance:
            raise WebhookRejected("the signature timestamp is outside the tolerance")
        body = _json_object(payload)
        event_id, raw_type, data = _text(body, "id"), _text(body, "type"), _mapping(body, "data")
        if not event_id or not raw_type:
            raise WebhookRejected("the event has no id or type")
        return PaymentEvent(
            event_id=event_id,
            kind=_KINDS.get(raw_type.removeprefix("sandbox."), "ignored"),
            purchase_id=_text(data, "purchase_id"),
            provider_ref=_text(data, "provider_ref"),
            amount_cents=_cents(data, "amount_cents"),
            currency=_currency(data),
            raw_type=raw_type,
            payment_ref=_text(data, "provider_ref"),
        )


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
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
        self.transfers[idempotency_key] = result
        return result

    async def onboarding_link(
        self,
        *,
        account_ref: str | None,
        user_id: str,
        email: str,
        return_url: str,
        refresh_url: str,
    ) -> OnboardingLink:
        """No onboarding in the sandbox: the link leads straight back to `return_url`."""
        return OnboardingLink(account_ref=account_ref or f"sbx_acct_{user_id}", url=return_url)

    async def account_ready(self, *, account_ref: str) -> bool:
        """Every sandbox account is ready: there is nothing to fill in."""
        return True


# --- Stripe ------------------------------------------------------------------------------------


def _stripe_client(
    api_key: str, api_base: str | None, max_network_retries: int
) -> tuple[stripe.StripeClient, stripe.HTTPXClient]:
    # The SDK's async methods need an async HTTP client; httpx is the one it prefers.
    http_client = stripe.HTTPXClient()
    client = stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=http_client,
    )
    return client, http_client


def _stripe_error_text(error: stripe.StripeError) -> str:
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
        tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
    ) -> None:
        self._client, self._http = _stripe_client(api_key, api_base, max_network_retries)
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
    ) -> Checkout:
        """Create a Checkout Session in payment mode for one package of tokens."""
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
                # One session per purchase, however often a flaky network makes us ask.
                {"idempotency_key": f"checkout-{purchase_id}"},
            )
        except stripe.StripeError as error:
            raise _provider_failed("Stripe", "start the checkout", str(error)) from error
        if not session.url:
            raise _provider_failed("Stripe", "start the checkout", "a session without a URL")
        return Checkout(
            provider=self.name,
            provider_ref=session.id,
            redirect_url=session.url,
            status=session.status or "open",
        )

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Verify `Stripe-Signature` with the SDK and map the event to a payment kind."""
        signature = _header(headers, self.SIGNATURE_HEADER)
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
    event_id, raw_type = _text(event, "id"), _text(event, "type")
    if not event_id or not raw_type:
        raise WebhookRejected("the Stripe event has no id or type")
    obj = _mapping(_mapping(event, "data"), "object")
    metadata = _mapping(obj, "metadata")
    purchase_id = _text(metadata, "purchase_id")
    kind: PaymentKind = "ignored"
    provider_ref = payment_ref = None
    amount: int | None = None
    if raw_type in {"checkout.session.completed", "checkout.session.async_payment_succeeded"}:
        # A completed session may still be unpaid (delayed methods): that is not money yet.
        if obj.get("payment_status") == "paid":
            kind = "payment_succeeded"
        purchase_id = _text(obj, "client_reference_id") or purchase_id
        provider_ref, payment_ref = _text(obj, "id"), _text(obj, "payment_intent")
        amount = _cents(obj, "amount_total")
    elif raw_type == "payment_intent.succeeded":
        kind, payment_ref = "payment_succeeded", _text(obj, "id")
        amount = _cents(obj, "amount_received") or _cents(obj, "amount")
    elif raw_type == "charge.refunded":
        kind, payment_ref = "payment_refunded", _text(obj, "payment_intent")
        amount = _cents(obj, "amount_refunded")
    elif raw_type == "charge.dispute.created":
        kind, payment_ref = "payment_disputed", _text(obj, "payment_intent")
        amount = _cents(obj, "amount")
    return PaymentEvent(
        event_id=event_id,
        kind=kind,
        purchase_id=purchase_id,
        provider_ref=provider_ref,
        amount_cents=amount,
        currency=_currency(obj),
        raw_type=raw_type,
        payment_ref=payment_ref,
    )


class StripeConnectPayouts:
    """Payouts as Stripe Connect transfers to the creator's Express account."""

    name = "stripe"

    def __init__(
        self, api_key: str, *, api_base: str | None = None, max_network_retries: int = 2
    ) -> None:
        self._client, self._http = _stripe_client(api_key, api_base, max_network_retries)

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
                    "transfer_group": f"payout-{payout_id}",
                    "metadata": {"payout_id": payout_id},
                },
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise _transfer_failed(error) from error
        if transfer.reversed:
            return TransferResult(transfer.id, "failed", "the transfer was reversed")
        return TransferResult(provider_ref=transfer.id, status="paid")

    async def onboarding_link(
        self,
        *,
        account_ref: str | None,
        user_id: str,
        email: str,
        return_url: str,
        refresh_url: str,
    ) -> OnboardingLink:
        """An Express account (created on first use) and its hosted onboarding link."""
        try:
            if account_ref is None:
                account = await self._client.v1.accounts.create_async(
                    {
                        "type": "express",
                        "email": email,
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
            raise _provider_failed("Stripe", "start the onboarding", str(error)) from error
        return OnboardingLink(account_ref=account_ref, url=link.url)

    async def account_ready(self, *, account_ref: str) -> bool:
        """Onboarding is done when Stripe made the transfers capability active."""
        try:
            account = await self._client.v1.accounts.retrieve_async(account_ref)
        except stripe.StripeError as error:
            raise _provider_failed("Stripe", "read the connected account", str(error)) from error
        capabilities = account.capabilities
        return capabilities is not None and capabilities.transfers == "active"


def _transfer_failed(error: stripe.StripeError) -> TransferFailed:
    status = error.http_status
    retryable = (
        isinstance(error, stripe.APIConnectionError | stripe.RateLimitError)
        or status is None
        or status >= 500
        or (status == 409 and not isinstance(error, stripe.IdempotencyError))
    )
    code = error.code or (error.error.code if error.error else None)
    return TransferFailed(_stripe_error_text(error), retryable=retryable, code=code)


# --- Hyperswitch -------------------------------------------------------------------------------

# Hyperswitch's outgoing event types (docs: "Handling Webhooks") and what each means here.
_HYPERSWITCH_KINDS: Final[Mapping[str, PaymentKind]] = {
    "payment_succeeded": "payment_succeeded",
    "refund_succeeded": "payment_refunded",
    "dispute_opened": "payment_disputed",
}


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
        timeout: float = 30.0,
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
    ) -> Checkout:
        """Create a payment with a hosted payment link (`POST /payments`, `payment_link: true`).

        Hyperswitch has one `return_url` and reports the outcome on it, so `cancel_url` is
        not sent."""
        body: dict[str, Any] = {
            "amount": amount_cents,
            "currency": currency.upper(),
            "payment_link": True,
            "return_url": success_url,
            "description": f"{tokens} tokens",
            "metadata": {"purchase_id": purchase_id, "user_id": user_id, "tokens": str(tokens)},
        }
        if self._profile_id:
            body["profile_id"] = self._profile_id
        try:
            response = await self._http.post(
                "/payments",
                json=body,
                headers={"api-key": self._api_key, "Accept": "application/json"},
            )
        except httpx.HTTPError as error:
            raise _provider_failed("Hyperswitch", "start the checkout", repr(error)) from error
        if response.status_code >= 400:
            reason = f"HTTP {response.status_code}: {response.text[:500]}"
            raise _provider_failed("Hyperswitch", "start the checkout", reason)
        try:
            payment = response.json()
        except ValueError as error:
            raise _provider_failed("Hyperswitch", "start the checkout", "not JSON") from error
        payment_id = _text(payment, "payment_id")
        link = _text(_mapping(payment, "payment_link"), "link")
        if not payment_id or not link:
            reason = "no payment_id or payment_link.link in the answer"
            raise _provider_failed("Hyperswitch", "start the checkout", reason)
        return Checkout(
            provider=self.name,
            provider_ref=payment_id,
            redirect_url=link,
            status=_text(payment, "status") or "requires_payment_method",
        )

    def sign(self, payload: bytes) -> str:
        """The `X-Webhook-Signature-512` value Hyperswitch sends with `payload`."""
        return hmac.new(self._webhook_secret, payload, hashlib.sha512).hexdigest()

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Check the HMAC-SHA512 signature and map the event to a payment kind."""
        signature = _header(headers, self.SIGNATURE_HEADER)
        if not signature:
            raise WebhookRejected(f"missing {self.SIGNATURE_HEADER} header")
        if not hmac.compare_digest(self.sign(payload), signature.strip().lower()):
            raise WebhookRejected("the signature does not match")
        body = _json_object(payload)
        event_id, raw_type = _text(body, "event_id"), _text(body, "event_type")
        if not event_id or not raw_type:
            raise WebhookRejected("the Hyperswitch event has no event_id or event_type")
        obj = _mapping(_mapping(body, "content"), "object")
        payment_id = _text(obj, "payment_id")
        kind = _HYPERSWITCH_KINDS.get(raw_type, "ignored")
        amount = _cents(obj, "amount")
        if kind == "payment_succeeded":
            amount = _cents(obj, "amount_received") or amount
        return PaymentEvent(
            event_id=event_id,
            kind=kind,
            purchase_id=_text(_mapping(obj, "metadata"), "purchase_id"),
            provider_ref=payment_id,
            amount_cents=amount,
            currency=_currency(obj),
            raw_type=raw_type,
            payment_ref=payment_id,
        )


# --- choosing ----------------------------------------------------------------------------------


def build_payment_provider(
    settings: MoneySettings, *, sandbox_secret: bytes, base_url: str
) -> PaymentProvider:
    """The payment provider the settings choose; fails fast on missing credentials."""
    if settings.payment_provider == "stripe":
        if not settings.stripe_api_key or not settings.stripe_webhook_secret:
            raise ValueError("Stripe needs STAGECAST_MONEY_STRIPE_API_KEY and _WEBHOOK_SECRET")
        return StripeProvider(
            settings.stripe_api_key,
            settings.stripe_webhook_secret,
            api_base=settings.stripe_api_base,
        )
    if settings.payment_provider == "hyperswitch":
        if not settings.hyperswitch_api_key or not settings.hyperswitch_webhook_secret:
            raise ValueError(
                "Hyperswitch needs STAGECAST_MONEY_HYPERSWITCH_API_KEY and _WEBHOOK_SECRET"
            )
        return HyperswitchProvider(
            settings.hyperswitch_api_key,
            settings.hyperswitch_webhook_secret,
            api_base=settings.hyperswitch_api_base,
        )
    return SandboxProvider(sandbox_secret, base_url)


def build_payout_provider(settings: MoneySettings) -> PayoutProvider:
    """The payout provider the settings choose; fails fast on missing credentials."""
    if settings.payout_provider == "stripe":
        if not settings.stripe_api_key:
            raise ValueError("Stripe Connect payouts need STAGECAST_MONEY_STRIPE_API_KEY")
        return StripeConnectPayouts(settings.stripe_api_key, api_base=settings.stripe_api_base)
    return SandboxPayouts()
