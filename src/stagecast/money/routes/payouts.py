"""Earnings leaving as money: revenue, seller balance, payouts, and their administration."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.deps import AdminUser, CurrentUser
from stagecast.channels import service as channels
from stagecast.db.base import utcnow
from stagecast.deps import OffsetPageDep, PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import ValidationFailed, problem_responses
from stagecast.money import payouts
from stagecast.money import service as money
from stagecast.money.models import Payout
from stagecast.money.payouts import PayoutStatus
from stagecast.money.providers import ProviderError
from stagecast.money.routes.deps import (
    MOVES,
    IdempotencyKey,
    move_once,
    payments_limit,
    payout_provider,
)
from stagecast.money.schemas import OnboardingOut, PayoutOut, SellerBalanceOut, TransfersOut
from stagecast.pagination import Page, PageParams, make_page
from stagecast.privacy import service as privacy

router = APIRouter(tags=["money"])

# The transfers' statuses, and seed 003's name for a paid one.
TransferStatus = Literal["approved", "retrying", "paid", "failed", "completed"]


@router.get("/channels/{channel_ref}/revenue", responses=problem_responses(401, 403, 404))
async def channel_revenue(
    channel_ref: str, user: CurrentUser, session: ReadSessionDep,
    since: Annotated[date | None, Query(description="first day (UTC)")] = None,
) -> dict[str, Any]:  # fmt: skip
    """What the channel earned (after fees), by day and by source."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        channels.ensure_owner(user, channel)
        return await money.channel_revenue(session, channel=channel, since=since)


@router.get("/sell/balance", responses=problem_responses(401))
async def seller_balance(
    user: CurrentUser, session: ReadSessionDep, runtime: RuntimeDep
) -> SellerBalanceOut:
    """Seed 003: earnings available to pay out, what pending payouts hold, and whether the
    payout account is connected."""
    settings, provider = runtime.settings.money, runtime.payout_provider
    async with session.begin():
        balance = await money.balances(session, settings, user.id)
        account = (
            await payouts.payout_account(session, user_id=user.id, provider=provider.name)
            if provider is not None
            else None
        )
    connected = account is not None and account.ready
    if account is not None and not account.ready and provider is not None:
        # Back from the provider's onboarding: ask it once more (outside any transaction).
        try:
            connected = await payouts.check_onboarding(
                runtime.db, provider, user_id=user.id, account_ref=account.account_ref
            )
        except ProviderError:
            connected = False  # logged by the provider; the balance still answers
    unit = settings.tokens_per_unit
    return SellerBalanceOut(
        connected=connected,
        available=payouts.amount_cents(settings, balance.earnings_balance),
        pending=payouts.amount_cents(settings, balance.reserved_balance),
        available_tokens=balance.earnings_balance,
        pending_tokens=balance.reserved_balance,
        available_amount=round(balance.earnings_balance / unit, 2),
        pending_amount=round(balance.reserved_balance / unit, 2),
        currency=settings.currency,
        minimum_payout_tokens=settings.min_payout_tokens,
    )


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: StrictInt = Field(ge=1)
    destination: str | None = Field(default=None, max_length=255)


def _payout_out(payout: Payout) -> dict[str, Any]:
    return PayoutOut.model_validate(payout).model_dump(mode="json")


