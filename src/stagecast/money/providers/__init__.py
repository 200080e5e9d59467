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

from stagecast.config import MoneySettings
from stagecast.money.providers.base import (
    MAX_ATTEMPTS,
    PROVIDER_TIMEOUT_SECONDS,
    RETRY_DELAYS,
    WEBHOOK_TOLERANCE_SECONDS,
    Checkout,
    OnboardingLink,
    PaymentEvent,
    PaymentKind,
    PaymentProvider,
    PayoutProvider,
    ProviderError,
    TransferFailed,
    TransferResult,
    TransferStatus,
    WebhookRejected,
    retry_delay,
)
from stagecast.money.providers.hyperswitch import HyperswitchProvider
from stagecast.money.providers.sandbox import SandboxPayouts, SandboxProvider
from stagecast.money.providers.stripe import (
    StripeConnectPayouts,
    StripeProvider,
    stripe_payment_event,
)

__all__ = [
    "MAX_ATTEMPTS",
    "PROVIDER_TIMEOUT_SECONDS",
    "RETRY_DELAYS",
    "WEBHOOK_TOLERANCE_SECONDS",
    "Checkout",
    "HyperswitchProvider",
    "OnboardingLink",
    "PaymentEvent",
    "PaymentKind",
    "PaymentProvider",
    "PayoutProvider",
    "ProviderError",
    "SandboxPayouts",
    "SandboxProvider",
    "StripeConnectPayouts",
    "StripeProvider",
    "TransferFailed",
    "TransferResult",
    "TransferStatus",
    "WebhookRejected",
    "build_payment_provider",
    "build_payout_provider",
    "retry_delay",
    "stripe_payment_event",
]


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
