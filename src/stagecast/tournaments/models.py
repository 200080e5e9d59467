"""Tournaments: a bracket of matches between participants, with fees and prizes in tokens."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, JSONType, new_id, utcnow


class TournamentFormat(enum.StrEnum):
    SINGLE_ELIMINATION = "single_elimination"
    DOUBLE_ELIMINATION = "double_elimination"
    ROUND_ROBIN = "round_robin"


class TournamentStatus(enum.StrEnum):
    OPEN = "open"  # taking participants
    RUNNING = "running"  # started: the bracket is fixed
    COMPLETED = "completed"  # every match decided, prizes paid
    CANCELLED = "cancelled"  # fees refunded


class MatchStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a player from an earlier match
    READY = "ready"  # both players known: a result may be reported
    DISPUTED = "disputed"  # the players reported different winners: the organiser decides
    COMPLETED = "completed"
    BYE = "bye"  # one player only: they go through without playing


class Tournament(Base):
    __tablename__ = "tournaments"
    __table_args__ = (Index("ix_tournaments_status_id", "status", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organiser_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    max_participants: Mapped[int]
    starts_at: Mapped[datetime]
    entry_fee_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Percent of the prize pool for each place, first place first; sums to 100.
    prize_split: Mapped[list[int]] = mapped_column(JSONType, default=lambda: [100])
    rules: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=TournamentStatus.OPEN.value)
    seeding: Mapped[str | None] = mapped_column(String(120))  # "random" or a leaderboard name
    winner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]


class TournamentParticipant(Base):
    __tablename__ = "tournament_participants"
    __table_args__ = (UniqueConstraint("tournament_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tournament_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tournaments.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    seed: Mapped[int | None]
    placement: Mapped[int | None]  # 1 for the winner, set at completion
    prize_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # The ledger transaction that paid the entry fee (reversed when it is refunded).
    fee_transaction_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transactions.id")
    )
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class TournamentMatch(Base):
    """One match of the bracket; round 1 is the first. In single elimination the winner of
    (round, position) plays in (round + 1, position // 2). Double elimination numbers its
    losers bracket's rounds from 101 and its grand final 200 (its reset 201): see brackets.py."""

    __tablename__ = "tournament_matches"
    __table_args__ = (UniqueConstraint("tournament_id", "round", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tournament_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tournaments.id", ondelete="CASCADE")
    )
    round: Mapped[int]
    position: Mapped[int]
    player1_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    player2_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default=MatchStatus.PENDING.value)
    winner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    score: Mapped[str | None] = mapped_column(String(40))
    # What each player said the result was ({"<user id>": "<winner id>"}), until they agree.
    reports: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The channel that streams the match: its page links to the stream.
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channels.id", ondelete="SET NULL")
    )
    completed_at: Mapped[datetime | None] = mapped_column(index=True)
