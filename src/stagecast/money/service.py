"""Wallets, tips, donations and gifts: every one a ledger transaction.

A contribution of N tokens moves N out of the viewer's wallet, N minus the platform fee into
the creator's earnings and the fee into platform revenue, in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import String, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from stagecast.accounts.models import User
from stagecast.channels.models import Channel
from stagecast.config import KycSettings, MoneySettings
from stagecast.db.base import new_id, utcnow
from stagecast.errors import AppError, Conflict, NotFound, ValidationFailed
from stagecast.kyc import service as kyc
from stagecast.money import ledger, payouts
from stagecast.money.ledger import Leg, earnings_of, wallet_of
from stagecast.money.models import (
    AccountKind,
    Contribution,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
)
from stagecast.money.schemas import BalanceOut, ContributionOut, GiftOut, TransactionOut
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate_rows
from stagecast.realtime.bus import channel_room, publish, user_room
from stagecast.streams import service as streams
from stagecast.streams.models import Stream, StreamStatus


class CannotTipSelf(AppError):
    status, code, title = 422, "CANNOT_TIP_SELF", "You cannot send tokens to yourself"


class StreamNotLive(Conflict):
    code, title = "STREAM_NOT_LIVE", "Tips go to live streams; send a donation instead"


@dataclass(frozen=True, slots=True)
class Gift:
    slug: str
    name: str
    tokens: int


# The catalogue: what a viewer can send, priced in tokens.
GIFTS: dict[str, Gift] = {
    gift.slug: gift
    for gift in (
        Gift("heart", "Heart", 10),
        Gift("rose", "Rose", 50),
        Gift("confetti", "Confetti", 100),
        Gift("trophy", "Trophy", 500),
        Gift("rocket", "Rocket", 1000),
        Gift("castle", "Castle", 5000),
    )
}

EVENTS = {"tip": "tip:received", "donation": "donation:received", "gift": "gift:sent"}


def fee_for(settings: MoneySettings, tokens: int) -> int:
    """The platform's share, rounded down (the creator keeps the fraction)."""
    return tokens * settings.platform_fee_percent // 100


def check_amount(settings: MoneySettings, tokens: int) -> None:
    if tokens < 1:
        raise ValidationFailed("Send at least 1 token")
    if tokens > settings.max_tip_tokens:
        raise ValidationFailed(f"At most {settings.max_tip_tokens} tokens at once")


async def contribute(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    kind: str,
    sender: User,
    channel: Channel,
    stream: Stream | None,
    tokens: int,
    message: str | None,
    is_private: bool,
    kyc_settings: KycSettings,
    gift: Gift | None = None,
) -> Contribution:
    """Move tokens from a viewer to a creator (tip, donation or gift) and announce it."""
    check_amount(settings, tokens)
    if sender.id == channel.owner_id:
        raise CannotTipSelf()
    await kyc.require_verified(session, kyc_settings, user_id=channel.owner_id, action="tips")
    fee = fee_for(settings, tokens)
    legs = [Leg(wallet_of(sender.id), -tokens), Leg(earnings_of(channel.owner_id), tokens - fee)]
    if fee:
        legs.append(Leg(AccountKind.PLATFORM_REVENUE.value, fee))
    legs = [leg for leg in legs if leg.amount]
    text = (message or "").strip() or None
    row: dict[str, Any] = {
        "id": new_id(), "kind": kind, "stream_id": stream.id if stream else None,
        "channel_id": channel.id, "from_user_id": sender.id, "to_user_id": channel.owner_id,
        "tokens": tokens, "fee_tokens": fee, "message": text, "is_private": is_private,
        "gift_slug": gift.slug if gift else None, "created_at": utcnow(),
    }  # fmt: skip
    along: list[UpdateBase] = []
    if stream is not None:
        # In SQL, not in Python: concurrent tips on one stream must all count.
        along.append(
            update(ledger.table_of(Stream))
            .where(Stream.id == stream.id)
            # Explicit: Python-side defaults (onupdate) are not applied inside a CTE.
            .values(
                total_tokens_received=Stream.total_tokens_received + tokens,
                updated_at=row["created_at"],
            )
        )
    # The contribution names the ledger transaction, written in the same round trip.
    transaction_id = new_id()
    row["transaction_id"] = transaction_id
    await ledger.post(
        session,
        kind=kind,
        legs=legs,
        description=f"{kind.capitalize()} to {channel.slug}",
        actor_id=sender.id,
        details={"channel_id": str(channel.id), "stream_id": str(stream.id) if stream else None},
        transaction_id=transaction_id,
        along=[insert(ledger.table_of(Contribution)).values(row), *along],
    )
    contribution = ledger.attach(session, Contribution(**row))
    if stream is not None:
        session.expire(stream, ["total_tokens_received"])  # moved in SQL, read again if needed
    public = present_contribution(contribution, sender, viewer_id=None)
    payload = public.model_dump(mode="json")
    if gift is not None:
        payload["gift_name"] = gift.name
    publish(session, EVENTS[kind], payload, rooms=(channel_room(channel.id),))
    if is_private:  # the creator still learns who it was, privately
        private = present_contribution(contribution, sender, viewer_id=channel.owner_id)
        publish(
            session,
            EVENTS[kind],
            private.model_dump(mode="json"),
            rooms=(user_room(channel.owner_id),),
        )
    return contribution


