"""A finished stream's recording, playable as HLS VOD from the media store."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, JSONType, TimestampMixin, new_id


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
