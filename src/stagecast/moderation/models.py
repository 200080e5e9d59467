"""Channel moderators, bans and timeouts in a channel's chat, and reports of content."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, new_id, utcnow


class ChannelModerator(Base):
    __tablename__ = "channel_moderators"
    __table_args__ = (UniqueConstraint("channel_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelBan(Base):
    """A ban (no expiry) or a timeout (with one) of a user in a channel's chat."""

    __tablename__ = "channel_bans"
    __table_args__ = (UniqueConstraint("channel_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    moderator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]


class ReportedType(enum.StrEnum):
    """What can be reported (issue 17 adds its queue over every kind)."""

    USER = "user"
    STREAM = "stream"
    VOD = "vod"
    CLIP = "clip"
    CHAT_MESSAGE = "chat_message"
    CHANNEL = "channel"


class ReportReason(enum.StrEnum):
    SPAM = "spam"
    HARASSMENT = "harassment"
    HATE = "hate"
    VIOLENCE = "violence"
    SEXUAL_CONTENT = "sexual_content"
    SELF_HARM = "self_harm"
    MINOR_SAFETY = "minor_safety"
    ILLEGAL = "illegal"
    COPYRIGHT = "copyright"
    MISINFORMATION = "misinformation"
    IMPERSONATION = "impersonation"
    OTHER = "other"


class ReportStatus(enum.StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class Report(Base):
    """One user's report of one piece of content; reported again while pending, it is the
    same row (`count` grows, the latest reason and details win).

    `content_id` names a row of the table its `content_type` says, without a foreign key: a
    report outlives what it reports (a deleted VOD's report is still the moderators' record).
    """

    __tablename__ = "reports"
    __table_args__ = (
        # One pending report per reporter and item: a duplicate merges into it, even when two
        # arrive at once. Resolved ones stay, and the same user may report the item again.
        Index(
            "uq_reports_pending",
            "reporter_id",
            "content_type",
            "content_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # The moderation queue: pending reports, oldest first, grouped per item.
        Index("ix_reports_status_content", "status", "content_type", "content_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    content_type: Mapped[str] = mapped_column(String(32))
    content_id: Mapped[uuid.UUID]
    reporter_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    reason: Mapped[str] = mapped_column(String(32))
    details: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=ReportStatus.PENDING.value)
    count: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