async def tip_stream(
    session: AsyncSession,
    settings: MoneySettings,
    *,
    sender: User,
    stream_id: uuid.UUID,
    tokens: int,
    message: str | None,
    is_private: bool,
    kyc_settings: KycSettings,
) -> Contribution:
    """A tip on a live stream (an ended or scheduled one takes donations instead)."""
    stream, channel = await streams.get_stream_and_channel(session, stream_id)
    if stream.status != StreamStatus.LIVE.value:
        raise StreamNotLive()
    return await contribute(
        session, settings, kind="tip", sender=sender, channel=channel, stream=stream,
        tokens=tokens, message=message, is_private=is_private, kyc_settings=kyc_settings,
    )  # fmt: skip


async def live_stream(session: AsyncSession, stream_id: uuid.UUID) -> Stream:
    stream = await streams.get_stream(session, stream_id)
    if stream.status != StreamStatus.LIVE.value:
        raise StreamNotLive()
    return stream


def gift_named(slug: str) -> Gift:
    gift = GIFTS.get(slug)
    if gift is None:
        raise NotFound(f"No gift called {slug!r}; see GET /api/v1/gifts")
    return gift


def gift_catalogue() -> list[GiftOut]:
    return [GiftOut(slug=g.slug, name=g.name, tokens=g.tokens) for g in GIFTS.values()]


def present_contribution(
    contribution: Contribution, sender: User | None, *, viewer_id: uuid.UUID | None
) -> ContributionOut:
    """Private contributions name their sender and message only to the two people in them."""
    insider = viewer_id is not None and viewer_id in {
        contribution.from_user_id,
        contribution.to_user_id,
    }
    hidden = contribution.is_private and not insider
    return ContributionOut(
        id=contribution.id,
        kind=contribution.kind,
        stream_id=contribution.stream_id,
        channel_id=contribution.channel_id,
        from_user_id=None if hidden else contribution.from_user_id,
        from_username=None if hidden or sender is None else sender.username,
        from_display_name=None if hidden or sender is None else sender.display_name,
        to_user_id=contribution.to_user_id,
        tokens=contribution.tokens,
        fee_tokens=contribution.fee_tokens,
        message=None if hidden else contribution.message,
        is_private=contribution.is_private,
        gift=contribution.gift_slug,
        created_at=contribution.created_at,
    )


async def list_contributions(
    session: AsyncSession,
    *,
    params: PageParams,
    viewer_id: uuid.UUID | None,
    stream_id: uuid.UUID | None = None,
    from_user_id: uuid.UUID | None = None,
    kind: str | None = None,
) -> tuple[list[ContributionOut], PageInfo]:
    query = select(Contribution, User).join(User, User.id == Contribution.from_user_id)
    if stream_id is not None:
        query = query.where(Contribution.stream_id == stream_id)
    if from_user_id is not None:
        query = query.where(Contribution.from_user_id == from_user_id)
    if kind is not None:
        query = query.where(Contribution.kind == kind)
    rows, cursor = await paginate_rows(
        session, query, keys=[SortKey(Contribution.id, lambda row: row[0].id)], params=params
    )
    return [present_contribution(c, u, viewer_id=viewer_id) for c, u in rows], cursor


# --- wallet ----------------------------------------------------------------------------------


