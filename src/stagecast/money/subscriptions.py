"""Channel subscriptions: tiers priced in tokens a month, gifts, renewals, cancellations.

A subscription is paid a month ahead from the payer's wallet (a ledger transaction with the
platform fee). A scheduled job renews the ones that are due: a wallet that cannot pay lapses
the subscription and tells the payer; a cancelled one runs to the end of its paid month.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.config import MoneySettings
from stagecast.db.base import utcnow
from stagecast.errors import AppError, Conflict, NotFound
from stagecast.leaderboards import events as leaderboard_events
from stagecast.leaderboards.events import supporters_board
from stagecast.money import ledger
from stagecast.money.ledger import InsufficientBalance, Leg, earnings_of, wallet_of
from stagecast.money.models import AccountKind, Subscription, SubscriptionTier
from stagecast.notifications import service as notifications
from stagecast.pagination import PageInfo, PageParams, SortKey, by_id, paginate, paginate_rows
from stagecast.realtime.bus import channel_room, publish, user_room

log = structlog.get_logger(__name__)

PERIOD = timedelta(days=30)
SUBSCRIBER_MILESTONES = (1, 5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 10_000, 50_000)
DEFAULT_TIERS = ((1, "Tier 1", 499), (2, "Tier 2", 999), (3, "Tier 3", 2499))


class CannotSubscribeSelf(AppError):
    status, code, title = 422, "CANNOT_SUBSCRIBE_SELF", "You cannot subscribe to your own channel"


class AlreadySubscribed(Conflict):
    code, title = "ALREADY_SUBSCRIBED", "Already subscribed to this channel"


async def tiers_of(
    session: AsyncSession, channel: Channel, *, create: bool = True
) -> list[SubscriptionTier]:
    """The channel's tiers (the defaults are stored on first use; with `create` False, as
    when only reading them, they are shown without being stored)."""
    tiers = list(
        (
            await session.scalars(
                select(SubscriptionTier)
                .where(SubscriptionTier.channel_id == channel.id)
                .order_by(SubscriptionTier.level)
            )
        ).all()
    )
    if not tiers:
        tiers = [
            SubscriptionTier(channel_id=channel.id, level=level, name=name, tokens_per_month=price)
            for level, name, price in DEFAULT_TIERS
        ]
        if create:
            session.add_all(tiers)
            await session.flush()
    return tiers


async def set_tier_price(
    session: AsyncSession,
    *,
    actor: User,
    channel: Channel,
    level: int,
    tokens: int,
    name: str | None,
) -> SubscriptionTier:
    channels.ensure_owner(actor, channel)
    for tier in await tiers_of(session, channel):
        if tier.level == level:
            tier.tokens_per_month = tokens
            if name:
                tier.name = name
            await session.flush()
            return tier
    raise NotFound(f"No tier {level}")


def _paid_up(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Subscriptions that count now: active, and their paid month not over."""
    return (Subscription.status == "active", Subscription.current_period_end > now)


