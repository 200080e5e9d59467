"""Polls and their votes (reactions are not stored: they exist only as bursts to a room)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, new_id, utcnow


class Poll(Base):
    """A question to a channel's viewers with 2-5 choices, open until `ends_at` or ended early.

    A poll is open while `ended_at` is null and `ends_at` has not passed; the partial unique
    index keeps one open poll per channel even when two moderators create one at once.
    """

    __tablename__ = "polls"
    __table_args__ = (
        Index(
            "uq_polls_open_channel",
            "channel_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index("ix_polls_channel_id_created_at", "channel_id", "created_at"),
        Index(
            "ix_polls_due",
            "ends_at",
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    stream_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("streams.id", ondelete="SET NULL")
    )
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    question: Mapped[str] = mapped_column(String(200))
    choices: Mapped[list[str]] = mapped_column(JSON)
    subscribers_only: Mapped[bool] = mapped_column(default=False)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # "expired" (its time ran out), "ended" (ended early), "replaced" never: one poll at a time.
    end_reason: Mapped[str | None] = mapped_column(String(16))
    ended_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The final tallies, written once when the poll ends (counted from the votes).
    final_tallies: Mapped[list[int] | None] = mapped_column(JSON)


class PollVote(Base):
    """One user's vote in one poll: final once cast (the unique key makes it exactly once)."""

    __tablename__ = "poll_votes"
    __table_args__ = (
        UniqueConstraint("poll_id", "user_id"),
        Index("ix_poll_votes_poll_id_choice", "poll_id", "choice"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    poll_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    choice: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
