"""Stream sessions of a channel, their tags, and the channel's stream key."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, TimestampMixin, new_id, utcnow


class StreamStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class StreamKey(Base):
    """The channel's secret for publishing: an HMAC for lookup and a ciphertext for its owner.

    Neither is usable without the server secret, which is not in the database.
    """

    __tablename__ = "stream_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), unique=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Stream(TimestampMixin, Base):
    """One broadcast of a channel: scheduled -> live -> ended."""

    __tablename__ = "streams"
    __table_args__ = (
        Index("ix_streams_status_viewers", "status", "viewer_count"),
        Index("ix_streams_channel_created", "channel_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(140))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(
        ForeignKey("categories.slug", ondelete="SET NULL"), index=True
    )
    language: Mapped[str] = mapped_column(String(8), default="en")
    is_mature: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=StreamStatus.SCHEDULED.value)
    scheduled_for: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    viewer_count: Mapped[int] = mapped_column(default=0)
    peak_viewer_count: Mapped[int] = mapped_column(default=0)
    # Integral of viewers over time: average viewers = viewer_seconds / duration.
    viewer_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    viewers_sampled_at: Mapped[datetime | None]
    total_tokens_received: Mapped[int] = mapped_column(BigInteger, default=0)
    # The media node incarnation packaging it while live (see media/models.py MediaNode).
    node_id: Mapped[uuid.UUID | None]
    # When the owner last asked to start it (`POST .../start`): the channel's next publish goes
    # live as the most recently readied scheduled stream.
    ready_at: Mapped[datetime | None]


class StreamViewer(Base):
    """A signed-in viewer's latest join of a stream (`POST /streams/{id}/join`)."""

    __tablename__ = "stream_viewers"

    stream_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class StreamTag(Base):
    __tablename__ = "stream_tags"

    stream_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(25), primary_key=True, index=True)


class Tag(Base):
    """Every tag ever used, with how often, for suggestions."""

    __tablename__ = "tags"

    name: Mapped[str] = mapped_column(String(25), primary_key=True)
    use_count: Mapped[int] = mapped_column(default=0)
