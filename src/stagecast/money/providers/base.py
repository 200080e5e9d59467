"""What every provider shares: the protocols purchases and payouts call, the results they
answer, their errors, and the helpers that read providers' JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal, Protocol

import structlog

from stagecast.errors import AppError

log = structlog.get_logger(__name__)

PaymentKind = Literal["payment_succeeded", "payment_refunded", "payment_disputed", "ignored"]
TransferStatus = Literal["paid", "pending", "failed"]

# How old a signed webhook may be; Stripe's own default tolerance.
WEBHOOK_TOLERANCE_SECONDS: Final = 300

# How long one request to a provider may take before it counts as failed (a passing failure:
# it is tried again with the same idempotency key).
PROVIDER_TIMEOUT_SECONDS: Final = 30.0

# Waits before each retry of a provider call (a transfer, a checkout) that failed for a passing
# reason.
RETRY_DELAYS: Final = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
MAX_ATTEMPTS: Final = len(RETRY_DELAYS) + 1


class WebhookRejected(Exception):
    """A webhook that is not provably the provider's: bad or missing signature, too old, or
    not the JSON the provider sends."""


class ProviderError(AppError):
    """The payment or payout provider failed or refused a request we made."""

    status, code, title = 502, "PAYMENT_PROVIDER_ERROR", "The payment provider failed"


def provider_failed(provider: str, action: str, reason: str) -> ProviderError:
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
        idempotency_key: str,
    ) -> Checkout:
        """A checkout for one purchase; the same `idempotency_key` answers the same checkout."""
        ...

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

    async def find_transfer(self, *, payout_id: str) -> TransferResult | None:
        """The transfer made for this payout, if any attempt made one (asked before a payout
        whose answers were all passing failures is given up: one may have been made)."""
        ...

    async def onboarding_link(
        self,
        *,
        account_ref: str | None,
        user_id: str,
        email: str | None,
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
    return RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]


def header_of(headers: Mapping[str, str], name: str) -> str | None:
    # Starlette's Headers ignore case; a plain dict (tests, the sandbox) may not.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def json_object(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise WebhookRejected("the webhook body is not JSON") from error
    if not isinstance(body, dict):
        raise WebhookRejected("the webhook body is not a JSON object")
    return body


def text_of(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):  # an expanded Stripe object in place of its id
        return text_of(value, "id")
    return None


def cents_of(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():  # Hyperswitch sends dispute amounts as text
        return int(value)
    return None


def mapping_of(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def currency_of(data: Mapping[str, Any]) -> str | None:
    value = text_of(data, "currency")
    return value.lower() if value else None
