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
from stagecast.money.models import AccountKind, LedgerTransaction, ProcessedWebhook, Purchase
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
        return await session.scalar(
            select(Purchase).where(Purchase.provider_ref == event.provider_ref)
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


async def _reverse(session: AsyncSession, purchase: Purchase, event: PaymentEvent) -> str:
    if purchase.status != "completed" or purchase.transaction_id is None:
        return f"nothing to reverse ({purchase.status})"
    original = await session.get_one(LedgerTransaction, purchase.transaction_id)
    # Take back what is still in the wallet; tokens already spent are the platform's loss.
    # Every account the reversal touches, locked up front in key order (as post() does).
    wallet = wallet_of(purchase.user_id)
    accounts = await ledger.lock_accounts(
        session,
        [wallet, AccountKind.PAYMENT_CLEARING.value, AccountKind.CHARGEBACK_LOSSES.value],
    )
    available = max(0, accounts[wallet].balance)
    taken = min(available, purchase.tokens)
    legs = [Leg(AccountKind.PAYMENT_CLEARING.value, purchase.tokens)]
    if taken:
        legs.append(Leg(wallet_of(purchase.user_id), -taken))
    if purchase.tokens - taken:
        legs.append(Leg(AccountKind.CHARGEBACK_LOSSES.value, -(purchase.tokens - taken)))
    kind = "refund" if event.kind == "payment_refunded" else "chargeback"
    await ledger.post(
        session,
        kind=kind,
        legs=legs,
        description=f"{kind.capitalize()} of {purchase.tokens} tokens",
        reverses_id=original.id,
        details={"purchase_id": str(purchase.id), "written_off": purchase.tokens - taken},
    )
    purchase.status = "refunded" if kind == "refund" else "disputed"
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
