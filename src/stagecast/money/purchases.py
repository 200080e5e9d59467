"""Buying tokens: a checkout at the payment provider, credited once when its webhook says paid.

Providers' webhooks are verified (signature, age) before anything is read, and each provider
event is acted on at most once (`processed_webhooks`): a replay answers 200 and moves nothing.
Refunds and disputes post a reversing transaction; tokens already spent are written off to the
platform's chargeback losses, so no wallet goes negative.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.config import MoneySettings
from stagecast.db.base import utcnow
from stagecast.errors import NotFound, ValidationFailed
from stagecast.money import ledger
from stagecast.money.ledger import Leg, wallet_of
from stagecast.money.models import AccountKind, ProcessedWebhook, Purchase
from stagecast.money.providers import PaymentEvent, PaymentProvider
from stagecast.realtime.bus import publish, user_room

log = structlog.get_logger(__name__)


def price_cents(settings: MoneySettings, tokens: int) -> int:
    """What `tokens` cost in the currency's smallest unit (100 tokens = 1 USD = 100 cents)."""
    return tokens * 100 // settings.tokens_per_unit


def check_package(settings: MoneySettings, tokens: int) -> None:
    if tokens not in settings.packages:
        raise ValidationFailed(
            f"Buy one of the packages: {', '.join(str(p) for p in settings.packages)} tokens",
            errors=[{"field": "tokens", "in": "body", "message": "not a package"}],
        )


