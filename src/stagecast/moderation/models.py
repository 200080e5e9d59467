"""Channel moderators, bans and timeouts in a channel's chat, and reports of content."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, JSONType, new_id, utcnow


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
    # The queue's case the report joined, and what its decision did (a `Resolution`).
    case_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("moderation_cases.id", ondelete="SET NULL"), index=True
    )
    resolution: Mapped[str | None] = mapped_column(String(16))


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"  # the content stays
    REJECTED = "rejected"  # the content was removed or hidden


class Resolution(enum.StrEnum):
    """What a decision did, as the reports and the admin's list name it."""

    DISMISSED = "dismissed"  # approved: nothing was wrong
    WARNED = "warned"  # the content stays, its owner was warned
    REMOVED = "removed"
    SUSPENDED = "suspended"  # removed, and the owner's account suspended
    BANNED = "banned"  # removed, and the owner's account banned


class ModerationCase(Base):
    """One reported or flagged object in the moderation queue: every report and flag of it
    joins its one open case, which a decision closes (later reports open a new one)."""

    __tablename__ = "moderation_cases"
    __table_args__ = (
        # One open case per object, even when its first reports arrive at once.
        Index(
            "uq_moderation_cases_open",
            "content_type",
            "content_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        # The queue: a status, oldest first (ids are time-ordered).
        Index("ix_moderation_cases_status", "status", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    content_type: Mapped[str] = mapped_column(String(32))
    content_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.OPEN.value)
    first_reported_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_reported_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    decision_note: Mapped[str | None] = mapped_column(Text)
    decision_action: Mapped[str | None] = mapped_column(String(16))  # a Resolution


class FlagKind(enum.StrEnum):
    BLOCKED_TERM = "blocked_term"
    LINK_SPAM = "link_spam"
    FLOOD = "flood"


class ModerationFlag(Base):
    """What the platform noticed by itself in chat (a blocked term, link spam, a flood), with
    its evidence; it joins the object's case like a report."""

    __tablename__ = "moderation_flags"
    __table_args__ = (Index("ix_moderation_flags_channel", "channel_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    content_type: Mapped[str] = mapped_column(String(32))
    content_id: Mapped[uuid.UUID]
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    case_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("moderation_cases.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
