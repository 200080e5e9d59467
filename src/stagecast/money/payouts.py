"""Payouts: a creator's earnings leave as money, after an administrator approves them.

Requesting moves the tokens from earnings into payouts in flight (so they cannot be spent or
requested twice); a paid transfer moves them to payouts sent; a rejection or a transfer that
fails for good moves them back to earnings. Transfers that fail for a passing reason are
retried with backoff.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.config import MoneySettings
from stagecast.db.base import utcnow
from stagecast.errors import AppError, Conflict, NotFound, ValidationFailed
from stagecast.money import ledger
from stagecast.money.ledger import Leg, earnings_of
from stagecast.money.models import AccountKind, Payout, PayoutAccount
from stagecast.money.providers import (
    MAX_TRANSFER_ATTEMPTS,
    PayoutProvider,
    TransferFailed,
    retry_delay,
)
from stagecast.money.schemas import TransferOut
from stagecast.pagination import PageInfo, PageParams, by_id, paginate
from stagecast.realtime.bus import publish, user_room

log = structlog.get_logger(__name__)

PayoutStatus = Literal["requested", "approved", "retrying", "paid", "failed", "rejected"]
IN_FLIGHT = ("requested", "approved", "retrying")
ATTEMPTED = ("approved", "retrying", "paid", "failed")  # the transfers, as seed 003 lists them


class KycRequired(AppError):
    status, code, title = 403, "KYC_REQUIRED", "Identity verification is required for payouts"


class PayoutNotPending(Conflict):
    code, title = "PAYOUT_NOT_PENDING", "This payout was already decided"


def kyc_approved(user: User) -> bool:
    """The one check the compliance issue will fill in: until then every creator passes."""
    return user.is_active


def amount_cents(settings: MoneySettings, tokens: int) -> int:
    """What `tokens` of earnings pay out, in the currency's cents (rounded down)."""
    return tokens * 100 // settings.tokens_per_unit


async def reserved_tokens(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Earnings held by payouts not yet paid."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Payout.tokens), 0)).where(
            Payout.user_id == user_id, Payout.status.in_(IN_FLIGHT)
        )
    )
    return int(total or 0)


async def request_payout(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    user: User,
    tokens: int,
    destination: str | None,
) -> Payout:
    if not kyc_approved(user):
        raise KycRequired()
    if tokens < settings.min_payout_tokens:
        raise ValidationFailed(f"Payouts start at {settings.min_payout_tokens} tokens")
    payout = Payout(
        user_id=user.id,
        tokens=tokens,
        amount_cents=amount_cents(settings, tokens),
        currency=settings.currency,
        destination=destination,
    )
    session.add(payout)
    await session.flush()
    # Raises INSUFFICIENT_BALANCE (rolling the payout back) when earnings are short.
    await ledger.post(
        session,
        kind="payout_requested",
        legs=[Leg(earnings_of(user.id), -tokens), Leg(AccountKind.PAYOUTS_IN_FLIGHT.value, tokens)],
        description=f"Payout of {tokens} tokens requested",
        actor_id=user.id,
        details={"payout_id": str(payout.id)},
    )
    return payout


async def list_payouts(
    session: AsyncSession,
    *,
    params: PageParams,
    user_id: uuid.UUID | None = None,
    statuses: tuple[str, ...] | None = None,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[Payout], PageInfo]:
    """Payouts, newest first: one creator's or everyone's, by status and creation time."""
    query = select(Payout)
    if user_id is not None:
        query = query.where(Payout.user_id == user_id)
    if statuses:
        query = query.where(Payout.status.in_(statuses))
    if created_from is not None:
        query = query.where(Payout.created_at >= created_from)
    if created_before is not None:
        query = query.where(Payout.created_at < created_before)
    return await paginate(session, query, keys=by_id(Payout.id), params=params)


def present_transfer(payout: Payout) -> TransferOut:
    """A payout as seed 003 shows a transfer."""
    return TransferOut(
        id=payout.id,
        seller_id=payout.user_id,
        amount_cents=payout.amount_cents,
        platform_fee_cents=0,
        currency=payout.currency.upper(),
        status=payout.status,
        retry_count=max(payout.attempts - 1, 0),
        next_retry_at=payout.next_attempt_at,
        created_at=payout.created_at,
        tokens=payout.tokens,
        failure_reason=payout.failure_reason,
    )


async def payout_account(
    session: AsyncSession, *, user_id: uuid.UUID, provider: str
) -> PayoutAccount | None:
    """The creator's account at this payout provider, if they started its onboarding."""
    return await session.scalar(
        select(PayoutAccount).where(
            PayoutAccount.user_id == user_id, PayoutAccount.provider == provider
        )
    )