# Built once (its cache key is memoised on the statement): GET /wallet/balance is a hot path.
_BALANCES_QUERY = select(
    ledger.balance_query(bindparam("wallet", type_=String)).scalar_subquery(),
    ledger.balance_query(bindparam("earnings", type_=String)).scalar_subquery(),
    payouts.reserved_tokens_query(bindparam("user_id")).scalar_subquery(),
)


async def balances(
    session: AsyncSession, settings: MoneySettings, user_id: uuid.UUID
) -> BalanceOut:
    """The wallet, the earnings and what payouts hold, in one statement (a hot path)."""
    wallet, earnings, reserved = (
        await session.execute(
            _BALANCES_QUERY,
            {"wallet": wallet_of(user_id), "earnings": earnings_of(user_id), "user_id": user_id},
        )
    ).one()
    return BalanceOut(
        token_balance=int(wallet or 0),
        earnings_balance=int(earnings or 0),
        reserved_balance=int(reserved or 0),
        currency_code=settings.currency.upper(),
        conversion_rate=float(settings.tokens_per_unit),
    )


_TYPES = {
    ("tip", AccountKind.WALLET): "tip_sent",
    ("tip", AccountKind.EARNINGS): "tip_received",
    ("donation", AccountKind.WALLET): "donation_sent",
    ("donation", AccountKind.EARNINGS): "donation_received",
    ("gift", AccountKind.WALLET): "gift_sent",
    ("gift", AccountKind.EARNINGS): "gift_received",
    ("subscription", AccountKind.WALLET): "subscription_paid",
    ("subscription", AccountKind.EARNINGS): "subscription_earned",
}


async def list_transactions(
    session: AsyncSession, settings: MoneySettings, *, user_id: uuid.UUID, params: PageParams
) -> tuple[list[TransactionOut], PageInfo]:
    """The user's wallet and earnings entries, newest first."""
    query = (
        select(LedgerEntry, LedgerAccount.kind, LedgerTransaction)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerAccount.key.in_([wallet_of(user_id), earnings_of(user_id)]))
    )
    rows, cursor = await paginate_rows(
        session, query, keys=[SortKey(LedgerEntry.id, lambda row: row[0].id)], params=params
    )
    fees = await _fees(session, [t.id for _, _, t in rows])
    out = []
    for entry, account_kind, transaction in rows:
        kind = AccountKind(account_kind)
        out.append(
            TransactionOut(
                id=entry.id,
                transaction_id=transaction.id,
                transaction_type=_TYPES.get((transaction.kind, kind), transaction.kind),
                account=kind.value,
                amount_tokens=entry.amount,
                amount_currency=round(entry.amount / settings.tokens_per_unit, 2),
                fee_tokens=fees.get(transaction.id, 0) if kind is AccountKind.EARNINGS else 0,
                balance_after=entry.balance_after,
                description=transaction.description,
                created_at=entry.created_at,
            )
        )
    return out, cursor


async def _fees(session: AsyncSession, transaction_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not transaction_ids:
        return {}
    rows = await session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.amount)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(
            LedgerEntry.transaction_id.in_(transaction_ids),
            LedgerAccount.kind == AccountKind.PLATFORM_REVENUE.value,
        )
    )
    return {transaction_id: int(amount) for transaction_id, amount in rows.all()}


async def channel_revenue(
    session: AsyncSession, *, channel: Channel, since: date | None
) -> dict[str, Any]:
    """What the channel earned after fees, by day and by source (tips, gifts, …)."""
    day = func.date(LedgerEntry.created_at)
    query = (
        select(day, LedgerTransaction.kind, func.sum(LedgerEntry.amount))
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerAccount.key == earnings_of(channel.owner_id),
            LedgerTransaction.kind.in_(("tip", "donation", "gift", "subscription")),
        )
        .group_by(day, LedgerTransaction.kind)
        .order_by(day)
    )
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    by_day: dict[str, dict[str, int]] = {}
    by_source: dict[str, int] = {}
    for when, kind, amount in (await session.execute(query)).all():
        by_day.setdefault(str(when), {})[kind] = int(amount)
        by_source[kind] = by_source.get(kind, 0) + int(amount)
    return {
        "channel_id": str(channel.id),
        "total_tokens": sum(by_source.values()),
        "by_source": by_source,
        "by_day": [{"date": d, "total": sum(v.values()), **v} for d, v in by_day.items()],
    }
