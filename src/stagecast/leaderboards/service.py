"""Leaderboards: who scored most on a board, over a calendar period, ranked the same everywhere.

A board's name says what it counts (docs/interactions.md):

- `channel:<channel id or slug>:supporters`: tokens a user gave the channel (tips, donations,
  gifts, subscriptions they paid for; private ones stay off the board);
- `channel:<channel id or slug>:chat`: chat messages a user sent in the channel;
- `tournament:<tournament id>:standings`: matches a participant won (byes do not count);
- `creators:followers`: creators by followers (gained in the period, or all they have).

Scores are read from the database, which holds every one of them. When Redis is configured
every board is kept in sorted sets as well (leaderboards/sorted_sets.py) and read from there.
Ranks are positions: score descending, then user id ascending (both backends).
"""

from __future__ import annotations

import contextlib
import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.selectable import SelectBase

from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel, ChannelFollow
from stagecast.chat.models import ChatMessage
from stagecast.errors import NotFound
from stagecast.leaderboards.events import FOLLOWERS_BOARD, standings_board
from stagecast.leaderboards.schemas import BoardEntry
from stagecast.money.ledger import earnings_of
from stagecast.money.models import AccountKind, Contribution, LedgerAccount, LedgerEntry
from stagecast.money.models import LedgerTransaction as Movement
from stagecast.tournaments.models import MatchStatus, Tournament, TournamentMatch

MAX_LIMIT = 100
NEIGHBOURS = 2  # entries shown on each side of a user's own


class LeaderboardNotFound(NotFound):
    code, title = "LEADERBOARD_NOT_FOUND", "No such leaderboard"


class Period(enum.StrEnum):
    DAY = "day"  # since 00:00 UTC today
    WEEK = "week"  # since Monday 00:00 UTC
    MONTH = "month"  # since the 1st, 00:00 UTC
    ALL = "all"


class BoardKind(enum.StrEnum):
    SUPPORTERS = "supporters"
    CHAT = "chat"
    STANDINGS = "standings"
    FOLLOWERS = "followers"


@dataclass(frozen=True, slots=True)
class Board:
    name: str  # canonical: channels named by id
    kind: BoardKind
    subject_id: uuid.UUID | None = None  # the channel or tournament
    owner_id: uuid.UUID | None = None  # the channel's owner (whose earnings subs pay)


def period_start(period: Period, now: datetime) -> datetime | None:
    """Where the period began (UTC calendar periods), None for all time."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return midnight
    if period is Period.WEEK:
        return midnight - timedelta(days=midnight.weekday())
    if period is Period.MONTH:
        return midnight.replace(day=1)
    return None


async def resolve_board(session: AsyncSession, name: str) -> Board:
    """The board a name means; LeaderboardNotFound for a name that is none."""
    parts = name.split(":")
    if parts == ["creators", BoardKind.FOLLOWERS]:
        return Board(name=FOLLOWERS_BOARD, kind=BoardKind.FOLLOWERS)
    if len(parts) == 3 and parts[0] == "channel" and parts[2] in {"supporters", "chat"}:
        try:
            channel = await channels.get_channel(session, parts[1])
        except NotFound:
            raise LeaderboardNotFound(f"No channel {parts[1]!r} for this board") from None
        kind = BoardKind(parts[2])
        return Board(
            f"channel:{channel.id}:{kind}", kind, subject_id=channel.id, owner_id=channel.owner_id
        )
    if len(parts) == 3 and parts[0] == "tournament" and parts[2] == BoardKind.STANDINGS:
        tournament = None
        with contextlib.suppress(ValueError):
            tournament = await session.get(Tournament, uuid.UUID(parts[1]))
        if tournament is None:
            raise LeaderboardNotFound(f"No tournament {parts[1]!r} for this board")
        return Board(standings_board(tournament.id), BoardKind.STANDINGS, subject_id=tournament.id)
    raise LeaderboardNotFound(
        f"No leaderboard called {name!r}: try channel:<id>:supporters, channel:<id>:chat, "
        "tournament:<id>:standings or creators:followers"
    )


def _since(column: Any, since: datetime | None) -> list[ColumnElement[bool]]:
    return [] if since is None else [column >= since]


def _points(board: Board, since: datetime | None) -> SelectBase:
    """Rows of (user, points) that add up to the board's scores."""
    if board.kind is BoardKind.SUPPORTERS:
        given = select(
            Contribution.from_user_id.label("user_id"), Contribution.tokens.label("points")
        ).where(
            Contribution.channel_id == board.subject_id,
            Contribution.is_private.is_(False),
            *_since(Contribution.created_at, since),
        )
        # Subscriptions (and renewals) are ledger movements from the payer's wallet into the
        # owner's earnings.
        paid, earned = aliased(LedgerEntry), aliased(LedgerEntry)
        wallet, earnings = aliased(LedgerAccount), aliased(LedgerAccount)
        subscribed = (
            select(Movement.actor_id.label("user_id"), (-paid.amount).label("points"))
            .join(paid, paid.transaction_id == Movement.id)
            .join(
                wallet,
                and_(wallet.id == paid.account_id, wallet.kind == AccountKind.WALLET.value),
            )
            .join(earned, earned.transaction_id == Movement.id)
            .join(
                earnings,
                and_(
                    earnings.id == earned.account_id,
                    earnings.key == earnings_of(board.owner_id or uuid.UUID(int=0)),
                ),
            )
            .where(Movement.kind == "subscription", *_since(Movement.created_at, since))
        )
        return union_all(given, subscribed)
    if board.kind is BoardKind.CHAT:
        return select(ChatMessage.user_id.label("user_id"), literal(1).label("points")).where(
            ChatMessage.channel_id == board.subject_id, *_since(ChatMessage.created_at, since)
        )
    if board.kind is BoardKind.STANDINGS:
        return select(TournamentMatch.winner_id.label("user_id"), literal(1).label("points")).where(
            TournamentMatch.tournament_id == board.subject_id,
            TournamentMatch.status == MatchStatus.COMPLETED.value,
            *_since(TournamentMatch.completed_at, since),
        )
    if since is None:  # all of a creator's followers: the count kept on the channel
        return select(
            Channel.owner_id.label("user_id"), Channel.follower_count.label("points")
        ).where(Channel.follower_count > 0)
    return (
        select(Channel.owner_id.label("user_id"), literal(1).label("points"))
        .join(ChannelFollow, ChannelFollow.channel_id == Channel.id)
        .where(ChannelFollow.created_at >= since)
    )


