"""Buying tokens: a checkout at the payment provider, credited once when its webhook says paid.

Providers' webhooks are verified (signature, age) before anything is read, and each provider
event is acted on at most once (`processed_webhooks`): a replay answers 200 and moves nothing.
Refunds and disputes post a reversing transaction; tokens already spent are written off to the
platform's chargeback losses, so no wallet goes negative.

The checkout is made in three steps, and the provider is never called inside a transaction:
the purchase (the checkout's intent) is committed with its first attempt, the provider is asked
with the purchase's idempotency key, and the checkout it answers is recorded. A checkout a crash
or a failing provider left unmade comes due again (`next_attempt_at`); the jobs, or the buyer
repeating the request's `Idempotency-Key`, ask once more with the same key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.config import MoneySettings
from stagecast.db.base import utcnow
from stagecast.db.engine import Database
from stagecast.errors import NotFound, ValidationFailed
from stagecast.money import attempts, idempotency, ledger
from stagecast.money.ledger import Leg, wallet_of
from stagecast.money.models import AccountKind, ProcessedWebhook, Purchase
from stagecast.money.providers import Checkout, PaymentEvent, PaymentProvider, ProviderError
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


def checkout_key(purchase_id: uuid.UUID) -> str:
    """The idempotency key of a purchase's checkout: one checkout per purchase, however often
    it is asked for."""
    return f"checkout-{purchase_id}"


@dataclass(frozen=True, slots=True)
class CheckoutAttempt:
    """One attempt at a purchase's checkout, as committed before the provider is asked."""

    purchase_id: uuid.UUID
    number: int
    user_id: uuid.UUID
    tokens: int
    amount_cents: int
    currency: str
    success_url: str
    cancel_url: str

    @property
    def idempotency_key(self) -> str:
        return checkout_key(self.purchase_id)


@dataclass(frozen=True, slots=True)
class Bought:
    """The answer to a purchase request, and whether it repeats an earlier request's."""

    body: dict[str, Any]
    replayed: bool


def _next_attempt(purchase: Purchase, settings: MoneySettings, *, now: datetime) -> CheckoutAttempt:
    return CheckoutAttempt(
        purchase_id=purchase.id,
        number=attempts.begin(purchase, settings, now=now),
        user_id=purchase.user_id,
        tokens=purchase.tokens,
        amount_cents=purchase.amount_cents,
        currency=purchase.currency,
        # Set on every purchase made since checkouts are retried; a retry must ask the same.
        success_url=purchase.success_url or "",
        cancel_url=purchase.cancel_url or "",
    )


def _unmade(purchase: Purchase) -> bool:
    return purchase.status == "pending" and purchase.provider_ref is None


