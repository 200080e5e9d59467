"""Payouts: a creator's earnings leave as money, after an administrator approves them.

Requesting moves the tokens from earnings into payouts in flight (so they cannot be spent or
requested twice); a paid transfer moves them to payouts sent; a rejection or a transfer that
fails for good moves them back to earnings. Transfers that fail for a passing reason are
retried with backoff.

A transfer is sent in three steps, and the provider is never called inside a transaction:
`begin_transfer` commits the attempt (the intent), `call_transfer` asks the provider with the
payout's idempotency key, `record_transfer` commits the outcome. `approve_and_send` and
`send_transfer` run the three; an attempt a crash cut off comes due again (`next_attempt_at`)
and the jobs send it once more with the same key, so the provider pays it once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import structlog
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.config import KycSettings, MoneySettings
from stagecast.db.base import utcnow
from stagecast.db.engine import Database
from stagecast.errors import Conflict, NotFound, ValidationFailed
from stagecast.kyc import service as kyc
from stagecast.money import attempts, ledger
from stagecast.money.ledger import Leg, earnings_of
from stagecast.money.models import AccountKind, Payout, PayoutAccount
from stagecast.money.providers import (
    MAX_ATTEMPTS,
    PayoutProvider,
    TransferFailed,
    TransferResult,
)
from stagecast.money.schemas import TransferOut
from stagecast.pagination import PageInfo, PageParams, by_id, paginate
from stagecast.realtime.bus import publish, user_room

log = structlog.get_logger(__name__)

PayoutStatus = Literal["requested", "approved", "retrying", "paid", "failed", "rejected"]
IN_FLIGHT = ("requested", "approved", "retrying")
SENDABLE = ("approved", "retrying")  # approved by an administrator, not paid or failed yet
ATTEMPTED = ("approved", "retrying", "paid", "failed")  # the transfers, as seed 003 lists them


class PayoutNotPending(Conflict):
    code, title = "PAYOUT_NOT_PENDING", "This payout was already decided"


def amount_cents(settings: MoneySettings, tokens: int) -> int:
    """What `tokens` of earnings pay out, in the currency's cents (rounded down)."""
    return tokens * 100 // settings.tokens_per_unit


