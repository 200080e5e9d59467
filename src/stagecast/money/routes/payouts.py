"""Earnings leaving as money: revenue, seller balance, payouts, and their administration."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from stagecast.accounts.deps import AdminUser, CurrentUser
from stagecast.channels import service as channels
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.money import payouts
from stagecast.money import service as money
from stagecast.money.models import Payout
from stagecast.money.payouts import PayoutStatus
from stagecast.money.routes.deps import (
    MOVES,
    IdempotencyKey,
    move_once,
    payments_limit,
    payout_provider,
)
from stagecast.money.schemas import PayoutOut
from stagecast.pagination import Page, PageParams, make_page

router = APIRouter(tags=["money"])


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
) -> dict[str, Any]:
    """Seed 003: earnings available to pay out, and what pending payouts hold."""
    settings = runtime.settings.money
    async with session.begin():
        balance = await money.balances(session, settings, user.id)
    unit = settings.tokens_per_unit
    return {
        "available_tokens": balance.earnings_balance,
        "pending_tokens": balance.reserved_balance,
        "available_amount": round(balance.earnings_balance / unit, 2),
        "pending_amount": round(balance.reserved_balance / unit, 2),
        "currency": settings.currency,
        "minimum_payout_tokens": settings.min_payout_tokens,
    }


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: StrictInt = Field(ge=1)
    destination: str | None = Field(default=None, max_length=255)


def _payout_out(payout: Payout) -> dict[str, Any]:
    return PayoutOut.model_validate(payout).model_dump(mode="json")


@router.post("/payouts/request", status_code=201, dependencies=[payments_limit], responses=MOVES)
async def request_payout(
    body: PayoutIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Ask for earnings to be paid out (from the minimum; an administrator approves)."""

    async def action() -> tuple[int, dict[str, Any]]:
        made = await payouts.request_payout(
            session, runtime.settings.money, user=user, tokens=body.tokens,
            destination=body.destination,
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


@router.post("/sell/connect/onboard", responses=problem_responses(401))
async def connect_onboard(
    request: Request, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: a link to the payout provider's onboarding (Stripe Connect; the sandbox
    answers a local page)."""
    base = str(request.base_url).rstrip("/")
    link = await payout_provider(runtime).onboarding_link(
        account_ref=None, user_id=str(user.id), email=user.email,
        return_url=f"{base}/dashboard/payouts", refresh_url=f"{base}/dashboard/payouts?retry=1",
    )  # fmt: skip
    return {"account_ref": link.account_ref, "url": link.url}


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


@router.get("/admin/transfers", responses=problem_responses(401, 403))
async def admin_transfers(_admin: AdminUser, session: ReadSessionDep) -> list[dict[str, Any]]:
    """Seed 003: transfers that were attempted: paid, retrying or failed."""
    async with session.begin():
        found, _ = await payouts.list_payouts(
            session, params=PageParams(limit=payouts.LIST_LIMIT), statuses=payouts.ATTEMPTED
        )
        return [_payout_out(p) for p in found]


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post("/admin/payouts/{payout_id}/approve", responses=problem_responses(401, 403, 404, 409))
async def approve_payout(
    payout_id: uuid.UUID, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Approve and send now; a transfer that fails for a passing reason is retried later."""
    provider = payout_provider(runtime)
    async with session.begin():
        payout = await payouts.approve(session, admin=admin, payout_id=payout_id)
        payout = await payouts.attempt_transfer(session, provider, payout, now=utcnow())
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
    payout_id: uuid.UUID, _admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: try a retrying transfer now rather than at its next attempt."""
    provider = payout_provider(runtime)
    async with session.begin():
        payout = await payouts.get_payout(session, payout_id)
        return _payout_out(await payouts.attempt_transfer(session, provider, payout, now=utcnow()))
