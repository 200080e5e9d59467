"""Subscriptions: tiers, subscribing (or gifting), subscribers, cancelling."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from stagecast.accounts import service as accounts
from stagecast.accounts.deps import CurrentUser
from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.money import subscriptions
from stagecast.money.models import Subscription, SubscriptionTier
from stagecast.money.routes.deps import MOVES, IdempotencyKey, move_once, payments_limit
from stagecast.money.schemas import SubscriberOut, SubscriptionOut, TierOut
from stagecast.pagination import Page, make_page, paginate_list

router = APIRouter(tags=["money"])


class TierUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens_per_month: StrictInt = Field(ge=1, le=1_000_000)
    name: str | None = Field(default=None, max_length=60)


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: uuid.UUID
    tier: StrictInt = Field(default=1, ge=1, le=3)
    gift_to: str | None = Field(default=None, description="username of the gift's recipient")


def _subscription_out(subscription: Subscription) -> dict[str, Any]:
    return SubscriptionOut.model_validate(subscription).model_dump(mode="json")


def _tier_out(tier: SubscriptionTier) -> TierOut:
    return TierOut(level=tier.level, name=tier.name, tokens_per_month=tier.tokens_per_month)


@router.get("/channels/{channel_ref}/subscription-tiers", responses=problem_responses(404, 422))
async def channel_tiers(channel_ref: str, session: ReadSessionDep, page: PageDep) -> Page[TierOut]:
    """The channel's tiers, cheapest first."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        tiers = await subscriptions.tiers_of(session, channel, create=False)
    shown, info = paginate_list([_tier_out(t) for t in tiers], page)
    return make_page(shown, info)


@router.patch(
    "/channels/{channel_ref}/subscription-tiers/{level}",
    responses=problem_responses(401, 403, 404, 422),
)
async def price_tier(
    channel_ref: str, level: int, body: TierUpdate, user: CurrentUser, session: SessionDep
) -> TierOut:
    """The channel's owner prices a tier (tokens a month)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        tier = await subscriptions.set_tier_price(
            session, actor=user, channel=channel, level=level, tokens=body.tokens_per_month,
            name=body.name,
        )  # fmt: skip
        return _tier_out(tier)


@router.post("/subscriptions", status_code=201, dependencies=[payments_limit], responses=MOVES)
async def subscribe(
    body: SubscribeIn, request: Request, user: CurrentUser, session: SessionDep,
    runtime: RuntimeDep, key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Subscribe to a channel (or gift a month with `gift_to`); the first month is paid now."""

    async def action() -> tuple[int, dict[str, Any]]:
        channel = await channels.get_channel(session, body.channel_id)
        recipient = (
            await accounts.get_user_by_username(session, body.gift_to) if body.gift_to else None
        )
        made = await subscriptions.subscribe(
            session, runtime.settings.money, payer=user, channel=channel, level=body.tier,
            recipient=recipient,
        )  # fmt: skip
        return 201, _subscription_out(made)

    return await move_once(request, session, user.id, key, body, action)


@router.get("/channels/{channel_ref}/subscribers", responses=problem_responses(401, 403, 404, 422))
async def channel_subscribers(
    channel_ref: str, user: CurrentUser, session: ReadSessionDep, page: PageDep
) -> Page[SubscriberOut]:
    """The channel's paid-up subscribers, newest first (its owner only)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        channels.ensure_owner(user, channel)
        rows, cursor = await subscriptions.list_subscribers(
            session, channel=channel, params=page, now=utcnow()
        )
    return make_page([_subscriber_out(s, u, t) for s, u, t in rows], cursor)


def _subscriber_out(
    subscription: Subscription, user: User, tier: SubscriptionTier
) -> SubscriberOut:
    return SubscriberOut(
        subscription_id=subscription.id,
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        tier=tier.level,
        tier_name=tier.name,
        is_gift=subscription.is_gift,
        auto_renew=subscription.auto_renew,
        months=subscription.months,
        started_at=subscription.started_at,
        current_period_end=subscription.current_period_end,
    )


@router.get("/subscriptions/me", responses=problem_responses(401, 422))
async def my_subscriptions(
    user: CurrentUser, session: ReadSessionDep, page: PageDep,
    channel_id: Annotated[uuid.UUID | None, Query(description="only those to this channel")] = None,
) -> Page[SubscriptionOut]:  # fmt: skip
    """The subscriptions you hold (bought or gifted to you), newest first, ended ones too."""
    async with session.begin():
        rows, info = await subscriptions.list_mine(
            session, user_id=user.id, channel_id=channel_id, params=page
        )
    return make_page([SubscriptionOut.model_validate(s) for s in rows], info)


@router.delete("/subscriptions/{subscription_id}", responses=problem_responses(401, 404))
async def cancel_subscription(
    subscription_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> dict[str, Any]:
    """Stop renewing; the month already paid runs to its end."""
    async with session.begin():
        return _subscription_out(
            await subscriptions.cancel(session, actor=user, subscription_id=subscription_id)
        )