async def active_subscription(
    session: AsyncSession, *, channel_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> Subscription | None:
    return await session.scalar(
        select(Subscription).where(
            Subscription.channel_id == channel_id, Subscription.user_id == user_id, *_paid_up(now)
        )
    )


async def subscribers_among(
    session: AsyncSession, *, channel_id: uuid.UUID, user_ids: Iterable[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """Which of these users have a paid-up subscription (chat badges, subscribers-only)."""
    wanted = set(user_ids)
    if not wanted:
        return set()
    rows = await session.scalars(
        select(Subscription.user_id).where(
            Subscription.channel_id == channel_id, Subscription.user_id.in_(wanted), *_paid_up(now)
        )
    )
    return set(rows.all())


async def _charge(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    payer_id: uuid.UUID,
    channel: Channel,
    tier: SubscriptionTier,
    description: str,
) -> None:
    price = tier.tokens_per_month
    fee = price * settings.platform_fee_percent // 100
    legs = [Leg(wallet_of(payer_id), -price), Leg(earnings_of(channel.owner_id), price - fee)]
    if fee:
        legs.append(Leg(AccountKind.PLATFORM_REVENUE.value, fee))
    await ledger.post(
        session,
        kind="subscription",
        legs=[leg for leg in legs if leg.amount],
        description=description,
        actor_id=payer_id,
        details={"channel_id": str(channel.id), "tier": tier.level},
    )
    # The payer supports the channel: its supporters board counts the price.
    leaderboard_events.member_changed(session, board=supporters_board(channel.id), user_id=payer_id)


async def subscribe(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    payer: User,
    channel: Channel,
    level: int,
    recipient: User | None = None,
) -> Subscription:
    """Subscribe (or gift a month to `recipient`), paying the first month now."""
    subscriber = recipient or payer
    if subscriber.id == channel.owner_id:
        raise CannotSubscribeSelf()
    now = utcnow()
    if await active_subscription(session, channel_id=channel.id, user_id=subscriber.id, now=now):
        raise AlreadySubscribed()
    tiers = {t.level: t for t in await tiers_of(session, channel)}
    tier = tiers.get(level)
    if tier is None:
        raise NotFound(f"No tier {level}; the channel has {sorted(tiers)}")
    gift = recipient is not None and recipient.id != payer.id
    await _charge(
        session,
        settings,
        payer_id=payer.id,
        channel=channel,
        tier=tier,
        description=f"{'Gift subscription' if gift else 'Subscription'} to {channel.slug}",
    )
    subscription = Subscription(
        channel_id=channel.id,
        user_id=subscriber.id,
        payer_id=payer.id,
        tier_id=tier.id,
        is_gift=gift,
        auto_renew=not gift,  # a gift is one month; the recipient may subscribe after
        current_period_end=now + PERIOD,
        started_at=now,
    )
    session.add(subscription)
    await session.flush()
    publish(
        session,
        "subscription:new",
        {
            "channel_id": str(channel.id),
            "subscription_id": str(subscription.id),
            "username": subscriber.username,
            "tier": tier.level,
            "is_gift": gift,
            "gifted_by": payer.username if gift else None,
        },
        rooms=(channel_room(channel.id),),
    )
    await _announce_milestone(session, channel, now=now)
    return subscription


async def _announce_milestone(session: AsyncSession, channel: Channel, *, now: datetime) -> None:
    count = await session.scalar(
        select(func.count()).where(Subscription.channel_id == channel.id, *_paid_up(now))
    )
    if count in SUBSCRIBER_MILESTONES:
        publish(
            session,
            "milestone:reached",
            {"channel_id": str(channel.id), "kind": "subscribers", "value": count},
            rooms=(channel_room(channel.id),),
        )


async def cancel(session: AsyncSession, *, actor: User, subscription_id: uuid.UUID) -> Subscription:
    """Stop renewing; the paid month runs to its end."""
    subscription = await session.get(Subscription, subscription_id)
    if subscription is None or actor.id not in {subscription.user_id, subscription.payer_id}:
        raise NotFound("Subscription not found")
    if subscription.cancelled_at is None:
        subscription.cancelled_at = utcnow()
        subscription.auto_renew = False
        await session.flush()
    return subscription


async def list_subscribers(
    session: AsyncSession, *, channel: Channel, params: PageParams, now: datetime
) -> tuple[list[tuple[Subscription, User, SubscriptionTier]], PageInfo]:
    """The channel's paid-up subscriptions with their subscriber and tier, newest first."""
    query = (
        select(Subscription, User, SubscriptionTier)
        .join(User, User.id == Subscription.user_id)
        .join(SubscriptionTier, SubscriptionTier.id == Subscription.tier_id)
        .where(Subscription.channel_id == channel.id, *_paid_up(now))
    )
    return await paginate_rows(
        session, query, keys=[SortKey(Subscription.id, lambda row: row[0].id)], params=params
    )


async def list_mine(
    session: AsyncSession, *, user_id: uuid.UUID, channel_id: uuid.UUID | None, params: PageParams
) -> tuple[list[Subscription], PageInfo]:
    """The subscriptions a user holds (bought or gifted to them), newest first."""
    query = select(Subscription).where(Subscription.user_id == user_id)
    if channel_id is not None:
        query = query.where(Subscription.channel_id == channel_id)
    return await paginate(session, query, keys=by_id(Subscription.id), params=params)


async def renew_due(session: AsyncSession, settings: MoneySettings, *, now: datetime) -> int:
    """Renew or end every subscription whose month is over; returns how many were handled."""
    due = list(
        (
            await session.scalars(
                select(Subscription)
                .where(Subscription.status == "active", Subscription.current_period_end <= now)
                # Another node's pass holds some: it handles those.
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    for subscription in due:
        if not subscription.auto_renew:
            subscription.status = "ended"
            continue
        channel = await session.get_one(Channel, subscription.channel_id)
        tier = await session.get_one(SubscriptionTier, subscription.tier_id)
        try:
            async with session.begin_nested():  # a failed charge leaves the others be
                await _charge(
                    session,
                    settings,
                    payer_id=subscription.payer_id,
                    channel=channel,
                    tier=tier,
                    description=f"Subscription renewal to {channel.slug}",
                )
        except InsufficientBalance:
            subscription.status = "lapsed"
            await notifications.notify(
                session,
                user_id=subscription.payer_id,
                kind="subscription.lapsed",
                payload={
                    "channel_id": str(channel.id),
                    "channel_slug": channel.slug,
                    "subscription_id": str(subscription.id),
                    "reason": "Not enough tokens to renew",
                },
            )
            publish(
                session,
                "subscription:lapsed",
                {"subscription_id": str(subscription.id), "channel_id": str(channel.id)},
                rooms=(user_room(subscription.payer_id),),
            )
            continue
        subscription.current_period_end += PERIOD
        subscription.months += 1
    await session.flush()
    return len(due)
