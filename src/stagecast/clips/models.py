"""Clips: a range of a stream's recording, playable as HLS at once, then as an MP4."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, JSONType, TimestampMixin, new_id, utcnow


class ClipMedia(enum.StrEnum):
    """Whose files the clip's playlists name."""

    REFERENCING = "referencing"  # the stream's recorded segments, in place
    COPIED = "copied"  # the clip's own copies under clips/<id>/ (the VOD may be gone)


class Mp4State(enum.StrEnum):
    PENDING = "pending"  # a render is due (a new clip, or a trim)
    READY = "ready"
    FAILED = "failed"


class Clip(TimestampMixin, Base):
    __tablename__ = "clips"
    __table_args__ = (
        Index("ix_clips_channel_views", "channel_id", "view_count", "id"),
        Index("ix_clips_channel_likes", "channel_id", "like_count", "id"),
        Index("ix_clips_channel_recent", "channel_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    stream_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    vod_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("vods.id", ondelete="SET NULL"))
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(140))
    # Seconds into the stream's recording: the range first asked for (trims stay inside it)
    # and the range the clip shows now.
    source_start: Mapped[float]
    source_end: Mapped[float]
    start: Mapped[float]
    end: Mapped[float]
    # The recorded segments covering the original range: [{"rendition", "segments": [...]}],
    # the top rendition first (ranges.Segment; a list, as JSONB does not keep key order).
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    media_state: Mapped[str] = mapped_column(String(16), default=ClipMedia.REFERENCING.value)
    mp4_state: Mapped[str] = mapped_column(String(16), default=Mp4State.PENDING.value)
    # Bumped by each trim: a render of an older version is thrown away.
    render_version: Mapped[int] = mapped_column(default=1)
    mp4_key: Mapped[str | None] = mapped_column(String(300))
    thumbnail_key: Mapped[str | None] = mapped_column(String(300))
    mp4_duration: Mapped[float | None]
    view_count: Mapped[int] = mapped_column(default=0)
    like_count: Mapped[int] = mapped_column(default=0)


class ClipLike(Base):
    __tablename__ = "clip_likes"

    clip_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClipView(Base):
    """When a viewer's view of a clip was last counted (once per viewer per hour)."""

    __tablename__ = "clip_views"

    clip_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True
    )
    # `user:<id>`, or a keyed hash of an anonymous viewer's address.
    viewer: Mapped[str] = mapped_column(String(80), primary_key=True)
    counted_at: Mapped[datetime] = mapped_column(default=utcnow)
