"""A finished stream's recording, playable as HLS VOD from the media store, and where each
viewer stopped watching it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, JSONType, TimestampMixin, new_id, utcnow


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    SUBSCRIBERS = "subscribers"  # the channel's paid-up subscribers (and its owner, staff)
    PRIVATE = "private"  # the channel's owner and staff only


class Vod(TimestampMixin, Base):
    __tablename__ = "vods"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    stream_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), unique=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(140))
    duration_seconds: Mapped[float]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # Keys in the media store: the VOD master playlist and the last thumbnail.
    playlist_key: Mapped[str] = mapped_column(String(300))
    thumbnail_key: Mapped[str | None] = mapped_column(String(300))
    renditions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    visibility: Mapped[str] = mapped_column(
        String(16), default=Visibility.PUBLIC.value, server_default=Visibility.PUBLIC.value
    )
    # Seek previews: the WebVTT track's key (its sprite sits beside it), once made; a failed
    # attempt is remembered so that the job does not retry it forever.
    previews_key: Mapped[str | None] = mapped_column(String(300))
    previews_failed_at: Mapped[datetime | None]
    # The recording's spans of continuous wall time, `[offset, wall clock, duration]` each
    # (from the playlist's program date-times): chat replay places messages with them.
    timeline: Mapped[list[list[object]] | None] = mapped_column(JSONType)


class VodProgress(Base):
    """How far one viewer watched one recording (the web player resumes there)."""

    __tablename__ = "vod_progress"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    vod_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("vods.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position_seconds: Mapped[float]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