def scores(board: Board, since: datetime | None) -> Subquery:
    """(user_id, score) of every user with a positive score on the board."""
    points = _points(board, since).subquery()
    return (
        select(points.c.user_id, func.sum(points.c.points).label("score"))
        .group_by(points.c.user_id)
        .having(func.sum(points.c.points) > 0)
        .subquery()
    )


async def all_scores(
    session: AsyncSession, board: Board, since: datetime | None
) -> list[tuple[uuid.UUID, int]]:
    """Every (user, score) on the board, ranked (what a sorted set is rebuilt from)."""
    table = scores(board, since)
    rows = await session.execute(
        select(table.c.user_id, table.c.score).order_by(table.c.score.desc(), table.c.user_id)
    )
    return [(user_id, int(score)) for user_id, score in rows.all()]


async def member_scores(
    session: AsyncSession, board: Board, since: datetime | None, users: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The positive scores of some users on the board (those without one have none)."""
    table = scores(board, since)
    rows = await session.execute(
        select(table.c.user_id, table.c.score).where(table.c.user_id.in_(users))
    )
    return {user_id: int(score) for user_id, score in rows.all()}


async def sql_top(
    session: AsyncSession, board: Board, since: datetime | None, *, limit: int, offset: int = 0
) -> list[tuple[int, uuid.UUID, int]]:
    """(rank, user, score) of the board's best, from the database."""
    table = scores(board, since)
    rows = await session.execute(
        select(table.c.user_id, table.c.score)
        .order_by(table.c.score.desc(), table.c.user_id)
        .limit(limit)
        .offset(offset)
    )
    return [(offset + n + 1, u, int(s)) for n, (u, s) in enumerate(rows.all())]


async def sql_entry(
    session: AsyncSession, board: Board, since: datetime | None, user_id: uuid.UUID
) -> tuple[int | None, int, list[tuple[int, uuid.UUID, int]]]:
    """(rank, score, neighbours) of one user on the board, from the database."""
    table = scores(board, since)
    score = await session.scalar(select(table.c.score).where(table.c.user_id == user_id))
    if score is None:
        return None, 0, []
    ahead = await session.scalar(
        select(func.count()).where(
            or_(
                table.c.score > score,
                and_(table.c.score == score, table.c.user_id < user_id),
            )
        )
    )
    rank = int(ahead or 0) + 1
    start = max(rank - 1 - NEIGHBOURS, 0)
    around = await sql_top(session, board, since, limit=rank - start + NEIGHBOURS, offset=start)
    return rank, int(score), around


async def present(
    session: AsyncSession, ranked: list[tuple[int, uuid.UUID, int]]
) -> list[BoardEntry]:
    """Ranked (rank, user, score) with the users' names."""
    ids = {user_id for _, user_id, _ in ranked}
    users = (
        {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids)))).all()}
        if ids
        else {}
    )
    out = []
    for rank, user_id, score in ranked:
        user = users.get(user_id)
        out.append(
            BoardEntry(
                rank=rank,
                user_id=user_id,
                username=user.username if user else None,
                display_name=user.display_name if user else None,
                score=score,
            )
        )
    return out