async def start_purchase(
    session: AsyncSession,
    settings: MoneySettings,
    provider: PaymentProvider,
    *,
    buyer: User,
    tokens: int,
    success_url: str,
    cancel_url: str,
) -> tuple[Purchase, str]:
    """A pending purchase and the provider's checkout address for it."""
    check_package(settings, tokens)
    purchase = Purchase(
        user_id=buyer.id,
        tokens=tokens,
        amount_cents=price_cents(settings, tokens),
        currency=settings.currency,
        provider=provider.name,
    )
    session.add(purchase)
    await session.flush()
    checkout = await provider.create_checkout(
        purchase_id=str(purchase.id),
        user_id=str(buyer.id),
        tokens=tokens,
        amount_cents=purchase.amount_cents,
        currency=purchase.currency,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    purchase.provider_ref = checkout.provider_ref
    await session.flush()
    return purchase, checkout.redirect_url


async def _first_time(session: AsyncSession, provider: str, event: PaymentEvent) -> bool:
    """Record the event; False when it was acted on before (a replay)."""
    try:
        async with session.begin_nested():
            session.add(
                ProcessedWebhook(provider=provider, event_id=event.event_id, kind=event.kind)
            )
            await session.flush()
    except IntegrityError:
        return False
    return True


async def handle_event(session: AsyncSession, provider: str, event: PaymentEvent) -> str:
    """Act on a verified provider event, once. Returns what was done (for the log)."""
    if event.kind == "ignored":
        return "ignored"
    purchase = await _purchase_for(session, event)
    if purchase is None:
        log.warning("webhook_purchase_unknown", provider=provider, event_id=event.event_id)
        return "unknown purchase"
    if not await _first_time(session, provider, event):
        return "replay"
    if event.kind == "payment_succeeded":
        return await _credit(session, purchase, event)
    return await _reverse(session, purchase, event)


async def _purchase_for(session: AsyncSession, event: PaymentEvent) -> Purchase | None:
    if event.purchase_id:
        try:
            found = await session.get(Purchase, uuid.UUID(event.purchase_id))
        except ValueError:
            found = None
        if found is not None:
            return found
    if event.provider_ref:
        found = await session.scalar(
            select(Purchase).where(Purchase.provider_ref == event.provider_ref)
        )
        if found is not None:
            return found
    if event.payment_ref:  # refunds and disputes name the payment, not our purchase
        return await session.scalar(
            select(Purchase).where(Purchase.payment_ref == event.payment_ref)
        )
    return None


async def _credit(session: AsyncSession, purchase: Purchase, event: PaymentEvent) -> str:
    if purchase.status != "pending":
        return f"already {purchase.status}"
    if event.amount_cents is not None and event.amount_cents != purchase.amount_cents:
        log.error(
            "webhook_amount_mismatch",
            purchase_id=str(purchase.id),
            paid=event.amount_cents,
            expected=purchase.amount_cents,
        )
        return "amount mismatch: not credited"
    transaction = await ledger.post(
        session,
        kind="purchase",
        legs=[
            Leg(AccountKind.PAYMENT_CLEARING.value, -purchase.tokens),
            Leg(wallet_of(purchase.user_id), purchase.tokens),
        ],
        description=f"Bought {purchase.tokens} tokens",
        actor_id=purchase.user_id,
        details={"purchase_id": str(purchase.id), "provider": purchase.provider},
    )
    purchase.status = "completed"
    purchase.payment_ref = event.payment_ref
    purchase.transaction_id = transaction.id
    purchase.completed_at = utcnow()
    await session.flush()
    publish(
        session,
        "wallet:credited",
        {"purchase_id": str(purchase.id), "tokens": purchase.tokens},
        rooms=(user_room(purchase.user_id),),
    )
    return "credited"


def tokens_to_reverse(purchase: Purchase, event: PaymentEvent) -> tuple[int, int]:
    """(tokens, cents) this refund or dispute takes back beyond earlier refunds.

    Refund events carry the amount refunded so far (Stripe's `amount_refunded`), so a second
    partial refund reverses only its own share; a dispute, or a refund of everything, reverses
    all that is left.
    """
    remaining = purchase.tokens - purchase.refunded_tokens
    target = event.amount_cents
    if event.kind != "payment_refunded" or target is None or target >= purchase.amount_cents:
        return remaining, purchase.amount_cents - purchase.refunded_cents
    if target <= purchase.refunded_cents:
        return 0, 0
    tokens = purchase.tokens * target // purchase.amount_cents - purchase.refunded_tokens
    return max(0, min(tokens, remaining)), target - purchase.refunded_cents


async def _reverse(session: AsyncSession, purchase: Purchase, event: PaymentEvent) -> str:
    if (
        purchase.status not in {"completed", "partially_refunded"}
        or purchase.transaction_id is None
    ):
        return f"nothing to reverse ({purchase.status})"
    tokens, cents = tokens_to_reverse(purchase, event)
    if tokens == 0:
        return "nothing more to reverse"
    # Every account the reversal touches, locked up front in key order (as post() does).
    wallet = wallet_of(purchase.user_id)
    accounts = await ledger.lock_accounts(
        session,
        [wallet, AccountKind.PAYMENT_CLEARING.value, AccountKind.CHARGEBACK_LOSSES.value],
    )
    # Take back what is still in the wallet; tokens already spent are the platform's loss.
    taken = min(max(0, accounts[wallet].balance), tokens)
    legs = [Leg(AccountKind.PAYMENT_CLEARING.value, tokens)]
    if taken:
        legs.append(Leg(wallet, -taken))
    if tokens - taken:
        legs.append(Leg(AccountKind.CHARGEBACK_LOSSES.value, -(tokens - taken)))
    kind = "refund" if event.kind == "payment_refunded" else "chargeback"
    await ledger.post(
        session,
        kind=kind,
        legs=legs,
        description=f"{kind.capitalize()} of {tokens} tokens",
        reverses_id=purchase.transaction_id,
        details={"purchase_id": str(purchase.id), "written_off": tokens - taken},
    )
    purchase.refunded_tokens += tokens
    purchase.refunded_cents += cents
    whole = purchase.refunded_tokens >= purchase.tokens
    if kind == "chargeback":
        purchase.status = "disputed"
    else:
        purchase.status = "refunded" if whole else "partially_refunded"
    await session.flush()
    return kind


async def get_own_purchase(
    session: AsyncSession, *, user: User, purchase_id: uuid.UUID
) -> Purchase:
    purchase = await session.get(Purchase, purchase_id)
    if purchase is None or purchase.user_id != user.id:
        raise NotFound("Purchase not found")
    return purchase


def present_purchase(purchase: Purchase, checkout_url: str | None = None) -> dict[str, Any]:
    return {
        "purchase_id": str(purchase.id),
        "tokens": purchase.tokens,
        "amount_cents": purchase.amount_cents,
        "currency": purchase.currency,
        "provider": purchase.provider,
        "status": purchase.status,
        "checkout_url": checkout_url,
        "created_at": purchase.created_at.isoformat(),
    }