async def record_payout_account(
    session: AsyncSession, *, user_id: uuid.UUID, provider: str, account_ref: str, ready: bool
) -> PayoutAccount:
    """Remember the creator's account at the provider and where its onboarding stands."""
    account = await payout_account(session, user_id=user_id, provider=provider)
    if account is None:
        account = PayoutAccount(user_id=user_id, provider=provider, account_ref=account_ref)
        try:
            async with session.begin_nested():
                session.add(account)
        except IntegrityError:  # a second onboarding request got in first: take its row
            account = await payout_account(session, user_id=user_id, provider=provider)
            if account is None:
                raise
    account.account_ref, account.ready = account_ref, ready
    await session.flush()
    return account


async def get_payout(session: AsyncSession, payout_id: uuid.UUID) -> Payout:
    payout = await session.get(Payout, payout_id)
    if payout is None:
        raise NotFound("Payout not found")
    return payout


async def _return_to_earnings(session: AsyncSession, payout: Payout, why: str) -> None:
    await ledger.post(
        session,
        kind="payout_returned",
        legs=[
            Leg(AccountKind.PAYOUTS_IN_FLIGHT.value, -payout.tokens),
            Leg(earnings_of(payout.user_id), payout.tokens),
        ],
        description=f"Payout returned to earnings: {why}"[:200],
        details={"payout_id": str(payout.id)},
    )


async def reject(
    session: AsyncSession, *, admin: User, payout_id: uuid.UUID, reason: str
) -> Payout:
    payout = await get_payout(session, payout_id)
    if payout.status != "requested":
        raise PayoutNotPending()
    payout.status, payout.failure_reason, payout.decided_by = "rejected", reason, admin.id
    await _return_to_earnings(session, payout, f"rejected: {reason}")
    _announce(session, payout)
    return payout


async def approve(session: AsyncSession, *, admin: User, payout_id: uuid.UUID) -> Payout:
    payout = await get_payout(session, payout_id)
    if payout.status != "requested":
        raise PayoutNotPending()
    payout.status, payout.decided_by, payout.next_attempt_at = "approved", admin.id, utcnow()
    await session.flush()
    return payout


async def attempt_transfer(
    session: AsyncSession, provider: PayoutProvider, payout: Payout, *, now: datetime
) -> Payout:
    """Send an approved (or retrying) payout; paid, retried later, or returned to earnings."""
    if payout.status not in {"approved", "retrying"}:
        raise PayoutNotPending()
    payout.attempts += 1
    try:
        result = await provider.transfer(
            payout_id=str(payout.id),
            destination=payout.destination or f"user:{payout.user_id}",
            amount_cents=payout.amount_cents,
            currency=payout.currency,
            idempotency_key=f"payout-{payout.id}",  # the same on every retry: paid at most once
        )
    except TransferFailed as failure:
        payout.failure_reason = str(failure)[:500]
        if failure.retryable and payout.attempts < MAX_TRANSFER_ATTEMPTS:
            payout.status = "retrying"
            payout.next_attempt_at = now + retry_delay(payout.attempts)
            log.warning("payout_retry_scheduled", payout_id=str(payout.id), attempt=payout.attempts)
        else:
            payout.status, payout.next_attempt_at = "failed", None
            await _return_to_earnings(session, payout, f"transfer failed: {failure}")
        await session.flush()
        _announce(session, payout)
        return payout
    payout.provider_ref = result.provider_ref
    if result.status == "failed":
        payout.status, payout.failure_reason = "failed", result.failure_reason
        await _return_to_earnings(session, payout, f"transfer failed: {result.failure_reason}")
    else:
        payout.status, payout.next_attempt_at = "paid", None
        await ledger.post(
            session,
            kind="payout_paid",
            legs=[
                Leg(AccountKind.PAYOUTS_IN_FLIGHT.value, -payout.tokens),
                Leg(AccountKind.PAYOUTS_SENT.value, payout.tokens),
            ],
            description=f"Payout of {payout.tokens} tokens sent",
            details={"payout_id": str(payout.id), "provider_ref": result.provider_ref},
        )
    await session.flush()
    _announce(session, payout)
    return payout


async def due_transfers(session: AsyncSession, *, now: datetime) -> list[Payout]:
    return list(
        (
            await session.scalars(
                select(Payout).where(
                    Payout.status.in_(("approved", "retrying")), Payout.next_attempt_at <= now
                )
            )
        ).all()
    )


def _announce(session: AsyncSession, payout: Payout) -> None:
    publish(
        session,
        "payout:updated",
        {"payout_id": str(payout.id), "status": payout.status, "tokens": payout.tokens},
        rooms=(user_room(payout.user_id),),
    )