def reserved_tokens_query(user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> Select[int]:
    """The query of the earnings held by payouts not yet paid (to embed in another)."""
    return select(func.coalesce(func.sum(Payout.tokens), 0)).where(
        Payout.user_id == user_id, Payout.status.in_(IN_FLIGHT)
    )


async def reserved_tokens(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Earnings held by payouts not yet paid."""
    return int(await session.scalar(reserved_tokens_query(user_id)) or 0)


async def request_payout(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    user: User,
    tokens: int,
    destination: str | None,
    kyc_settings: KycSettings,
) -> Payout:
    """Move earnings into a payout in flight, once the creator passed what KYC asks of them."""
    await kyc.require_verified(session, kyc_settings, user_id=user.id, action="payouts")
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


async def start_onboarding(
    db: Database,
    provider: PayoutProvider,
    *,
    user_id: uuid.UUID,
    email: str | None,
    return_url: str,
    refresh_url: str,
) -> tuple[PayoutAccount, str]:
    """The creator's account at the provider (made on first use) and its onboarding link.

    The provider is asked between two transactions. A crash before the account is recorded
    loses nothing: the next onboarding asks again with the same key (the creator's), and the
    provider answers the same account."""
    async with db.read_session() as session, session.begin():
        known = await payout_account(session, user_id=user_id, provider=provider.name)
    link = await provider.onboarding_link(
        account_ref=known.account_ref if known else None, user_id=str(user_id), email=email,
        return_url=return_url, refresh_url=refresh_url,
    )  # fmt: skip
    ready = await provider.account_ready(account_ref=link.account_ref)
    async with db.session() as session, session.begin():
        account = await record_payout_account(
            session, user_id=user_id, provider=provider.name, account_ref=link.account_ref,
            ready=ready,
        )  # fmt: skip
    return account, link.url


async def check_onboarding(
    db: Database, provider: PayoutProvider, *, user_id: uuid.UUID, account_ref: str
) -> bool:
    """Ask the provider whether the account can take transfers now; record it once it can."""
    ready = await provider.account_ready(account_ref=account_ref)
    if ready:
        async with db.session() as session, session.begin():
            await record_payout_account(
                session, user_id=user_id, provider=provider.name, account_ref=account_ref,
                ready=True,
            )  # fmt: skip
    return ready


async def get_payout(session: AsyncSession, payout_id: uuid.UUID) -> Payout:
    payout = await session.get(Payout, payout_id)
    if payout is None:
        raise NotFound("Payout not found")
    return payout


async def _locked_payout(session: AsyncSession, payout_id: uuid.UUID) -> Payout:
    # Two nodes (or a request and the jobs) deciding one payout take turns.
    payout = await session.get(Payout, payout_id, with_for_update=True, populate_existing=True)
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


def transfer_key(payout_id: uuid.UUID) -> str:
    """The idempotency key of a payout's transfer: the same on every attempt, paid once."""
    return f"payout-{payout_id}"


@dataclass(frozen=True, slots=True)
class TransferAttempt:
    """One attempt at a payout's transfer, as committed before the provider is called."""

    payout_id: uuid.UUID
    number: int
    destination: str
    amount_cents: int
    currency: str

    @property
    def idempotency_key(self) -> str:
        return transfer_key(self.payout_id)


TransferOutcome = TransferResult | TransferFailed


def _next_attempt(payout: Payout, settings: MoneySettings, *, now: datetime) -> TransferAttempt:
    return TransferAttempt(
        payout_id=payout.id,
        number=attempts.begin(payout, settings, now=now),
        destination=payout.destination or f"user:{payout.user_id}",
        amount_cents=payout.amount_cents,
        currency=payout.currency,
    )


async def approve(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    admin_id: uuid.UUID,
    payout_id: uuid.UUID,
    now: datetime,
) -> TransferAttempt:
    """Approve a requested payout and begin its first transfer attempt."""
    payout = await _locked_payout(session, payout_id)
    if payout.status != "requested":
        raise PayoutNotPending()
    payout.status, payout.decided_by = "approved", admin_id
    attempt = _next_attempt(payout, settings, now=now)
    await session.flush()
    return attempt


async def begin_transfer(
    session: AsyncSession,
    settings: MoneySettings,
    payout_id: uuid.UUID,
    *,
    now: datetime,
    due_only: bool = False,
) -> TransferAttempt | None:
    """Begin another attempt at an approved or retrying payout's transfer. With `due_only`
    (the jobs), None when it is not due, or no longer sendable: another node took it."""
    payout = await _locked_payout(session, payout_id)
    if payout.status not in SENDABLE or (due_only and not attempts.is_due(payout, now=now)):
        if due_only:
            return None
        raise PayoutNotPending()
    attempt = _next_attempt(payout, settings, now=now)
    await session.flush()
    return attempt


async def call_transfer(provider: PayoutProvider, attempt: TransferAttempt) -> TransferOutcome:
    """Ask the provider to make the transfer (no database here): its result or its refusal.

    Before the last attempt's passing failure gives the payout up, the provider is asked
    whether an earlier attempt made the transfer after all (Stripe answers a key's stored 500
    again on every retry, whatever happened behind it)."""
    try:
        return await provider.transfer(
            payout_id=str(attempt.payout_id),
            destination=attempt.destination,
            amount_cents=attempt.amount_cents,
            currency=attempt.currency,
            idempotency_key=attempt.idempotency_key,
        )
    except TransferFailed as failure:
        refused = failure
    if not refused.retryable or attempt.number < MAX_ATTEMPTS:
        return refused
    try:
        made = await provider.find_transfer(payout_id=str(attempt.payout_id))
    except TransferFailed as unknown:
        why = str(unknown)
    else:
        return made or refused
    # Given up without knowing: an operator compares with the provider's dashboard.
    log.error("payout_outcome_unknown", payout_id=str(attempt.payout_id), why=why)
    return refused


async def record_transfer(
    session: AsyncSession, attempt: TransferAttempt, outcome: TransferOutcome, *, now: datetime
) -> Payout:
    """Book what the provider answered: paid, retried later, or returned to earnings.

    A paid answer is booked whichever attempt brings it (the key makes them one transfer); a
    failure only by the latest attempt, since a newer one may still succeed."""
    payout = await _locked_payout(session, attempt.payout_id)
    if payout.status not in SENDABLE:
        return payout  # another attempt booked it already
    paid = isinstance(outcome, TransferResult) and outcome.status != "failed"
    if not paid and payout.attempts != attempt.number:
        return payout
    if isinstance(outcome, TransferFailed):
        payout.failure_reason = str(outcome)[:500]
        if outcome.retryable and attempts.retry_later(payout, now=now):
            payout.status = "retrying"
            log.warning("payout_retry_scheduled", payout_id=str(payout.id), attempt=payout.attempts)
        else:
            payout.status = "failed"
            attempts.done(payout)
            await _return_to_earnings(session, payout, f"transfer failed: {outcome}")
    elif not paid:
        payout.provider_ref = outcome.provider_ref
        payout.status, payout.failure_reason = "failed", outcome.failure_reason
        attempts.done(payout)
        await _return_to_earnings(session, payout, f"transfer failed: {outcome.failure_reason}")
    else:
        payout.provider_ref = outcome.provider_ref
        payout.status = "paid"
        attempts.done(payout)
        await ledger.post(
            session,
            kind="payout_paid",
            legs=[
                Leg(AccountKind.PAYOUTS_IN_FLIGHT.value, -payout.tokens),
                Leg(AccountKind.PAYOUTS_SENT.value, payout.tokens),
            ],
            description=f"Payout of {payout.tokens} tokens sent",
            details={"payout_id": str(payout.id), "provider_ref": outcome.provider_ref},
        )
    await session.flush()
    _announce(session, payout)
    return payout


async def approve_and_send(
    db: Database,
    settings: MoneySettings,
    provider: PayoutProvider,
    *,
    admin_id: uuid.UUID,
    payout_id: uuid.UUID,
) -> Payout:
    """Approve a payout and send it now: the approval and attempt committed, the provider
    called, the outcome committed."""
    now = utcnow()
    async with db.session() as session, session.begin():
        attempt = await approve(session, settings, admin_id=admin_id, payout_id=payout_id, now=now)
    return await _send(db, provider, attempt, now=now)


async def send_transfer(
    db: Database,
    settings: MoneySettings,
    provider: PayoutProvider,
    payout_id: uuid.UUID,
    *,
    now: datetime,
    due_only: bool = False,
) -> Payout | None:
    """Send an approved or retrying payout (again), in the three steps; with `due_only` (the
    jobs) only if it is due, None otherwise."""
    async with db.session() as session, session.begin():
        attempt = await begin_transfer(session, settings, payout_id, now=now, due_only=due_only)
    if attempt is None:
        return None
    return await _send(db, provider, attempt, now=now)


async def _send(
    db: Database, provider: PayoutProvider, attempt: TransferAttempt, *, now: datetime
) -> Payout:
    outcome = await call_transfer(provider, attempt)  # outside any transaction
    async with db.session() as session, session.begin():
        return await record_transfer(session, attempt, outcome, now=now)


async def due_transfers(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Payouts whose next attempt is due: retries, and attempts a crash left unrecorded."""
    return list(
        (
            await session.scalars(
                select(Payout.id)
                .where(Payout.status.in_(SENDABLE), Payout.next_attempt_at <= now)
                .order_by(Payout.next_attempt_at)
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
