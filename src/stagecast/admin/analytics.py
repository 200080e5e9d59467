"""The platform's figures for the admin dashboard, from the database, by day (UTC)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User, UserStatus
from stagecast.admin.schemas import AnalyticsOverview, DayFigures, OverviewTotals
from stagecast.channels.models import Channel
from stagecast.moderation.models import Report
from stagecast.money.models import (
    AccountKind,
    Contribution,
    LedgerAccount,
    LedgerEntry,
    Payout,
    Purchase,
)
from stagecast.streams.models import Stream, StreamStatus

# Purchases whose money came in (a refund keeps the purchase; its refunded part is taken off).
TAKEN = ("completed", "partially_refunded", "refunded", "disputed")
PENDING_PAYOUTS = ("requested", "approved", "retrying")


def _day(session: AsyncSession, column: Any) -> ColumnElement[Any]:
    """The UTC day of a timestamp column, grouped in the database."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC text: date() is its day


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def count_open_reports(session: AsyncSession) -> int:
    """Reports waiting in the moderation queue (pending, behind the status index)."""
    count = await session.scalar(
        select(func.count()).select_from(Report).where(Report.status == "pending")
    )
    return int(count or 0)


async def _by_day(
    session: AsyncSession, statement: Select[Any], figures: dict[date, DayFigures], *names: str
) -> None:
    for row in await session.execute(statement):
        day = figures.get(_as_date(row[0]))
        if day is None:
            continue
        for name, value in zip(names, row[1:], strict=True):
            # PostgreSQL sums integers as numerics: back to int.
            setattr(day, name, getattr(day, name) + int(value or 0))


async def overview(
    session: AsyncSession, *, since: datetime, until: datetime, now: datetime, currency: str
) -> AnalyticsOverview:
    """Totals over [since, until) and the same figures for each day in it."""
    first, last = since.date(), (until - timedelta(microseconds=1)).date()
    figures = {
        first + timedelta(days=i): DayFigures(day=first + timedelta(days=i))
        for i in range((last - first).days + 1)
    }

    def window(column: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return column >= since, column < until

    day = _day(session, User.created_at)
    await _by_day(
        session,
        select(day, func.count()).where(*window(User.created_at)).group_by(day),
        figures,
        "new_users",
    )
    day = _day(session, Purchase.completed_at)
    await _by_day(
        session,
        select(
            day,
            func.sum(Purchase.tokens),
            func.sum(Purchase.amount_cents - Purchase.refunded_cents),
        )
        .where(*window(Purchase.completed_at), Purchase.status.in_(TAKEN))
        .group_by(day),
        figures,
        "tokens_bought",
        "purchases_cents",
    )
    day = _day(session, Contribution.created_at)
    await _by_day(
        session,
        select(day, func.sum(Contribution.tokens))
        .where(*window(Contribution.created_at))
        .group_by(day),
        figures,
        "tokens_tipped",
    )
    # Fees of every kind (tips, gifts, subscriptions) as they reached the platform's account.
    day = _day(session, LedgerEntry.created_at)
    await _by_day(
        session,
        select(day, func.sum(LedgerEntry.amount))
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(*window(LedgerEntry.created_at), LedgerAccount.kind == AccountKind.PLATFORM_REVENUE)
        .group_by(day),
        figures,
        "platform_fee_tokens",
    )
    day = _day(session, Payout.updated_at)
    await _by_day(
        session,
        select(day, func.sum(Payout.tokens))
        .where(*window(Payout.updated_at), Payout.status == "paid")
        .group_by(day),
        figures,
        "payouts_tokens",
    )
    # Hours are counted per stream by its start day; a stream still live counts until now.
    started = await session.execute(
        select(Stream.started_at, Stream.ended_at).where(*window(Stream.started_at))
    )
    for started_at, ended_at in started:
        entry = figures.get(started_at.date()) if started_at is not None else None
        if started_at is None or entry is None:
            continue
        entry.streams += 1
        entry.hours_streamed += max(0.0, ((ended_at or now) - started_at).total_seconds() / 3600)
    days = list(figures.values())
    for entry in days:
        entry.hours_streamed = round(entry.hours_streamed, 2)

    users = await session.scalar(
        select(func.count()).select_from(User).where(User.status != UserStatus.DELETED.value)
    )
    creators = await session.scalar(select(func.count(func.distinct(Channel.owner_id))))
    live = await session.scalar(
        select(func.count()).select_from(Stream).where(Stream.status == StreamStatus.LIVE.value)
    )
    pending = await session.scalar(
        select(func.count()).select_from(Payout).where(Payout.status.in_(PENDING_PAYOUTS))
    )
    totals = OverviewTotals(
        users=users or 0,
        new_users=sum(d.new_users for d in days),
        creators=creators or 0,
        live_now=live or 0,
        streams=sum(d.streams for d in days),
        hours_streamed=round(sum(d.hours_streamed for d in days), 2),
        tokens_bought=sum(d.tokens_bought for d in days),
        purchases_cents=sum(d.purchases_cents for d in days),
        tokens_tipped=sum(d.tokens_tipped for d in days),
        platform_fee_tokens=sum(d.platform_fee_tokens for d in days),
        payouts_tokens=sum(d.payouts_tokens for d in days),
        payouts_pending=pending or 0,
        reports_open=await count_open_reports(session),
    )
    return AnalyticsOverview(
        period_from=since, period_to=until, currency=currency, totals=totals, days=days
    )