@router.post(
    "/payouts/request", status_code=201, dependencies=[payments_limit],
    responses=MOVES,
)  # fmt: skip
async def request_payout(
    body: PayoutIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Ask for earnings to be paid out (from the minimum; an administrator approves)."""

    async def action() -> tuple[int, dict[str, Any]]:
        made = await payouts.request_payout(
            session, runtime.settings.money, user=user, tokens=body.tokens,
            destination=body.destination, kyc_settings=runtime.settings.kyc,
        )  # fmt: skip
        return 201, _payout_out(made)

    return await move_once(request, session, user.id, key, body, action)


@router.get("/payouts", responses=problem_responses(401, 422))
@router.get("/payouts/requests", responses=problem_responses(401, 422))  # seed 002's name
async def my_payouts(user: CurrentUser, session: ReadSessionDep, page: PageDep) -> Page[PayoutOut]:
    """Your payouts, newest first, whatever their status."""
    async with session.begin():
        rows, info = await payouts.list_payouts(session, params=page, user_id=user.id)
    return make_page([PayoutOut.model_validate(p) for p in rows], info)


@router.post("/sell/connect/onboard", responses=problem_responses(401, 404, 502))
async def connect_onboard(
    request: Request, user: CurrentUser, runtime: RuntimeDep
) -> OnboardingOut:
    """Seed 003: a link to the payout provider's onboarding (Stripe Connect's hosted page;
    the sandbox's leads straight back). The account is kept and reused next time."""
    base = str(request.base_url).rstrip("/")
    # Do Not Sell (stored, or `Sec-GPC: 1`): the provider asks the creator for their email on
    # its own page instead of being handed it.
    gpc = bool(getattr(request.state, "do_not_sell", False))
    email = None if privacy.do_not_sell(user, gpc=gpc) else user.email
    account, url = await payouts.start_onboarding(
        runtime.db, payout_provider(runtime), user_id=user.id, email=email,
        return_url=f"{base}/dashboard/payouts", refresh_url=f"{base}/dashboard/payouts?retry=1",
    )  # fmt: skip
    return OnboardingOut(
        onboarding_url=url, url=url, account_ref=account.account_ref, connected=account.ready
    )


@router.get("/admin/payouts", responses=problem_responses(401, 403, 422))
async def admin_payouts(
    _admin: AdminUser, session: ReadSessionDep, page: PageDep,
    status: Annotated[PayoutStatus | None, Query(description="only payouts in this status")] = None,
) -> Page[PayoutOut]:  # fmt: skip
    """Every creator's payouts, newest first: `?status=requested` is what awaits a decision."""
    async with session.begin():
        rows, info = await payouts.list_payouts(
            session, params=page, statuses=(status,) if status else None
        )
    return make_page([PayoutOut.model_validate(p) for p in rows], info)


@dataclass(frozen=True, slots=True)
class TransferFilters:
    statuses: tuple[str, ...]
    created_from: datetime | None
    created_before: datetime | None


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day_or_instant(value: Any) -> Any:
    """A day ("2026-02-23": the whole day) or an ISO 8601 instant; read here so that a bad
    value is one error on its own field, not one per member of the union."""
    if not isinstance(value, str):
        return value
    try:
        return date.fromisoformat(value) if _DAY.fullmatch(value) else datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("a day (2026-02-23) or an ISO 8601 time") from None


DayOrInstant = Annotated[datetime | date | None, BeforeValidator(_day_or_instant)]


def _instant(value: datetime | date, *, end_of_day: bool) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    start = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return start + timedelta(days=1) if end_of_day else start


async def transfer_filters(
    status: Annotated[
        TransferStatus | None,
        Query(description="approved, retrying, paid (seed 003: `completed`) or failed"),
    ] = None,
    created_from: Annotated[
        DayOrInstant,
        Query(alias="from", description="created at or after (a day: from its start, UTC)"),
    ] = None,
    created_to: Annotated[
        DayOrInstant, Query(alias="to", description="created before (a day: up to its end, UTC)")
    ] = None,
) -> TransferFilters:
    """Seed 003's filters of the transfer lists."""
    since = _instant(created_from, end_of_day=False) if created_from is not None else None
    before = _instant(created_to, end_of_day=True) if created_to is not None else None
    if since is not None and before is not None and since >= before:
        raise ValidationFailed(
            "`from` must come before `to`",
            errors=[{"field": "to", "in": "query", "message": "before `from`", "type": "range"}],
        )
    statuses = ("paid" if status == "completed" else status,) if status else payouts.ATTEMPTED
    return TransferFilters(statuses, since, before)


TransferFiltersDep = Annotated[TransferFilters, Depends(transfer_filters)]


async def _transfers(
    session: AsyncSession,
    page: PageParams,
    filters: TransferFilters,
    seller_id: uuid.UUID | None,
) -> TransfersOut:
    async with session.begin():
        rows, info = await payouts.list_payouts(
            session, params=page, user_id=seller_id, statuses=filters.statuses,
            created_from=filters.created_from, created_before=filters.created_before,
        )  # fmt: skip
    return TransfersOut(
        transfers=[payouts.present_transfer(p) for p in rows],
        total=info.total or 0,
        limit=page.limit,
        offset=page.offset or 0,
    )


@router.get("/admin/transfers", responses=problem_responses(401, 403, 422))
async def admin_transfers(
    _admin: AdminUser, session: ReadSessionDep, page: OffsetPageDep, filters: TransferFiltersDep,
    seller_id: Annotated[uuid.UUID | None, Query(description="one creator's")] = None,
) -> TransfersOut:  # fmt: skip
    """Seed 003: the payouts that were sent or tried (approved, retrying, paid, failed),
    newest first, with how many match in all."""
    return await _transfers(session, page, filters, seller_id)


@router.get("/sell/transfers", responses=problem_responses(401, 422))
async def seller_transfers(
    user: CurrentUser, session: ReadSessionDep, page: OffsetPageDep, filters: TransferFiltersDep
) -> TransfersOut:
    """Seed 003: your own transfer history, as `/admin/transfers` shows it."""
    return await _transfers(session, page, filters, user.id)


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post("/admin/payouts/{payout_id}/approve", responses=problem_responses(401, 403, 404, 409))
async def approve_payout(
    payout_id: uuid.UUID, admin: AdminUser, runtime: RuntimeDep
) -> dict[str, Any]:
    """Approve and send now; a transfer that fails for a passing reason is retried later."""
    payout = await payouts.approve_and_send(
        runtime.db, runtime.settings.money, payout_provider(runtime), admin_id=admin.id,
        payout_id=payout_id,
    )  # fmt: skip
    return _payout_out(payout)


@router.post("/admin/payouts/{payout_id}/reject", responses=problem_responses(401, 403, 404, 409))
async def reject_payout(
    payout_id: uuid.UUID, body: RejectIn, admin: AdminUser, session: SessionDep
) -> dict[str, Any]:
    """Refuse a payout: its tokens go back to the creator's earnings."""
    async with session.begin():
        return _payout_out(
            await payouts.reject(session, admin=admin, payout_id=payout_id, reason=body.reason)
        )


@router.post("/admin/transfers/{payout_id}/retry", responses=problem_responses(401, 403, 404, 409))
async def retry_transfer(
    payout_id: uuid.UUID, _admin: AdminUser, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: try a retrying transfer now rather than at its next attempt."""
    payout = await payouts.send_transfer(
        runtime.db, runtime.settings.money, payout_provider(runtime), payout_id, now=utcnow()
    )
    if payout is None:  # only the jobs' due_only answers None; kept for the type
        raise payouts.PayoutNotPending()
    return _payout_out(payout)