async def open_purchase(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    buyer_id: uuid.UUID,
    provider: str,
    tokens: int,
    success_url: str,
    cancel_url: str,
    now: datetime,
) -> tuple[Purchase, CheckoutAttempt]:
    """A pending purchase (the checkout's intent) and its first checkout attempt."""
    check_package(settings, tokens)
    purchase = Purchase(
        user_id=buyer_id,
        tokens=tokens,
        amount_cents=price_cents(settings, tokens),
        currency=settings.currency,
        provider=provider,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    session.add(purchase)
    await session.flush()
    attempt = _next_attempt(purchase, settings, now=now)
    await session.flush()
    return purchase, attempt


async def begin_checkout(
    session: AsyncSession,
    settings: MoneySettings,
    purchase_id: uuid.UUID,
    *,
    now: datetime,
    due_only: bool = False,
) -> CheckoutAttempt | None:
    """Another attempt at a purchase's checkout; None when it is made (or failed for good),
    or with `due_only` (the jobs) when it is not due: another node took it."""
    purchase = await _locked_purchase(session, purchase_id)
    if not _unmade(purchase) or (due_only and not attempts.is_due(purchase, now=now)):
        return None
    attempt = _next_attempt(purchase, settings, now=now)
    await session.flush()
    return attempt


async def call_checkout(provider: PaymentProvider, attempt: CheckoutAttempt) -> Checkout:
    """Ask the provider for the checkout (no database here); ProviderError when it fails."""
    return await provider.create_checkout(
        purchase_id=str(attempt.purchase_id),
        user_id=str(attempt.user_id),
        tokens=attempt.tokens,
        amount_cents=attempt.amount_cents,
        currency=attempt.currency,
        success_url=attempt.success_url,
        cancel_url=attempt.cancel_url,
        idempotency_key=attempt.idempotency_key,
    )


async def record_checkout(
    session: AsyncSession, attempt: CheckoutAttempt, outcome: Checkout | ProviderError, *,
    now: datetime,
) -> Purchase:  # fmt: skip
    """Book what the provider answered: the checkout, or when to ask again (failed for good
    after the last attempt). A checkout is booked whichever attempt brings it (the key makes
    them one); a failure only by the latest attempt."""
    purchase = await _locked_purchase(session, attempt.purchase_id)
    if purchase.provider_ref is not None:
        return purchase  # another attempt booked it already
    if isinstance(outcome, Checkout):
        purchase.provider_ref, purchase.checkout_url = outcome.provider_ref, outcome.redirect_url
        purchase.status = "pending"
        attempts.done(purchase)
    elif (
        purchase.status == "pending"
        and purchase.attempts == attempt.number  # a newer attempt decides otherwise
        and not attempts.retry_later(purchase, now=now)
    ):
        purchase.status = "failed"
        log.warning("checkout_failed", purchase_id=str(purchase.id))
    await session.flush()
    return purchase


async def buy_tokens(
    db: Database,
    settings: MoneySettings,
    provider: PaymentProvider,
    *,
    buyer_id: uuid.UUID,
    tokens: int,
    success_url: str,
    cancel_url: str,
    key: str | None,
    request_hash: str,
) -> Bought:
    """Start buying a package: the purchase and the `Idempotency-Key`'s answer committed, the
    provider asked for the checkout outside any transaction, the checkout committed.

    The same key again answers the same purchase; while its checkout is not made yet (the
    provider failed, or a crash came between the steps), it asks the provider again with the
    purchase's idempotency key, so the provider makes one checkout."""
    check_package(settings, tokens)
    idempotency.check_key(key)
    now = utcnow()
    purchase, stored, attempt = await _open(
        db, settings, provider.name, buyer_id=buyer_id, tokens=tokens, success_url=success_url,
        cancel_url=cancel_url, key=key, request_hash=request_hash, now=now,
    )  # fmt: skip
    if attempt is not None:
        purchase = await _make_checkout(db, provider, attempt, now=now)
    if purchase.provider_ref is None:  # failed for good
        raise ProviderError("The checkout could not be started; buy again with a new request")
    if stored is None:
        return Bought(present_purchase(purchase), replayed=False)
    body = {**stored, "checkout_url": purchase.checkout_url or stored.get("checkout_url")}
    return Bought(body, replayed=attempt is None)


async def _open(
    db: Database,
    settings: MoneySettings,
    provider: str,
    *,
    buyer_id: uuid.UUID,
    tokens: int,
    success_url: str,
    cancel_url: str,
    key: str | None,
    request_hash: str,
    now: datetime,
) -> tuple[Purchase, dict[str, Any] | None, CheckoutAttempt | None]:
    """The purchase of this request (new, or the one its key made) and the attempt to make."""
    for round_ in range(2):
        try:
            async with db.session() as session, session.begin():
                stored = None
                if key is not None:
                    stored = await idempotency.stored_request(
                        session, user_id=buyer_id, key=key, request_hash=request_hash
                    )
                if stored is not None:
                    purchase_id = uuid.UUID(stored.response["purchase_id"])
                    attempt = await begin_checkout(session, settings, purchase_id, now=now)
                    purchase = await _locked_purchase(session, purchase_id)
                    return purchase, stored.response, attempt
                purchase, attempt = await open_purchase(
                    session, settings, buyer_id=buyer_id, provider=provider, tokens=tokens,
                    success_url=success_url, cancel_url=cancel_url, now=now,
                )  # fmt: skip
                if key is not None:
                    await idempotency.remember(
                        session, user_id=buyer_id, key=key, request_hash=request_hash,
                        status=201, body=present_purchase(purchase),
                    )  # fmt: skip
                return purchase, None, attempt
        except IntegrityError:
            # A concurrent request with this key committed first: take up its purchase.
            if key is None or round_:
                raise
    raise AssertionError("unreachable")


async def resume_checkout(
    db: Database,
    settings: MoneySettings,
    provider: PaymentProvider,
    purchase_id: uuid.UUID,
    *,
    now: datetime,
) -> Purchase | None:
    """Make a due checkout (the jobs): None when it is not due (another node took it)."""
    async with db.session() as session, session.begin():
        attempt = await begin_checkout(session, settings, purchase_id, now=now, due_only=True)
    if attempt is None:
        return None
    return await _make_checkout(db, provider, attempt, now=now)


async def _make_checkout(
    db: Database, provider: PaymentProvider, attempt: CheckoutAttempt, *, now: datetime
) -> Purchase:
    outcome: Checkout | ProviderError
    try:
        outcome = await call_checkout(provider, attempt)  # outside any transaction
    except ProviderError as error:
        outcome = error
    async with db.session() as session, session.begin():
        purchase = await record_checkout(session, attempt, outcome, now=now)
    if isinstance(outcome, ProviderError):
        raise outcome
    return purchase


async def due_checkouts(session: AsyncSession, *, provider: str, now: datetime) -> list[uuid.UUID]:
    """Purchases at `provider` whose checkout is due: retries, and attempts a crash cut off."""
    return list(
        (
            await session.scalars(
                select(Purchase.id)
                .where(
                    Purchase.next_attempt_at <= now,
                    Purchase.status == "pending",
                    Purchase.provider_ref.is_(None),
                    Purchase.provider == provider,
                )
                .order_by(Purchase.next_attempt_at)
            )
        ).all()
    )


async def _locked_purchase(session: AsyncSession, purchase_id: uuid.UUID) -> Purchase:
    purchase = await session.get(
        Purchase, purchase_id, with_for_update=True, populate_existing=True
    )
    if purchase is None:
        raise NotFound("Purchase not found")
    return purchase


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


def present_purchase(purchase: Purchase) -> dict[str, Any]:
    return {
        "purchase_id": str(purchase.id),
        "tokens": purchase.tokens,
        "amount_cents": purchase.amount_cents,
        "currency": purchase.currency,
        "provider": purchase.provider,
        "status": purchase.status,
        "checkout_url": purchase.checkout_url,
        "created_at": purchase.created_at.isoformat(),
    }
